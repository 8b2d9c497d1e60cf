/**
 * Stop a node and start it again on the same DATA_DIR: accounts, groups, history and the
 * unacknowledged inbox are intact and every sequence continues where it stopped.
 */
import assert from "node:assert/strict";
import { type F, login, signUp, TestClient } from "./support/client.ts";
import { testNode } from "./support/node.ts";

Deno.test("a restarted embedded node keeps accounts, groups, history and inboxes", async () => {
  const first = await testNode();
  const dir = first.dataDir;
  const sfx = Date.now().toString(36);
  const a = await signUp(first.url, `alice${sfx}`);
  const b = await signUp(first.url, `bob${sfx}`);
  let conv: string, groupId: string;
  {
    const ca = await TestClient.connect(first.url, a.accessToken);
    const g = await ca.request({ op: "group.create", name: "keep", members: [b.userId] });
    groupId = g.groupId as string;
    for (let i = 0; i < 3; i++) {
      const ok = await ca.request({
        op: "send",
        to: { user: b.userId },
        cmid: `d${i}`,
        body: { type: "text", text: `d${i}` },
      });
      conv = ok.conv as string;
    }
    await ca.request({
      op: "send",
      to: { group: groupId },
      cmid: "g0",
      body: { type: "text", text: "g0" },
    });
    await ca.close();
  }
  await first.stop(true);

  const second = await testNode({}, dir);
  try {
    // the account and its password survive; old refresh tokens too
    const again = await login(second.url, `alice${sfx}`, "correct horse battery");
    assert.equal(again.userId, a.userId);
    const refreshed = await fetch(`${second.url}/v1/auth/refresh`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refreshToken: b.refreshToken }),
    });
    assert.equal(refreshed.status, 200);
    const bTokens = await refreshed.json();
    // an access token issued before the restart is still valid (the secret is kept in DATA_DIR)
    const cb = await TestClient.connect(second.url, b.accessToken);
    assert.equal(cb.frames[0].seq, 4, "b's inbox holds 4 unacknowledged messages");
    const s = await cb.request({ op: "sync", after: 0 });
    assert.equal(s.op, "ok");
    assert.deepEqual(cb.msgs().map((m) => m.seq), [1, 2, 3, 4]);
    assert.deepEqual(cb.msgs().map((m) => (m.body as F).text), ["d0", "d1", "d2", "g0"]);
    const ca = await TestClient.connect(second.url, again.accessToken);
    const next = await ca.request({
      op: "send",
      to: { user: b.userId },
      cmid: "d3",
      body: { type: "text", text: "d3" },
    });
    assert.equal(next.conv, conv!);
    assert.equal(next.cseq, 4, "conversation sequence continues");
    const gNext = await cb.request({
      op: "send",
      to: { group: groupId },
      cmid: "g1",
      body: { type: "text", text: "g1" },
    });
    assert.equal(gNext.op, "ok", "the group and its members survived");
    assert.equal(gNext.cseq, 2);
    const [m5] = (await cb.waitForMsgs(6)).slice(4);
    assert.equal(m5.seq, 5, "inbox sequence continues");
    // a cmid used before the restart is still de-duplicated
    const dup = await ca.request({
      op: "send",
      to: { user: b.userId },
      cmid: "d0",
      body: { type: "text", text: "again" },
    });
    assert.equal(dup.cseq, 1);
    const h = await ca.request({ op: "history", conv: conv!, limit: 10 });
    assert.deepEqual((h.messages as F[]).map((m) => m.cseq), [4, 3, 2, 1]);
    assert.ok(bTokens.accessToken);
    await ca.close();
    await cb.close();
  } finally {
    await second.stop();
  }
});
