import { MemoryPlacement } from "./placement_memory.ts";
import { runPlacementContract } from "./placement_contract.ts";

runPlacementContract("memory placement", () => {
  const placement = new MemoryPlacement();
  return Promise.resolve({
    open: () => Promise.resolve(placement),
    cleanup: () => placement.close(),
  });
});
