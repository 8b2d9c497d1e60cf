/**
 * Dependencies cut off through fault proxies while clients keep sending (each send retried with
 * its `cmid` until acknowledged, as real clients do):
 * - one node of two cut off from NATS (the other keeps its link);
 * - Redis unreachable from every node for longer than the membership TTL.
 *
 * Requests during the fault are answered `unavailable` or `timeout` (or lose their connection);
 * afterwards traffic resumes without restarting anything, and the durable state is consistent:
 * every acknowledged message stored exactly once, per-conversation cseq and per-user inbox seq
 * gapless, and every client's inbox (after a sync) holds all of its messages.
 */
import assert from "node:assert/strict";
import {
  type Cluster,
  integrityProblems,
  ResilientClient,
  sleep,
  startCluster,
  storedMessages,
  until,
} from "../cluster/fixture.ts";
import { FaultProxy } from "../support/fault_proxy.ts";
import { runTraffic, type Sent } from "../cluster/traffic.ts";

const ALLOWED = new Set(["unavailable", "timeout", "lost", "overloaded"]);

async function checkConsistent(cluster: Cluster, clients: ResilientClient[], sent: Sent[]) {
  const rows = await storedMessages(cluster.sql);
  const byKey = new Map<string, number>();
  for (const r of rows) {
    byKey.set(`${r.sender}/${r.cmid}`, (byKey.get(`${r.sender}/${r.cmid}`) ?? 0) + 1);
  }
  for (const s of sent) {
    assert.equal(byKey.get(`${s.from}/${s.cmid}`), 1, `${s.cmid} stored exactly once`);
  }
  assert.deepEqual(await integrityProblems(cluster.sql), []);
  for (const c of clients) {
    const latest = await c.catchUp(60_000);
    assert.equal(c.contiguous(), latest, `${c.userId} inbox gapless`);
    const mids = new Set(c.messages().map((m) => m.mid));
    for (const s of sent) {
      if (s.from === c.userId) assert.ok(mids.has(s.ok.mid), `${s.cmid} in its sender's inbox`);
    }
  }
}

async function setup(cluster: Cluster, nodeOf: (i: number) => number) {
  const clients: ResilientClient[] = [];
  for (let i = 0; i < 4; i++) {
    clients.push(await ResilientClient.create(cluster, `fc${i}`, nodeOf(i)));
  }
  const created = (await clients[0].request({
    op: "group.create",
    name: "cut",
    members: clients.slice(1).map((c) => c.userId),
  })).answer;
  assert.equal(created.op, "ok");
  return { clients, group: created.groupId as string };
}

Deno.test("one node cut off from NATS: traffic resumes after the link returns and nothing is lost", async () => {
  const cluster = await startCluster(1, { REQUEST_TIMEOUT_MS: "2000" });
  const natsUrl = new URL(cluster.nats.url);
  const proxy = FaultProxy.start({ port: Number(natsUrl.port) });
  const clients: ResilientClient[] = [];
  try {
    await cluster.addNode({ NATS_URL: `nats://127.0.0.1:${proxy.port}` });
    const pids = cluster.nodes.map((n) => n.pid);
    const s = await setup(cluster, (i) => i % 2);
    clients.push(...s.clients);
    const traffic = runTraffic(clients, s.group, { tag: "n" });
    await sleep(1_000);
    proxy.set("cut");
    await sleep(4_000);
    proxy.set("pass");
    const from = traffic.sent.length;
    await until("traffic resumes", () => traffic.sent.length >= from + 40, 60_000);
    const sent = await traffic.stop();
    assert.deepEqual(cluster.nodes.map((n) => n.pid), pids, "no node restarted");
    for (const e of clients.flatMap((c) => c.errors)) assert.ok(ALLOWED.has(e), `error ${e}`);
    await checkConsistent(cluster, clients, sent);
  } finally {
    for (const c of clients) await c.close().catch(() => {});
    await cluster.stop();
    await proxy.close();
  }
});

Deno.test("Redis unreachable for longer than the membership TTL: nodes recover by themselves, nothing is lost", async () => {
  const cluster = await startCluster(1, { REQUEST_TIMEOUT_MS: "2000" });
  const proxy = FaultProxy.start({ port: cluster.redis.port });
  const clients: ResilientClient[] = [];
  try {
    // Two more nodes reach Redis only through the proxy; the first one is stopped so every
    // node that serves clients depends on it.
    const redisUrl = `redis://127.0.0.1:${proxy.port}`;
    await cluster.addNode({ REDIS_URL: redisUrl });
    await cluster.addNode({ REDIS_URL: redisUrl });
    const first = cluster.nodes.shift()!;
    await first.stop(5_000);
    const pids = cluster.nodes.map((n) => n.pid);
    const s = await setup(cluster, (i) => i % 2);
    clients.push(...s.clients);
    const traffic = runTraffic(clients, s.group, { tag: "r" });
    await sleep(1_000);
    proxy.set("cut");
    await sleep(5_000); // membership TTL is 3 s: every node loses its membership and its actors
    proxy.set("pass");
    const from = traffic.sent.length;
    await until("traffic resumes", () => traffic.sent.length >= from + 40, 90_000);
    const sent = await traffic.stop();
    assert.deepEqual(cluster.nodes.map((n) => n.pid), pids, "no node restarted");
    for (const e of clients.flatMap((c) => c.errors)) assert.ok(ALLOWED.has(e), `error ${e}`);
    await checkConsistent(cluster, clients, sent);
  } finally {
    for (const c of clients) await c.close().catch(() => {});
    await cluster.stop();
    await proxy.close();
  }
});
