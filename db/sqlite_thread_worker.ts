/**
 * The worker thread of {@link openThreadedSqliteStore}: it owns the SQLite connection and runs
 * each Store call to completion, one at a time, in arrival order.
 *
 * `node:sqlite` is synchronous and every commit waits for its fsync (synchronous=FULL); here that
 * wait blocks this thread only, so the node's event loop keeps serving sockets and gathering the
 * next group-commit batch while the disk syncs.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import type { AppendResult, Store } from "./store.ts";
import { openSqliteStore } from "./store_sqlite.ts";
import {
  type CallRequest,
  decodeAppendBatch,
  encodeAppendResults,
  errorToWire,
  type OpenRequest,
  type Reply,
} from "./sqlite_thread_wire.ts";

let store: Store | null = null;
let openError: unknown = null;

self.onmessage = async (ev: MessageEvent<OpenRequest | CallRequest>) => {
  const msg = ev.data;
  if (msg.type === "open") {
    try {
      store = openSqliteStore(msg.path, msg.options);
    } catch (err) {
      // Reported on every call: the caller sees why the database cannot be used.
      openError = err;
    }
    return;
  }
  let reply: Reply;
  try {
    if (!store) {
      if (msg.method !== "close") throw openError;
      reply = { id: msg.id, ok: true, value: undefined };
      self.postMessage(reply);
      self.close();
      return;
    }
    const fn = (store as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[
      msg.method
    ];
    if (typeof fn !== "function") throw new Error(`Unknown store method ${msg.method}`);
    // The SQLite store settles before returning (it is synchronous inside), so awaiting here
    // keeps calls strictly one after another.
    if (msg.text !== undefined) {
      const results = await fn.apply(store, [decodeAppendBatch(msg.text)]);
      const text = encodeAppendResults(results as AppendResult[]);
      reply = { id: msg.id, ok: true, value: undefined, text };
    } else reply = { id: msg.id, ok: true, value: await fn.apply(store, msg.args) };
  } catch (err) {
    reply = { id: msg.id, ok: false, error: errorToWire(err) };
  }
  self.postMessage(reply);
  if (msg.method === "close" && reply.ok) self.close();
};
