/**
 * `kill -9` of a node during steady traffic from clients on every node: clients of the dead node
 * reconnect elsewhere and retry their unanswered sends with the same `cmid`; the dead node's
 * actors are re-activated on the survivors. Every `ok`'d message is stored exactly once, no two
 * messages share a (conv, cseq), inboxes stay gapless, and every participant's devices hold
 * every message after sync.
 */
import assert from "node:assert/strict";
import {
  integrityProblems,
  nodeIdOf,
  placementOf,
  ResilientClient,
  sleep,
  startCluster,
  storedMessages,
  until,
} from "./fixture.ts";
import { runTraffic, type Sent } from "./traffic.ts";

Deno.test("SIGKILL of a node under traffic loses nothing acknowledged and duplicates nothing", async () => {
  const cluster = await startCluster(3);
  const clients: ResilientClient[] = [];
  try {
    for (let i = 0; i < 6; i++) clients.push(await ResilientClient.create(cluster, `k${i}`, i % 3));
    const created = (await clients[0].request({
      op: "group.create",
      name: "all",
      members: clients.slice(1).map((c) => c.userId),
    })).answer;
    assert.equal(created.op, "ok");
    const group = created.groupId as string;

    // Kill the node that hosts the group actor, so a hot actor must fail over.
    await clients[0].send({ group }, "warm", "warm up");
    const rec = await until("the group is placed", () => placementOf(cluster, `group/${group}`));
    const victim = cluster.nodes.find((n) => nodeIdOf(n) === rec.node)!;
    assert.ok(victim, "the group's node is one of ours");

    const traffic = runTraffic(clients, group);
    await sleep(2_000);
    const before = traffic.sent.length;
    victim.kill("SIGKILL");
    await victim.exited;
    // Keep sending until the survivors have served well past the failover.
    await until("traffic resumed after the kill", () => traffic.sent.length >= before + 60, 90_000);
    const sent: Sent[] = await traffic.stop();
    assert.ok(sent.length > before, "messages were acknowledged after the kill");

    // The group actor now lives on a survivor, with a higher epoch.
    const after = await placementOf(cluster, `group/${group}`);
    assert.ok(after && after.node !== rec.node && after.epoch > rec.epoch, JSON.stringify(after));

    // Durable state: every ok'd message once, with the mid and cseq its sender was told.
    const rows = await storedMessages(cluster.sql);
    const byKey = new Map(rows.map((r) => [`${r.sender}\u0000${r.cmid}`, r]));
    assert.equal(byKey.size, rows.length, "no (sender, cmid) stored twice");
    for (const s of sent) {
      const row = byKey.get(`${s.from}\u0000${s.cmid}`);
      assert.ok(row, `ok'd message ${s.cmid} is stored`);
      assert.equal(row.mid, s.ok.mid);
      assert.equal(row.cseq, s.ok.cseq);
      assert.equal(row.conv, s.ok.conv);
    }
    assert.deepEqual(await integrityProblems(cluster.sql), []);

    // Every participant's device holds every message of its conversations after sync.
    const participants = new Map<string, Set<string>>(); // conv -> users
    participants.set(`g:${group}`, new Set(clients.map((c) => c.userId)));
    for (const s of sent) {
      if (!participants.has(s.ok.conv as string)) {
        participants.set(s.ok.conv as string, new Set([s.from, s.to]));
      }
    }
    for (const c of clients) {
      const latest = await c.catchUp();
      const held = c.messages();
      assert.equal(held.length, latest, `${c.userId} holds its whole inbox`);
      const mids = new Set(held.map((m) => m.mid));
      for (const s of sent) {
        if (participants.get(s.ok.conv as string)!.has(c.userId)) {
          assert.ok(mids.has(s.ok.mid), `${c.userId} got ${s.cmid}`);
        }
      }
    }
  } finally {
    for (const c of clients) await c.close();
    await cluster.stop();
  }
});
