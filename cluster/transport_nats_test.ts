import { runTransportContract } from "./transport_contract.ts";
import { NatsTransport } from "./transport_nats.ts";

const SHARED_NATS_URL = Deno.env.get("NATS_URL") ?? "nats://127.0.0.1:4222";

runTransportContract("nats transport", () => {
  // A subject prefix of its own: parallel test files and other clusters share this NATS.
  const subjectPrefix = `test.${crypto.randomUUID()}`;
  const opened: NatsTransport[] = [];
  return Promise.resolve({
    open: async (nodeId) => {
      const t = await NatsTransport.connect({ nodeId, servers: SHARED_NATS_URL, subjectPrefix });
      opened.push(t);
      return t;
    },
    cleanup: async () => {
      for (const t of opened) await t.close();
    },
  });
});
