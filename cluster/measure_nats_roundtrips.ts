/**
 * Measures request/reply round trips per second through {@link NatsTransport} between two
 * transports in this process (loopback NATS). Not a test: run it by hand.
 *
 *   deno run --allow-net --allow-env cluster/measure_nats_roundtrips.ts [total] [inFlight] [url]
 *
 * @module
 */

import { NatsTransport } from "./transport_nats.ts";

const total = Number(Deno.args[0] ?? 20_000);
const inFlight = Number(Deno.args[1] ?? 100);
const servers = Deno.args[2] ?? "nats://127.0.0.1:4222";
const subjectPrefix = `measure.${crypto.randomUUID()}`;

const a = await NatsTransport.connect({ nodeId: "a", servers, subjectPrefix });
const b = await NatsTransport.connect({ nodeId: "b", servers, subjectPrefix });
await b.serve((e) => Promise.resolve(e.body));

async function run(n: number, concurrency: number): Promise<number> {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const body = { i, text: "hello" };
      const reply = await a.request("b", {
        to: `user/${i % 1000}`,
        type: "echo",
        body,
        deadline: Date.now() + 5_000,
      }) as { i: number };
      if (reply.i !== i) throw new Error(`wrong reply ${reply.i} for ${i}`);
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return n / ((performance.now() - start) / 1000);
}

await run(2_000, inFlight); // warm-up (JIT, connections)
const before = a.stats().published;
const rate = await run(total, inFlight);
const published = a.stats().published - before;
console.log(
  `${total} requests, ${inFlight} in flight: ${Math.round(rate)} round trips/s ` +
    `(${(total / published).toFixed(1)} requests per NATS message)`,
);
await a.close();
await b.close();
