import type { Placement } from "./placement.ts";
import { runPlacementContract } from "./placement_contract.ts";
import { RedisPlacement } from "./placement_redis.ts";
import { deleteKeys, SHARED_REDIS_URL, uniquePrefix } from "./testing_redis.ts";

runPlacementContract("redis placement", () => {
  const keyPrefix = uniquePrefix("placement");
  const opened: Placement[] = [];
  return Promise.resolve({
    open: async () => {
      const p = await RedisPlacement.connect({ url: SHARED_REDIS_URL, keyPrefix });
      opened.push(p);
      return p;
    },
    cleanup: async () => {
      for (const p of opened) await p.close();
      await deleteKeys(SHARED_REDIS_URL, keyPrefix);
    },
  });
});
