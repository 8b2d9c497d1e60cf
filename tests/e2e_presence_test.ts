/**
 * End to end through a real WebSocket: presence across devices (and across a node restart),
 * who may see it, bounded subscriptions, and typing indicators — each refusal with its code.
 */
import assert from "node:assert/strict";
import { PRESENCE_LIMITS, PRESENCE_TIMING } from "../actors/im/presence.ts";
import { createMemoryCluster } from "../cluster/from_config.ts";
import { loadConfig } from "../config.ts";
import { startNode } from "../node.ts";
import { createLogger } from "../observability/log.ts";
import type { Proto } from "./support/client.ts";
import { login, signUp, TestClient } from "./support/client.ts";
import { testNode } from "./support/node.ts";
import {
  closeAll,
  connectAgain,
  framesOf,
  ok,
  people,
  type Person,
  pushed,
  refused,
  sleep,
  textTo,
  uniqueName,
} from "./support/people.ts";

const PROTOS: Proto[] = ["im.v1.msgpack", "im.v1.json"];

async function befriend(a: Person, b: Person): Promise<void> {
  await ok(a.c, { op: "friend.request", userId: b.userId });
  await ok(b.c, { op: "friend.accept", userId: a.userId });
}

type P = { userId: string; online: boolean; lastSeen: number | null };

for (const proto of PROTOS) {
  Deno.test(`[${proto}] a friend sees a user online while any device is connected, then offline with last seen`, async () => {
    const node = await testNode();
    const [a, b] = await people(node.url, ["a", "b"], proto);
    const extra: TestClient[] = [];
    try {
      await befriend(a, b);
      const sub = await ok(b.c, { op: "presence.subscribe", userIds: [a.userId] });
      assert.deepEqual(sub.presence, [{ userId: a.userId, online: true, lastSeen: null }]);

      // A second device, then the first one leaves: still online, no frame.
      const a2 = await connectAgain(node.url, a, proto, "tablet");
      extra.push(a2);
      await a.c.close();
      const got = await ok(b.c, { op: "presence.get", userIds: [a.userId] });
      assert.deepEqual((got.presence as P[])[0].online, true);
      assert.equal(framesOf(b.c, "presence").length, 0);

      const before = Date.now();
      await a2.close();
      const off = await pushed(b.c, "presence", { userId: a.userId, online: false });
      assert.ok((off.lastSeen as number) >= before && (off.lastSeen as number) <= Date.now());
      const seen = await ok(b.c, { op: "presence.get", userIds: [a.userId] });
      assert.deepEqual(seen.presence, [{
        userId: a.userId,
        online: false,
        lastSeen: off.lastSeen,
      }]);

      const back = await connectAgain(node.url, a, proto);
      extra.push(back);
      await pushed(b.c, "presence", { userId: a.userId, online: true, lastSeen: null });

      // Unsubscribed: no more frames.
      await ok(b.c, { op: "presence.unsubscribe", userIds: [a.userId] });
      await back.close();
      await sleep(150);
      assert.equal(framesOf(b.c, "presence").length, 2);
    } finally {
      await closeAll([a, b], extra);
      await node.stop();
    }
  });
}

Deno.test("presence is visible to friends and group co-members only, and subscriptions are bounded", async () => {
  const node = await testNode();
  const [a, b, c, d, e] = await people(node.url, ["a", "b", "c", "d", "e"], "im.v1.json");
  try {
    await befriend(a, b);
    await befriend(a, e);
    const shared = await ok(a.c, { op: "group.create", name: "ac", members: [c.userId] });
    const other = await ok(d.c, { op: "group.create", name: "dc", members: [c.userId] });
    const cSub = (frame: Record<string, unknown>) => ({ op: "presence.subscribe", ...frame });

    await refused(c.c, cSub({ userIds: [a.userId] }), "forbidden");
    await refused(c.c, cSub({ userIds: [a.userId], group: other.groupId }), "forbidden");
    await refused(b.c, cSub({ userIds: [a.userId, c.userId] }), "forbidden");
    await refused(b.c, cSub({ userIds: [c.userId], group: shared.groupId }), "not_member");
    await refused(c.c, cSub({ userIds: [a.userId], group: "g_" + "b".repeat(20) }), "not_found");
    const viaGroup = await ok(c.c, cSub({ userIds: [a.userId], group: shared.groupId }));
    assert.deepEqual(viaGroup.presence, [{ userId: a.userId, online: true, lastSeen: null }]);
    // Friends and co-members in one request.
    const both = await ok(a.c, cSub({ userIds: [b.userId, c.userId], group: shared.groupId }));
    assert.deepEqual((both.presence as P[]).map((p) => p.userId), [b.userId, c.userId]);

    await refused(a.c, cSub({ userIds: [a.userId] }), "bad_request");
    await refused(a.c, cSub({ userIds: [] }), "bad_request");
    await refused(a.c, cSub({ userIds: ["x"], group: 7 }), "bad_request");
    const many = Array.from({ length: PRESENCE_LIMITS.perRequest + 1 }, (_, i) => `u_${i}`);
    await refused(a.c, cSub({ userIds: many }), "bad_request");
    await refused(a.c, { op: "presence.unsubscribe" }, "bad_request");

    // A block hides presence even from a co-member.
    await ok(a.c, { op: "block.add", userId: c.userId });
    await refused(c.c, cSub({ userIds: [a.userId], group: shared.groupId }), "forbidden");
    await refused(
      c.c,
      { op: "presence.get", userIds: [a.userId], group: shared.groupId },
      "forbidden",
    );

    // The bound per user.
    const saved = PRESENCE_LIMITS.subs;
    PRESENCE_LIMITS.subs = 2;
    try {
      await refused(e.c, cSub({ userIds: [a.userId, b.userId, c.userId] }), "limit_exceeded");
      await ok(e.c, cSub({ userIds: [a.userId] }));
      await ok(b.c, cSub({ userIds: [a.userId] }));
    } finally {
      PRESENCE_LIMITS.subs = saved;
    }

    // The end of a friendship ends the subscription: b gets nothing more about a.
    await ok(b.c, { op: "friend.delete", userId: a.userId });
    await refused(b.c, { op: "presence.get", userIds: [a.userId] }, "forbidden");
    const a2 = await connectAgain(node.url, a, "im.v1.json");
    await a.c.close();
    await a2.close();
    await pushed(e.c, "presence", { userId: a.userId, online: false });
    assert.equal(framesOf(b.c, "presence").length, 0);
  } finally {
    await closeAll([a, b, c, d, e]);
    await node.stop();
  }
});

Deno.test("typing indicators reach the other participants only and are never stored", async () => {
  const node = await testNode();
  const [a, b, c, d] = await people(node.url, ["a", "b", "c", "d"], "im.v1.msgpack");
  try {
    await ok(a.c, { op: "typing", to: { user: b.userId } });
    const t = await pushed(b.c, "typing", { from: a.userId });
    const conv = `d:${[a.userId, b.userId].sort().join(":")}`;
    assert.deepEqual({ ...t }, { op: "typing", conv, from: a.userId, active: true });
    await ok(a.c, { op: "typing", to: { user: b.userId }, active: false });
    await pushed(b.c, "typing", { from: a.userId, active: false });

    const g = await ok(a.c, { op: "group.create", name: "g", members: [b.userId, c.userId] });
    await ok(b.c, { op: "typing", to: { group: g.groupId } });
    for (const p of [a, c]) {
      const f = await pushed(p.c, "typing", { from: b.userId, conv: g.conv as string });
      assert.equal(f.active, true);
    }
    await refused(d.c, { op: "typing", to: { group: g.groupId } }, "not_member");
    await refused(a.c, { op: "typing", to: { user: "u_" + "z".repeat(20) } }, "not_found");
    await refused(a.c, { op: "typing", to: { user: b.userId }, active: "yes" }, "bad_request");
    await refused(a.c, { op: "typing", to: { user: b.userId, group: g.groupId } }, "bad_request");
    await refused(a.c, { op: "typing" }, "bad_request");

    await sleep(100);
    assert.equal(framesOf(a.c, "typing").filter((f) => f.from === a.userId).length, 0);
    assert.equal(framesOf(d.c, "typing").length, 0);
    // Nothing was stored: no history, no inbox entries.
    assert.deepEqual((await ok(b.c, { op: "history", conv })).messages, []);
    assert.equal((await ok(b.c, { op: "sync", after: 0 })).seq, 0);
    assert.equal(b.c.msgs().length, 0);
    await ok(a.c, textTo(b.userId));
  } finally {
    await closeAll([a, b, c, d]);
    await node.stop();
  }
});

Deno.test("after a node restart, connections of the old node no longer count as online", async () => {
  const dir = await Deno.makeTempDir({ prefix: "im_presence_" });
  let node = await testNode({}, dir);
  const nameA = uniqueName("a");
  const nameB = uniqueName("b");
  const a = await signUp(node.url, nameA);
  const b = await signUp(node.url, nameB);
  let ca = await TestClient.connect(node.url, a.accessToken);
  let cb = await TestClient.connect(node.url, b.accessToken);
  try {
    await ok(ca, { op: "friend.request", userId: b.userId });
    await ok(cb, { op: "friend.accept", userId: a.userId });
    // The node goes away while a is connected (its close may not reach a's actor).
    await node.stop(true);
    await Promise.all([ca.closed, cb.closed]);
    node = await testNode({}, dir);
    const [a2, b2] = await Promise.all([
      login(node.url, nameA, "correct horse battery"),
      login(node.url, nameB, "correct horse battery"),
    ]);
    cb = await TestClient.connect(node.url, b2.accessToken);
    const got = await ok(cb, { op: "presence.get", userIds: [a.userId] });
    const p = (got.presence as P[])[0];
    assert.equal(p.online, false);
    assert.equal(typeof p.lastSeen, "number");
    ca = await TestClient.connect(node.url, a2.accessToken);
    assert.equal(
      ((await ok(cb, { op: "presence.get", userIds: [a.userId] })).presence as P[])[0]
        .online,
      true,
    );
  } finally {
    await ca.close();
    await cb.close();
    await node.stop();
  }
});

Deno.test("devices on every node of a cluster count, and a node that leaves stops counting", async () => {
  const dir = await Deno.makeTempDir({ prefix: "im_presence_cluster_" });
  const memoryCluster = createMemoryCluster();
  const start = () =>
    startNode(
      loadConfig({
        PORT: "0",
        HOST: "127.0.0.1",
        DATA_DIR: dir,
        PASSWORD_ITERATIONS: "1000",
        LOG_LEVEL: "error",
      }),
      { memoryCluster, logger: createLogger({ level: "error" }) },
    );
  const savedTick = PRESENCE_TIMING.tickMs;
  PRESENCE_TIMING.tickMs = 100;
  const n1 = await start();
  const n2 = await start();
  const clients: TestClient[] = [];
  try {
    const a = await signUp(n1.url, uniqueName("a"));
    const b = await signUp(n1.url, uniqueName("b"));
    const a1 = await TestClient.connect(n1.url, a.accessToken);
    const a2 = await TestClient.connect(n2.url, a.accessToken, "im.v1.json", "tablet");
    const b1 = await TestClient.connect(n1.url, b.accessToken);
    clients.push(a1, a2, b1);
    await ok(a1, { op: "friend.request", userId: b.userId });
    await ok(b1, { op: "friend.accept", userId: a.userId });
    const sub = await ok(b1, { op: "presence.subscribe", userIds: [a.userId] });
    assert.equal((sub.presence as P[])[0].online, true);

    // The device on node 1 leaves: the one on node 2 keeps a online.
    await a1.close();
    await sleep(300);
    const still = await ok(b1, { op: "presence.get", userIds: [a.userId] });
    assert.equal((still.presence as P[])[0].online, true);
    assert.equal(framesOf(b1, "presence").length, 0);

    // Node 2 stops (its sockets are closed and it leaves the cluster): a is offline.
    await n2.shutdown();
    await a2.closed;
    for (let i = 0;; i++) {
      const res = await ok(b1, { op: "presence.get", userIds: [a.userId] });
      if (!(res.presence as P[])[0].online) break;
      if (i > 100) throw new Error("a stays online after its node left");
      await sleep(50);
    }
    const off = await pushed(b1, "presence", { userId: a.userId, online: false });
    assert.equal(typeof off.lastSeen, "number");
  } finally {
    PRESENCE_TIMING.tickMs = savedTick;
    for (const c of clients) await c.close();
    await n1.shutdown();
    await n2.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
