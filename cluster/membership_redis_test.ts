import { RedisMembership } from "./membership_redis.ts";
import { runMembershipContract } from "./membership_contract.ts";
import { deleteKeys, SHARED_REDIS_URL, uniquePrefix } from "./testing_redis.ts";

runMembershipContract("redis membership", () => {
  const keyPrefix = uniquePrefix("membership");
  const members: RedisMembership[] = [];
  return Promise.resolve({
    open: async (timing) => {
      const m = await RedisMembership.connect({ url: SHARED_REDIS_URL, keyPrefix, ...timing });
      members.push(m);
      return m;
    },
    crash: (m) => Promise.resolve((m as RedisMembership).crash()),
    cleanup: async () => {
      for (const m of members) await m.leave();
      await deleteKeys(SHARED_REDIS_URL, keyPrefix);
    },
  });
});
