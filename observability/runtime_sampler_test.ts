import assert from "node:assert/strict";
import { RuntimeSampler } from "./runtime_sampler.ts";

Deno.test("the runtime sampler reports event-loop lag, CPU and counter rates", async () => {
  let stored = 0;
  const sampler = new RuntimeSampler({ messages: () => stored }, { tickMs: 20, ticksPerSample: 5 });
  sampler.start();
  try {
    const t = setInterval(() => (stored += 10), 10);
    // Block the loop for a while: the lag must show it.
    await new Promise((r) => setTimeout(r, 30));
    const end = performance.now() + 60;
    while (performance.now() < end) { /* busy */ }
    await new Promise((r) => setTimeout(r, 250));
    clearInterval(t);
    const s = sampler.read();
    assert.ok(s.eventLoopLagMs >= 0);
    assert.ok(s.cpu >= 0);
    assert.ok(s.rates.messages > 0, `rate ${s.rates.messages}`);
    assert.ok(s.rssBytes > 0 && s.heapUsedBytes > 0);
  } finally {
    sampler.stop();
  }
});
