/**
 * Deliveries go only to the nodes that hold the recipients' connections (ARCHITECTURE.md), kept
 * by the connection directory (cluster/connection_directory.ts): a node without any of them gets
 * nothing, a device that connects to a new node gets the very next message pushed (its node is
 * known cluster-wide before its `auth` is answered), and a node whose last connection of a user
 * closed stops getting that user's deliveries.
 */
import assert from "node:assert/strict";
import { TestClient } from "../support/client.ts";
import { ResilientClient, sleep, startCluster, until } from "./fixture.ts";

/** Deliveries a node has received from the transport (the latency histogram's count). */
async function deliveriesAt(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = text.match(/^im_delivery_latency_seconds_count(?:\{\})? (\d+)/m);
  assert.ok(m, "im_delivery_latency_seconds_count is exported");
  return Number(m[1]);
}

async function gauge(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\d+)`, "m"));
  return m ? Number(m[1]) : NaN;
}

Deno.test("cluster: deliveries reach only the nodes holding the recipients' connections", async () => {
  const cluster = await startCluster(3);
  const clients: ResilientClient[] = [];
  let extra: TestClient | null = null;
  try {
    const [n0, n1, n2] = cluster.nodes.map((n) => n.url);
    const [a, b] = await Promise.all([
      ResilientClient.create(cluster, "ra", 0),
      ResilientClient.create(cluster, "rb", 1),
    ]);
    clients.push(a, b);
    // Every node sees the others (heartbeat 1 s) and has merged their lists.
    const urls = [n0, n1, n2];
    for (const url of urls) {
      await until(
        `${url} sees 3 nodes and has every node's list`,
        async () =>
          await gauge(url, "im_cluster_live_nodes") === 3 &&
          await gauge(url, "im_directory_pending_nodes") === 0,
      );
    }
    const entries = await Promise.all(urls.map((u) => gauge(u, "im_directory_entries")));

    const before2 = await deliveriesAt(n2);
    const before1 = await deliveriesAt(n1);
    for (let i = 0; i < 20; i++) await a.send({ user: b.userId }, `r${i}`, `hello ${i}`);
    await until("b got 20 pushes", () => b.conn!.msgs().length >= 20);
    assert.equal(await deliveriesAt(n2), before2, "the node without a recipient got nothing");
    assert.ok(await deliveriesAt(n1) >= before1 + 20, "b's node got every delivery");

    // A second device of b on node 2: the message right after its auth is pushed to it.
    extra = await TestClient.open(n2);
    const ok = await extra.request({ op: "auth", token: b.token, device: "d2" }, 15_000);
    assert.equal(ok.op, "ok", JSON.stringify(ok));
    const sent = await a.send({ user: b.userId }, "after-auth", "to both devices");
    const pushed = await extra.waitForMsgs(1, 15_000);
    assert.equal(pushed[0].mid, sent.ok.mid);
    assert.ok(await deliveriesAt(n2) > before2);

    // That device leaves: once every node has heard so, node 2 stops getting b's deliveries.
    await extra.close();
    extra = null;
    for (const [i, url] of urls.entries()) {
      await until(
        `${url} forgot b's device on node 2`,
        async () => await gauge(url, "im_directory_entries") === entries[i],
      );
    }
    const after2 = await deliveriesAt(n2);
    await a.send({ user: b.userId }, "after-close", "only node 1");
    await until("b got it", () => b.conn!.msgs().length >= 22);
    await sleep(200);
    assert.equal(await deliveriesAt(n2), after2, "no delivery to a node the user left");
    assert.ok(await gauge(n0, "im_directory_entries") >= 1);
  } finally {
    await extra?.close();
    for (const c of clients) await c.close();
    await cluster.stop();
  }
});
