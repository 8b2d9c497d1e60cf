/**
 * Three real node processes sharing Redis, NATS and Postgres are one IM service: users on
 * different nodes talk directly and in groups, every message arrives once, in `cseq` order,
 * with a gapless inbox `seq`, and a token issued by one node works on every node.
 */
import assert from "node:assert/strict";
import { type F, TestClient } from "../support/client.ts";
import { integrityProblems, ResilientClient, startCluster, until } from "./fixture.ts";

Deno.test("three nodes: direct and group messages cross nodes and arrive once, in order", async () => {
  const cluster = await startCluster(3);
  const clients: ResilientClient[] = [];
  const extra: TestClient[] = [];
  try {
    const [a, b, c] = await Promise.all([
      ResilientClient.create(cluster, "a", 0),
      ResilientClient.create(cluster, "b", 1),
      ResilientClient.create(cluster, "c", 2),
    ]);
    clients.push(a, b, c);

    // A token issued by node 0 is accepted by every node.
    for (const node of cluster.nodes) {
      const t = await TestClient.open(node.url);
      extra.push(t);
      const ok = await t.request({ op: "auth", token: a.token, device: "probe" }, 15_000);
      assert.equal(ok.op, "ok", `node ${node.url}: ${JSON.stringify(ok)}`);
      assert.equal(ok.userId, a.userId);
    }
    for (const t of extra.splice(0)) await t.close();

    // Direct: a (node 0) <-> b (node 1), both directions, sends in flight together.
    const directOks = await Promise.all([
      ...Array.from({ length: 10 }, (_, i) => a.send({ user: b.userId }, `ab${i}`, `a→b ${i}`)),
      ...Array.from({ length: 10 }, (_, i) => b.send({ user: a.userId }, `ba${i}`, `b→a ${i}`)),
    ]);
    const conv = directOks[0].ok.conv as string;
    assert.deepEqual(
      directOks.map((o) => o.ok.cseq as number).sort((x, y) => x - y),
      Array.from({ length: 20 }, (_, i) => i + 1),
      "cseq 1..20, each once",
    );
    for (const o of directOks) assert.equal(o.ok.conv, conv);

    // Group across the three nodes.
    const created = (await a.request({
      op: "group.create",
      name: "trio",
      members: [b.userId, c.userId],
    })).answer;
    assert.equal(created.op, "ok", JSON.stringify(created));
    const group = created.groupId as string;
    const groupOks = await Promise.all(
      [a, b, c].flatMap((u, k) =>
        Array.from({ length: 5 }, (_, i) => u.send({ group: group }, `g${k}-${i}`, `g ${k} ${i}`))
      ),
    );
    assert.deepEqual(
      groupOks.map((o) => o.ok.cseq as number).sort((x, y) => x - y),
      Array.from({ length: 15 }, (_, i) => i + 1),
    );

    // Live pushes: a and b get 20 direct + 15 group, c gets 15 group, each exactly once.
    const expected = new Map([[a, 35], [b, 35], [c, 15]]);
    for (const [u, n] of expected) {
      await until(`${u.userId} received ${n} messages`, () => u.conn!.msgs().length >= n);
    }
    for (const [u, n] of expected) {
      const live = u.conn!.msgs();
      assert.equal(live.length, n, `${u.userId} got ${live.length} pushes, expected ${n}`);
      assert.equal(new Set(live.map((m) => m.mid)).size, n, "no message pushed twice");
      assert.deepEqual(
        live.map((m) => m.seq),
        Array.from({ length: n }, (_, i) => i + 1),
        "inbox seq is gapless and pushed in order",
      );
      const perConv = new Map<string, number[]>();
      for (const m of live) {
        const list = perConv.get(m.conv as string) ?? [];
        list.push(m.cseq as number);
        perConv.set(m.conv as string, list);
      }
      for (const [cv, cseqs] of perConv) {
        assert.deepEqual(
          cseqs,
          Array.from({ length: cseqs.length }, (_, i) => i + 1),
          `${u.userId} sees ${cv} in cseq order`,
        );
      }
      // What was pushed is what the store says (sync from 0 on a fresh connection).
      assert.equal(await u.catchUp(), n);
    }
    const ids = new Set(groupOks.map((o) => o.ok.mid as string));
    for (const u of [a, b, c]) {
      const got = u.messages().filter((m: F) => m.conv === groupOks[0].ok.conv);
      assert.deepEqual(new Set(got.map((m) => m.mid)), ids);
    }
    assert.deepEqual(await integrityProblems(cluster.sql), []);
  } finally {
    for (const t of extra) await t.close();
    for (const c of clients) await c.close();
    await cluster.stop();
  }
});
