/**
 * Redis and NATS restarts during traffic: nothing acknowledged is lost and the service resumes
 * without restarting any node. Requests during an outage are answered `unavailable` or
 * `timeout` (or lose their answer with the connection); their retries with the same `cmid`
 * land once.
 *
 * Redis: a quick restart (the registry and every placement record are gone: nodes re-register,
 * actors are re-claimed with higher epochs), then an outage longer than the membership TTL
 * (every node loses its membership, drops its actors and rejoins by itself when Redis returns).
 * NATS: a quick restart, then an outage of two seconds.
 */
import assert from "node:assert/strict";
import {
  type Cluster,
  integrityProblems,
  logLines,
  ResilientClient,
  sleep,
  startCluster,
  storedMessages,
  until,
} from "./fixture.ts";
import { runTraffic } from "./traffic.ts";

const ALLOWED = new Set(["unavailable", "timeout", "lost"]);

async function underTraffic(
  disrupt: (cluster: Cluster) => Promise<void>,
  check: (cluster: Cluster, errors: string[]) => void,
): Promise<void> {
  const cluster = await startCluster(3);
  const clients: ResilientClient[] = [];
  try {
    for (let i = 0; i < 6; i++) clients.push(await ResilientClient.create(cluster, `r${i}`, i % 3));
    const created = (await clients[0].request({
      op: "group.create",
      name: "all",
      members: clients.slice(1).map((c) => c.userId),
    })).answer;
    assert.equal(created.op, "ok");
    const group = created.groupId as string;
    const pids = cluster.nodes.map((n) => n.pid);

    const traffic = runTraffic(clients, group);
    await sleep(1_500);
    await disrupt(cluster);
    const resumedFrom = traffic.sent.length;
    await until("traffic resumes", () => traffic.sent.length >= resumedFrom + 60, 90_000);
    const sent = await traffic.stop();

    // No node was restarted: the same processes served throughout.
    assert.deepEqual(cluster.nodes.map((n) => n.pid), pids);
    for (const n of cluster.nodes) {
      const exited = await Promise.race([n.exited.then(() => true), sleep(0).then(() => false)]);
      assert.equal(exited, false);
    }
    const errors = clients.flatMap((c) => c.errors);
    for (const e of errors) assert.ok(ALLOWED.has(e), `unexpected error ${e}`);
    check(cluster, errors);

    const rows = await storedMessages(cluster.sql);
    const byKey = new Map(rows.map((r) => [`${r.sender}\u0000${r.cmid}`, r]));
    assert.equal(byKey.size, rows.length);
    for (const s of sent) {
      const row = byKey.get(`${s.from}\u0000${s.cmid}`);
      assert.ok(row, `ok'd message ${s.cmid} is stored`);
      assert.equal(row.mid, s.ok.mid);
      assert.equal(row.cseq, s.ok.cseq);
    }
    assert.deepEqual(await integrityProblems(cluster.sql), []);
    for (const c of clients) {
      const latest = await c.catchUp();
      assert.equal(c.messages().length, latest);
      const mids = new Set(c.messages().map((m) => m.mid));
      for (const s of sent) {
        const mine = s.to === group || s.to === c.userId || s.from === c.userId;
        if (mine) assert.ok(mids.has(s.ok.mid), `${c.userId} got ${s.cmid}`);
      }
    }
  } finally {
    for (const c of clients) await c.close();
    await cluster.stop();
  }
}

Deno.test("Redis restarts and a Redis outage longer than the TTL lose nothing acknowledged", async () => {
  await underTraffic(async (cluster) => {
    await cluster.redis.restart();
    await sleep(2_000);
    await cluster.redis.stop();
    await sleep(4_000);
    await cluster.redis.restart();
  }, (cluster, errors) => {
    // The long outage made every node lose its membership; each rejoined by itself.
    for (const n of cluster.nodes) {
      const lines = logLines(n);
      assert.ok(
        lines.some((l) => l.msg === "lost cluster membership: stopping actors (self-fencing)"),
      );
      assert.ok(lines.some((l) => l.msg === "rejoined the cluster"));
    }
    assert.ok(errors.length > 0, "requests during the outage were refused");
  });
});

Deno.test("NATS restarts and a NATS outage lose nothing acknowledged", async () => {
  await underTraffic(async (cluster) => {
    await cluster.nats.restart();
    await sleep(2_000);
    await cluster.nats.stop();
    await sleep(2_000);
    await cluster.nats.restart();
  }, (_cluster, errors) => {
    assert.ok(errors.length > 0, "requests during the outage were refused");
  });
});
