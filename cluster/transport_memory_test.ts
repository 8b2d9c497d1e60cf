import { MemoryNetwork, MemoryTransport } from "./transport_memory.ts";
import { runTransportContract } from "./transport_contract.ts";

runTransportContract("memory transport", () => {
  const network = new MemoryNetwork();
  const opened: MemoryTransport[] = [];
  return Promise.resolve({
    open: (nodeId) => {
      const t = new MemoryTransport({ nodeId, network });
      opened.push(t);
      return Promise.resolve(t);
    },
    cleanup: async () => {
      for (const t of opened) await t.close();
    },
  });
});
