import assert from "node:assert/strict";
import { RedisMembership } from "./membership_redis.ts";
import { startRedis } from "../tests/support/services.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Not much shorter: on a busy 2-core machine a test process can stall for a few hundred ms, and
// a stall longer than the TTL is (rightly) a lost membership.
const timing = { heartbeatMs: 250, ttlMs: 1500 };

Deno.test("a redis member that cannot heartbeat for a TTL runs onSelfLost and empties its view", async () => {
  const redis = await startRedis();
  const m = await RedisMembership.connect({ url: redis.url, ...timing });
  try {
    let lostAt = 0;
    m.onSelfLost(() => lostAt = Date.now());
    await m.join({ id: "n1", address: "http://n1", startedAt: Date.now() });
    await sleep(250);
    assert.equal(lostAt, 0);
    const stoppedAt = Date.now();
    await redis.stop();
    const end = Date.now() + 5_000;
    while (lostAt === 0 && Date.now() < end) await sleep(20);
    assert.ok(lostAt > 0, "onSelfLost never ran");
    // Not before the TTL of the last heartbeat, and not much after it.
    assert.ok(
      lostAt - stoppedAt >= timing.ttlMs - timing.heartbeatMs - 50,
      `${lostAt - stoppedAt}`,
    );
    assert.ok(lostAt - stoppedAt < timing.ttlMs + 1_000, `${lostAt - stoppedAt}`);
    assert.deepEqual(m.liveNodes(), []);
    assert.equal(m.isLive("n1"), false);
  } finally {
    await m.close();
    await redis.stop();
  }
});

Deno.test("redis members register again by themselves when a Redis restart lost the registry", async () => {
  const redis = await startRedis();
  const a = await RedisMembership.connect({ url: redis.url, ...timing });
  const b = await RedisMembership.connect({ url: redis.url, ...timing });
  try {
    let lost = 0;
    a.onSelfLost(() => lost++);
    b.onSelfLost(() => lost++);
    await a.join({ id: "a", address: "http://a", startedAt: Date.now() });
    await b.join({ id: "b", address: "http://b", startedAt: Date.now() });
    await sleep(300);
    assert.equal(a.isLive("b"), true);
    await redis.restart();
    const end = Date.now() + 5_000;
    let seen = false;
    while (Date.now() < end && !seen) {
      await sleep(50);
      seen = (await a.refresh().catch(() => [])).length === 2;
    }
    assert.ok(seen, "the registry was not rebuilt");
    await sleep(300);
    assert.equal(lost, 0);
    assert.equal(b.isLive("a"), true);
  } finally {
    await a.leave();
    await b.leave();
    await redis.stop();
  }
});
