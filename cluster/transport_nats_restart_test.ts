import assert from "node:assert/strict";
import { ImError } from "../actors/errors.ts";
import { NatsTransport } from "./transport_nats.ts";
import { startNats } from "../tests/support/services.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const env = (body: unknown) => ({ to: "user/1", type: "echo", body, deadline: Date.now() + 1_000 });

Deno.test("nats transport fails fast while NATS is down, reports it to its log, and carries requests again by itself after a restart", async () => {
  const nats = await startNats();
  const reported: string[] = [];
  const log = {
    warn: (msg: string) => void reported.push(msg),
    error: (msg: string) => void reported.push(msg),
  };
  const a = await NatsTransport.connect({
    nodeId: "a",
    servers: nats.url,
    reconnectTimeWaitMs: 100,
    log,
  });
  const b = await NatsTransport.connect({
    nodeId: "b",
    servers: nats.url,
    reconnectTimeWaitMs: 100,
  });
  try {
    await a.serve(() => Promise.resolve(null));
    await b.serve((e) => Promise.resolve(e.body));
    assert.equal(await a.request("b", env(1)), 1);
    const delivered: unknown[] = [];
    b.onDeliveries((ds) => delivered.push(...ds.map((d) => d.frame.n)));

    await nats.stop();
    await sleep(100);
    const start = Date.now();
    const err = await a.request("b", env(2)).then(() => null, (e) => e);
    assert.ok(err instanceof ImError);
    assert.ok(["unavailable", "timeout"].includes(err.code), err.code);
    assert.ok(Date.now() - start < 1_500);

    await nats.restart();
    const end = Date.now() + 10_000;
    let reply: unknown;
    while (reply === undefined) {
      try {
        reply = await a.request("b", env(3));
      } catch (e) {
        if (Date.now() > end) throw e;
        await sleep(100);
      }
    }
    assert.equal(reply, 3);
    // The node's logger hears of both, in order (the console hears nothing from `a`); the status
    // event may trail the first reply.
    const heard = Date.now() + 2_000;
    while (!reported.includes("nats: connection restored") && Date.now() < heard) await sleep(10);
    assert.deepEqual(
      reported.filter((m) => m.startsWith("nats:")),
      ["nats: connection lost; reconnecting", "nats: connection restored"],
    );
    // Both directions and deliveries work again.
    assert.equal(await b.request("a", env(4)), null);
    a.deliver("b", { frame: { n: 5 }, users: ["u"] });
    const until = Date.now() + 2_000;
    while (delivered.length === 0 && Date.now() < until) await sleep(10);
    assert.deepEqual(delivered, [5]);
  } finally {
    await a.close();
    await b.close();
    await nats.stop();
  }
});
