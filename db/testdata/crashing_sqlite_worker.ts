/**
 * A test stand-in for sqlite_thread_worker.ts: the real worker, except that a `latestSeq` call
 * for user `__crash__` kills the thread (an uncaught error), as a fault in the worker would.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import "../sqlite_thread_worker.ts";

// The real handler does not use `this`.
const real = self.onmessage as unknown as (ev: MessageEvent) => unknown;
self.onmessage = (ev: MessageEvent) => {
  const msg = ev.data as { type: string; method?: string; args?: unknown[] };
  if (msg.type === "call" && msg.method === "latestSeq" && msg.args?.[0] === "__crash__") {
    throw new Error("worker crashed (test)");
  }
  return real(ev);
};
