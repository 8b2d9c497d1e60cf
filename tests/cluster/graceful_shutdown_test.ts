/**
 * SIGTERM of a node under traffic is a hand-off, not a failure: the node announces it is
 * draining, finishes and passivates its actors (snapshot, release), closes its clients with 1012
 * and leaves. Clients see no error answer at all: only the close, a reconnect to another node
 * and a sync, and nothing is lost.
 */
import assert from "node:assert/strict";
import {
  integrityProblems,
  logLines,
  nodeIdOf,
  placementOf,
  ResilientClient,
  sleep,
  startCluster,
  storedMessages,
  until,
} from "./fixture.ts";
import { runTraffic } from "./traffic.ts";

Deno.test("SIGTERM of a node under traffic: clients only see 1012 and a reconnect, nothing is lost", async () => {
  // A generous request deadline: on a busy machine a slow answer must not read as a failure
  // of the hand-off (a `timeout` answer would count as an error here).
  const cluster = await startCluster(3, { REQUEST_TIMEOUT_MS: "15000" });
  const clients: ResilientClient[] = [];
  try {
    for (let i = 0; i < 6; i++) clients.push(await ResilientClient.create(cluster, `g${i}`, i % 3));
    const created = (await clients[0].request({
      op: "group.create",
      name: "all",
      members: clients.slice(1).map((c) => c.userId),
    })).answer;
    assert.equal(created.op, "ok");
    const group = created.groupId as string;
    await clients[0].send({ group }, "warm", "warm up");
    const rec = await until("the group is placed", () => placementOf(cluster, `group/${group}`));
    const index = cluster.nodes.findIndex((n) => nodeIdOf(n) === rec.node);
    const victim = cluster.nodes[index];
    const onVictim = clients.filter((c) => c.nodeIndex === index);
    assert.ok(onVictim.length > 0);

    const traffic = runTraffic(clients, group);
    await sleep(2_000);
    const before = traffic.sent.length;
    victim.kill("SIGTERM");
    const status = await victim.exited;
    assert.equal(status.code, 0, "the node exits cleanly");
    assert.ok(logLines(victim).some((l) => l.msg === "node stopped"));
    await until("traffic goes on", () => traffic.sent.length >= before + 60, 90_000);
    const sent = await traffic.stop();

    // Clients saw no error answer; the victim's clients saw 1012 and reconnected.
    for (const c of clients) {
      const answers = c.errors.filter((e) => e !== "lost");
      assert.deepEqual(answers, [], `${c.userId} got error answers`);
    }
    for (const c of onVictim) {
      assert.ok(c.closeCodes.includes(1012), `${c.userId} closes: ${c.closeCodes}`);
      assert.ok(c.reconnects >= 1);
    }
    // The group was handed off with its snapshot: it still knows its members.
    const after = await placementOf(cluster, `group/${group}`);
    assert.ok(after && after.node !== rec.node && after.epoch > rec.epoch, JSON.stringify(after));
    const members = (await clients[1].request({ op: "group.members", group })).answer;
    assert.equal(members.op, "ok", JSON.stringify(members));
    assert.deepEqual(
      new Set((members.members as { userId: string }[]).map((m) => m.userId)),
      new Set(clients.map((c) => c.userId)),
    );

    const rows = await storedMessages(cluster.sql);
    const byKey = new Map(rows.map((r) => [`${r.sender}\u0000${r.cmid}`, r]));
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
});
