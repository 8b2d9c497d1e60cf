import assert from "node:assert/strict";
import { ImError } from "../actors/errors.ts";
import { RedisPlacement } from "./placement_redis.ts";
import { startRedis } from "../tests/support/services.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("redis placement fails fast while Redis is down and works again by itself after a restart", async () => {
  const redis = await startRedis();
  const placement = await RedisPlacement.connect({ url: redis.url, keyPrefix: "restart:" });
  try {
    const first = await placement.claim("user/1", "n1", { leaseMs: 60_000, minEpoch: 3 });
    assert.equal(first.claimed, true);

    await redis.stop();
    const start = Date.now();
    const err = await placement.lookup("user/1").then(() => null, (e) => e);
    assert.ok(err instanceof ImError, `expected an ImError, got ${err}`);
    assert.equal(err.code, "unavailable");
    assert.ok(Date.now() - start < 3_000, `took ${Date.now() - start} ms to fail`);
    await assert.rejects(
      placement.claim("user/2", "n1", { leaseMs: 60_000, minEpoch: 1 }),
      (e: ImError) => e.code === "unavailable",
    );

    await redis.restart();
    // The restarted Redis is empty; the caller's minEpoch (store epoch + 1) keeps epochs growing.
    const end = Date.now() + 10_000;
    let again;
    while (!again) {
      try {
        again = await placement.claim("user/1", "n2", { leaseMs: 60_000, minEpoch: 4 });
      } catch (e) {
        assert.equal((e as ImError).code, "unavailable");
        if (Date.now() > end) throw e;
        await sleep(100);
      }
    }
    assert.equal(again.claimed, true);
    assert.equal(again.record.epoch, 4);
    assert.deepEqual(await placement.renew("n2", [{ actorId: "user/1", epoch: 4 }], 60_000), []);
    assert.equal((await placement.lookup("user/1"))?.node, "n2");
  } finally {
    await placement.close();
    await redis.stop();
  }
});
