/**
 * Message features across two real node processes (shared Redis, NATS and Postgres; no shared
 * directory, so media bytes go to Postgres, the cluster default): a media item uploaded on one
 * node is served on the other to a participant only,
 * and reactions, read receipts and conversation-list changes made on one node reach devices
 * connected to the other.
 */
import assert from "node:assert/strict";
import { type F, signUp, TestClient } from "../support/client.ts";
import { png } from "../../media/testing_images.ts";
import { startCluster, uname } from "./fixture.ts";

Deno.test("two nodes: media, reactions, read receipts and conversation-list pushes cross nodes", async () => {
  const cluster = await startCluster(2);
  const clients: TestClient[] = [];
  try {
    const [n0, n1] = cluster.nodes.map((n) => n.url);
    const a = await signUp(n0, uname("a"));
    const b = await signUp(n1, uname("b"));
    const c = await signUp(n1, uname("c"));
    const ca = await TestClient.connect(n0, a.accessToken);
    const cb = await TestClient.connect(n1, b.accessToken);
    const cb0 = await TestClient.connect(n0, b.accessToken, "im.v1.json", "second");
    clients.push(ca, cb, cb0);

    const image = await png(12, 34);
    const up = await fetch(`${n0}/v1/media`, {
      method: "POST",
      headers: { authorization: `Bearer ${a.accessToken}` },
      body: image as Uint8Array<ArrayBuffer>,
    });
    const media = await up.json() as F;
    assert.equal(up.status, 201, JSON.stringify(media));
    const sent = await ca.request({
      op: "send",
      to: { user: b.userId },
      cmid: "pic",
      body: { type: "image", mediaId: media.mediaId },
    }, 15_000);
    assert.equal(sent.op, "ok", JSON.stringify(sent));
    const get = (token: string) =>
      fetch(`${n1}/v1/media/${media.mediaId}`, { headers: { authorization: `Bearer ${token}` } });
    const got = await get(b.accessToken);
    assert.equal(got.status, 200);
    assert.deepEqual(new Uint8Array(await got.arrayBuffer()), image);
    const denied = await get(c.accessToken);
    await denied.body?.cancel();
    assert.equal(denied.status, 404);

    const conv = sent.conv as string;
    const reaction = ca.waitFor((f) => f.op === "msg.updated" && f.change === "reaction", 15_000);
    const r = await cb.request({ op: "msg.react", conv, mid: sent.mid, emoji: "🔥" }, 15_000);
    assert.equal(r.op, "ok", JSON.stringify(r));
    assert.equal((await reaction).by, b.userId);

    const receipt = ca.waitFor((f) => f.op === "read" && f.user === b.userId, 15_000);
    const listAtOtherNode = cb0.waitFor((f) => f.op === "conv.updated" && f.read === 1, 15_000);
    await cb.request({ op: "read", conv, cseq: 1 }, 15_000);
    assert.equal((await receipt).cseq, 1);
    await listAtOtherNode;

    const pinned = cb0.waitFor((f) => f.op === "conv.updated" && f.pinned === true, 15_000);
    await cb.request({ op: "conv.pin", conv, pinned: true }, 15_000);
    await pinned;
    const list = await cb0.request({ op: "conversations" }, 15_000);
    assert.deepEqual(
      (list.convs as F[]).map((x) => [x.conv, x.pinned, x.unread]),
      [[conv, true, 0]],
    );
  } finally {
    for (const client of clients) await client.close();
    await cluster.stop();
  }
});
