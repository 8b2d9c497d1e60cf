import assert from "node:assert/strict";
import { threadCpuDelta, threadCpuMs } from "./proc_stat.ts";

Deno.test("threadCpuMs tells the main thread's CPU apart from a worker's", async () => {
  // A worker that spins for 400 ms while this thread sleeps.
  const src =
    `self.onmessage = () => { const end = Date.now() + 400; while (Date.now() < end) {} self.postMessage("done"); };`;
  const url = URL.createObjectURL(new Blob([src], { type: "application/javascript" }));
  const worker = new Worker(url, { type: "module" });
  try {
    const before = threadCpuMs(Deno.pid);
    assert.ok(before.has("deno"), `threads: ${[...before.keys()]}`);
    await new Promise((resolve) => {
      worker.onmessage = resolve;
      worker.postMessage("go");
    });
    const used = threadCpuDelta(before, threadCpuMs(Deno.pid));
    const workerMs = [...used].filter(([name]) => name.startsWith("worker"))
      .reduce((a, [, c]) => a + c.user + c.system, 0);
    const mainMs = (used.get("deno")?.user ?? 0) + (used.get("deno")?.system ?? 0);
    // Tick resolution is 10 ms; the worker spun ~400 ms, the main thread mostly slept.
    assert.ok(workerMs >= 250, `worker ${workerMs} ms`);
    assert.ok(mainMs < workerMs / 2, `main ${mainMs} ms, worker ${workerMs} ms`);
  } finally {
    worker.terminate();
    URL.revokeObjectURL(url);
  }
});

Deno.test("threadCpuMs of a process that is gone is empty", () => {
  assert.equal(threadCpuMs(2 ** 22 + 12345).size, 0);
});
