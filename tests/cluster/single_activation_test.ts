/**
 * One activation cluster-wide: many concurrent first messages to cold actors, arriving through
 * every node at once, activate each actor exactly once. Counted from the runtime's own
 * activation records (the host logs "actor activated" with actorId, epoch and node at debug).
 */
import assert from "node:assert/strict";
import { type F, signUp, TestClient } from "../support/client.ts";
import { integrityProblems, logLines, startCluster, uname } from "./fixture.ts";

Deno.test("100 concurrent first messages to 10 cold actors through 3 nodes activate each once", async () => {
  const cluster = await startCluster(3, { LOG_LEVEL: "debug" });
  const sockets: TestClient[] = [];
  try {
    const urls = cluster.nodes.map((n) => n.url);
    const pairs = await Promise.all(Array.from({ length: 10 }, async (_, i) => {
      const s = await signUp(urls[i % 3], uname(`s${i}`));
      const r = await signUp(urls[(i + 1) % 3], uname(`r${i}`));
      return { s, r };
    }));
    // Each sender is connected to all three nodes (three devices), all auths at once: the
    // sender's user actor gets three concurrent first messages too.
    const conns = await Promise.all(
      pairs.map(({ s }) =>
        Promise.all(
          urls.map((url, k) => TestClient.connect(url, s.accessToken, "im.v1.msgpack", `dev${k}`)),
        )
      ),
    );
    for (const list of conns) sockets.push(...list);

    // 100 sends: 10 per direct conversation, spread over the three nodes, all in flight at once.
    const sends: Promise<F>[] = [];
    for (let j = 0; j < 10; j++) {
      for (let i = 0; i < 10; i++) {
        const c = conns[i][j % 3];
        sends.push(c.request({
          op: "send",
          to: { user: pairs[i].r.userId },
          cmid: `m${i}-${j}`,
          body: { type: "text", text: `hello ${j}` },
        }, 30_000));
      }
    }
    const answers = await Promise.all(sends);
    for (const a of answers) assert.equal(a.op, "ok", JSON.stringify(a));
    const byConv = new Map<string, number[]>();
    for (const a of answers) {
      const list = byConv.get(a.conv as string) ?? [];
      list.push(a.cseq as number);
      byConv.set(a.conv as string, list);
    }
    assert.equal(byConv.size, 10);
    for (const cseqs of byConv.values()) {
      assert.deepEqual(cseqs.sort((x, y) => x - y), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }

    // The activation records of every node.
    const activations = cluster.nodes.flatMap((n) =>
      logLines(n).filter((l) => l.msg === "actor activated")
    );
    const count = new Map<string, { epoch: unknown; node: unknown }[]>();
    for (const a of activations) {
      const list = count.get(a.actorId as string) ?? [];
      list.push({ epoch: a.epoch, node: a.node });
      count.set(a.actorId as string, list);
    }
    for (const { s, r } of pairs) {
      const direct = `direct/${[s.userId, r.userId].sort().join(":")}`;
      assert.equal(count.get(direct)?.length, 1, `${direct}: ${JSON.stringify(count.get(direct))}`);
      const user = `user/${s.userId}`;
      assert.equal(count.get(user)?.length, 1, `${user}: ${JSON.stringify(count.get(user))}`);
    }
    for (const [id, list] of count) assert.equal(list.length, 1, `${id} activated ${list.length}x`);
    assert.deepEqual(await integrityProblems(cluster.sql), []);
  } finally {
    for (const s of sockets) await s.close();
    await cluster.stop();
  }
});
