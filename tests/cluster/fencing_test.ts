/**
 * Fencing: a node that is frozen (SIGSTOP) until its membership and leases expire loses its
 * actors to another node; when it resumes (SIGCONT), the write it still had queued carries the
 * old epoch and Postgres rejects it, the node drops those actors, rejoins the cluster by itself,
 * and nothing is duplicated or lost.
 *
 * To have a write queued at the moment of the freeze, the test holds a row lock on the actor's
 * epoch row: the node's first append waits on it inside Postgres and its second one waits in
 * the node's group commit queue (watched through the node's `im_commit_queue` gauge).
 */
import assert from "node:assert/strict";
import { rendezvousStrategy } from "../../cluster/placement_strategy.ts";
import { type F, signUp, TestClient } from "../support/client.ts";
import {
  integrityProblems,
  logLines,
  nodeIdOf,
  placementOf,
  ResilientClient,
  startCluster,
  storedMessages,
  uname,
  until,
} from "./fixture.ts";

async function gauge(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\d+)`, "m"));
  return m ? Number(m[1]) : NaN;
}

async function redisCli(port: number, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("redis-cli", {
    args: ["-p", String(port), "--raw", ...args],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test("a frozen node's late writes are fenced, it drops its actors and rejoins; nothing is lost", async () => {
  const cluster = await startCluster(3);
  const clients: ResilientClient[] = [];
  const sockets: TestClient[] = [];
  const [n0, victim, n2] = cluster.nodes;
  let frozen = false;
  try {
    const ids = cluster.nodes.map(nodeIdOf);
    const victimId = ids[1];
    // u1 on node 0; u2 (on node 2) chosen so that their direct actor is placed on the victim.
    const u1 = await ResilientClient.create(cluster, "f1", 0);
    clients.push(u1);
    let u2: ResilientClient | null = null;
    for (let i = 0; i < 40 && !u2; i++) {
      const login = await signUp(n2.url, uname(`f2x${i}`));
      const actor = `direct/${[u1.userId, login.userId].sort().join(":")}`;
      if (rendezvousStrategy(actor, ids) === victimId) {
        u2 = new ResilientClient(login.userId, login.accessToken, () => [n0.url, n2.url], 1);
        await u2.connection();
      }
    }
    assert.ok(u2, "found a pair placed on the victim");
    clients.push(u2);
    const actor = `direct/${[u1.userId, u2.userId].sort().join(":")}`;
    const to = { user: u2.userId };

    const m0 = await u1.send(to, "m0", "before");
    const before = await placementOf(cluster, actor);
    assert.equal(before?.node, victimId);

    // Hold the actor's epoch row: the victim's next append waits inside Postgres.
    const lock = await cluster.sql.reserve();
    await lock`BEGIN`;
    await lock`SELECT epoch FROM actor_epochs WHERE actor_id = ${actor} FOR UPDATE`;
    const c1 = u1.conn!;
    const m1First = c1.request(
      { op: "send", to, cmid: "m1", body: { type: "text", text: "1" } },
      60_000,
    )
      .catch((e) => ({ op: "lost", e }) as F);
    await until("the victim's append waits on the lock", async () => {
      const [{ n }] = await cluster.sql`
        SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock'`;
      return n > 0;
    });
    const m2First = c1.request(
      { op: "send", to, cmid: "m2", body: { type: "text", text: "2" } },
      60_000,
    )
      .catch((e) => ({ op: "lost", e }) as F);
    await until(
      "m2 waits in the victim's commit queue",
      async () => await gauge(victim.url, "im_commit_queue") >= 1,
    );

    victim.kill("SIGSTOP");
    frozen = true;
    await until(
      "the victim's membership expired",
      async () => await redisCli(cluster.redis.port, "EXISTS", `im:m:n:${victimId}`) === "0",
    );
    // Now the victim's first append commits (epoch still its own); its reply waits unread.
    await lock`ROLLBACK`;
    lock.release();

    // Another node takes the actor over (new epoch, store fenced) and serves m3.
    const m3 = await u1.send(to, "m3", "after takeover");
    const taken = await placementOf(cluster, actor);
    assert.ok(
      taken && taken.node !== victimId && taken.epoch > before!.epoch,
      JSON.stringify(taken),
    );
    const [{ epoch: storedEpoch }] = await cluster.sql`
      SELECT epoch::int AS epoch FROM actor_epochs WHERE actor_id = ${actor}`;
    assert.equal(storedEpoch, taken!.epoch);

    victim.kill("SIGCONT");
    frozen = false;
    // Its queued append (m2, old epoch) reaches Postgres late and is rejected.
    const fenced = await until(
      "the victim logs its fenced write",
      () =>
        logLines(victim).find((l) =>
          l.msg === "fenced write rejected" && l.actorId === actor && l.epoch === before!.epoch
        ),
    );
    assert.equal(fenced.node, victimId);
    await until(
      "the victim dropped the actor",
      () => logLines(victim).some((l) => l.msg === "actor dropped" && l.actorId === actor),
    );
    await until(
      "the victim rejoined",
      () => logLines(victim).some((l) => l.msg === "rejoined the cluster"),
    );

    // The first attempts of m1 and m2 failed (timeout) or not; the retries land once.
    await Promise.all([m1First, m2First]);
    const m1 = await u1.send(to, "m1", "1");
    const m2 = await u1.send(to, "m2", "2");
    const rows = (await storedMessages(cluster.sql)).filter((r) => r.conv === m0.ok.conv);
    assert.deepEqual(rows.map((r) => r.cseq), [1, 2, 3, 4]);
    assert.deepEqual(rows.map((r) => r.cmid).sort(), ["m0", "m1", "m2", "m3"]);
    for (const o of [m0, m1, m2, m3]) {
      const row = rows.find((r) => r.mid === o.ok.mid);
      assert.ok(row, `${o.ok.mid} stored`);
      assert.equal(row.cseq, o.ok.cseq);
    }
    assert.ok((m2.ok.cseq as number) > (m3.ok.cseq as number), "m2 was not stored by the zombie");
    assert.deepEqual(await integrityProblems(cluster.sql), []);
    assert.equal(await u2.catchUp(), 4);
    assert.deepEqual(u2.messages().map((m) => m.mid), rows.map((r) => r.mid));

    // The victim serves again: a client on it sends and its peer receives.
    const onVictim = await TestClient.connect(victim.url, u2.token, "im.v1.msgpack", "d2");
    sockets.push(onVictim);
    let back: F | null = null;
    for (let i = 0; i < 100 && back?.op !== "ok"; i++) {
      back = await onVictim.request({
        op: "send",
        to: { user: u1.userId },
        cmid: "back",
        body: { type: "text", text: "back" },
      }, 30_000);
      if (back.op !== "ok") await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(back?.op, "ok", JSON.stringify(back));
    assert.equal(back!.cseq, 5);
    await until(
      "u1 gets the message sent through the victim",
      () => u1.messages().some((m) => m.mid === back!.mid),
    );
  } finally {
    if (frozen) victim.kill("SIGCONT");
    for (const s of sockets) await s.close();
    for (const c of clients) await c.close();
    await cluster.stop();
  }
});
