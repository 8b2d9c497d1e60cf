import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import { MemoryMembership, MemoryRegistry } from "./membership_memory.ts";

Deno.test("a memory member whose heartbeat timer stalls for a TTL runs onSelfLost and is dead", async () => {
  const clock = FakeTimers.withGlobal(globalThis).install({
    toFake: ["setInterval", "clearInterval", "Date"],
  });
  try {
    const registry = new MemoryRegistry();
    const a = new MemoryMembership({ registry, heartbeatMs: 1000, ttlMs: 3000 });
    const b = new MemoryMembership({ registry, heartbeatMs: 1000, ttlMs: 3000 });
    let lost = 0;
    a.onSelfLost(() => lost++);
    await a.join({ id: "a", address: "http://a", startedAt: Date.now() });
    await b.join({ id: "b", address: "http://b", startedAt: Date.now() });
    clock.tick(10_000);
    assert.equal(lost, 0);
    assert.equal(b.isLive("a"), true);
    // The event loop was blocked: time moved on, no timer ran.
    clock.setSystemTime(Date.now() + 3_500);
    clock.tick(1000);
    assert.equal(lost, 1);
    assert.deepEqual(a.liveNodes(), []);
    assert.equal(b.isLive("a"), false);
    clock.tick(10_000);
    assert.equal(lost, 1);
    await b.leave();
  } finally {
    clock.uninstall();
  }
});
