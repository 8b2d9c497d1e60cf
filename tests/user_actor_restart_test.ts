/**
 * End to end: what a user actor keeps across restarts now that connects cost no durable write
 * and ack cursors are written by the node's ack writer — presence is rebuilt from the gateways
 * after an activation that lost its connection list, and acknowledged cursors survive a
 * graceful restart.
 */
import assert from "node:assert/strict";
import { PRESENCE_TIMING } from "../actors/im/presence.ts";
import { TestClient } from "./support/client.ts";
import { testNode } from "./support/node.ts";
import { closeAll, connectAgain, ok, people, sleep, textTo } from "./support/people.ts";

type P = { userId: string; online: boolean; lastSeen: number | null };

Deno.test("a user actor dropped without a hand-off learns its live sessions again from the gateways", async () => {
  const savedConfirm = PRESENCE_TIMING.confirmMs;
  PRESENCE_TIMING.confirmMs = 300;
  const node = await testNode();
  const [a, b] = await people(node.url, ["a", "b"], "im.v1.msgpack");
  const extra: TestClient[] = [];
  try {
    await ok(a.c, { op: "friend.request", userId: b.userId });
    await ok(b.c, { op: "friend.accept", userId: a.userId });
    await ok(b.c, { op: "presence.subscribe", userIds: [a.userId] });
    // a's snapshots so far (friendship, watch lease) hold its first device. Then the first
    // device leaves and a second one comes: neither costs a write.
    const a2 = await connectAgain(node.url, a, "im.v1.msgpack", "tablet");
    extra.push(a2);
    await a.c.close();
    await sleep(100);

    // Every actor is dropped without writing (as after a crash of the node that hosted them).
    node.host.dropAll("test: simulated crash");
    // Re-activated from a snapshot that still lists the first device and not the second.
    const got = await ok(b.c, { op: "presence.get", userIds: [a.userId] });
    assert.equal((got.presence as P[])[0].online, true);
    // The gateway re-announced the second device; the first one, which nobody re-announced,
    // is forgotten after confirmMs: a stays online through that.
    await sleep(PRESENCE_TIMING.confirmMs + 300);
    const still = await ok(b.c, { op: "presence.get", userIds: [a.userId] });
    assert.equal((still.presence as P[])[0].online, true);

    // The second device leaves: the actor knew it (re-announced) and forgot the first one, so
    // a goes offline. (b's watch lease was not in a's snapshot: b asks rather than waits for a
    // frame; the lease comes back with b's next renewal.)
    await a2.close();
    for (let i = 0;; i++) {
      const p = ((await ok(b.c, { op: "presence.get", userIds: [a.userId] })).presence as P[])[0];
      if (!p.online) {
        assert.equal(typeof p.lastSeen, "number");
        break;
      }
      if (i > 40) throw new Error("a stays online after its last device left");
      await sleep(50);
    }
  } finally {
    PRESENCE_TIMING.confirmMs = savedConfirm;
    await closeAll([a, b], extra);
    await node.stop();
  }
});

Deno.test("acknowledged cursors are written in the background and survive a graceful restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "im_acks_" });
  let node = await testNode({}, dir);
  const [a, b] = await people(node.url, ["a", "b"], "im.v1.msgpack");
  try {
    for (let i = 0; i < 3; i++) await ok(a.c, textTo(b.userId, `m${i}`));
    await b.c.waitForMsgs(3);
    const seqs = b.c.msgs().map((m) => m.seq as number);
    b.c.send({ op: "ack", seq: seqs[1] });
    // Written by the node's ack writer within its interval, without any other traffic.
    for (let i = 0;; i++) {
      const acks = await node.store.loadAcks(b.userId);
      if (acks.some((x) => x.seq === seqs[1])) break;
      if (i > 50) throw new Error(`ack not written: ${JSON.stringify(acks)}`);
      await sleep(50);
    }
    // The last ack goes out with the passivation of the graceful stop, not by the timer.
    await ok(b.c, { op: "ack", seq: seqs[2] });
    await node.stop(true);
    await Promise.all([a.c.closed, b.c.closed]);
    node = await testNode({}, dir);
    const acks = await node.store.loadAcks(b.userId);
    assert.equal(acks.length, 1);
    assert.equal(acks[0].seq, seqs[2]);
    // Cursors only move forward: an older ack on the same device answers the stored cursor.
    const again = await TestClient.connect(node.url, b.token);
    try {
      assert.equal((await ok(again, { op: "ack", seq: seqs[0] })).seq, seqs[2]);
    } finally {
      await again.close();
    }
  } finally {
    await closeAll([a, b]);
    await node.stop();
  }
});
