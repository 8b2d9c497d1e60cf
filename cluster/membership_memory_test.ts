import { MemoryMembership, MemoryRegistry } from "./membership_memory.ts";
import { runMembershipContract } from "./membership_contract.ts";

runMembershipContract("memory membership", () => {
  const registry = new MemoryRegistry();
  const members: MemoryMembership[] = [];
  return Promise.resolve({
    open: (timing) => {
      const m = new MemoryMembership({ registry, ...timing });
      members.push(m);
      return Promise.resolve(m);
    },
    crash: (m) => Promise.resolve((m as MemoryMembership).crash()),
    cleanup: async () => {
      for (const m of members) await m.leave();
    },
  });
});
