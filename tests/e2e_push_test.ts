/**
 * End to end: offline push through the webhook adapter to a local HTTP receiver that verifies
 * the HMAC-SHA256 signature; presence, mutes, do-not-disturb, quiet hours and blocks decide
 * who gets one; each push-preference refusal has its code.
 */
import assert from "node:assert/strict";
import { SOCIAL_LIMITS } from "../actors/im/social_state.ts";
import { type F, type Proto, signUp, TestClient } from "./support/client.ts";
import { testNode } from "./support/node.ts";
import { type Received, startPushReceiver } from "./support/push_receiver.ts";
import {
  closeAll,
  connectAgain,
  ok,
  people,
  type Person,
  refused,
  sleep,
  textTo,
  uniqueName,
} from "./support/people.ts";

const SECRET = "test-webhook-secret-0123456789";

async function pushNode() {
  const receiver = await startPushReceiver(SECRET);
  const node = await testNode({ PUSH_WEBHOOK_URL: receiver.url, PUSH_WEBHOOK_SECRET: SECRET });
  return { receiver, node };
}

/** Waits until `observer` (a friend of `target`) sees `target` offline. */
async function waitOffline(observer: TestClient, target: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const res = await ok(observer, { op: "presence.get", userIds: [target] });
    if (!(res.presence as { online: boolean }[])[0].online) return;
    await sleep(10);
  }
  throw new Error("still online");
}

const forMid = (mid: unknown) => (r: Received) => r.body.mid === mid;

for (const proto of ["im.v1.msgpack", "im.v1.json"] as Proto[]) {
  Deno.test(`[${proto}] an offline recipient gets one signed webhook push without the text; online ones and the sender get none`, async () => {
    const { receiver, node } = await pushNode();
    const [a, c] = await people(node.url, ["a", "c"], proto);
    const b = await signUp(node.url, uniqueName("b")); // never connected
    const extra: TestClient[] = [];
    try {
      const sent = await ok(a.c, textTo(b.userId, "secret text 123"));
      const [got] = await receiver.waitFor(1, forMid(sent.mid));
      assert.equal(got.signatureValid, true);
      assert.deepEqual(got.body, {
        type: "message",
        id: got.body.id,
        userId: b.userId,
        mid: sent.mid,
        conv: sent.conv,
        cseq: 1,
        from: a.userId,
        ts: sent.ts,
        bodyType: "text",
      });
      assert.equal(got.headers.get("x-im-delivery"), got.body.id);
      assert.equal(got.headers.get("content-type"), "application/json");
      assert.ok(!got.raw.includes("secret text"), "no message text in a push");

      // Online now: no push. The group message pushes only to the offline member.
      const bc = await TestClient.connect(node.url, b.accessToken, proto);
      extra.push(bc);
      const live = await ok(a.c, textTo(b.userId, "live"));
      await c.c.close();
      await ok(a.c, { op: "friend.request", userId: c.userId });
      const cAgain = await connectAgain(node.url, c, proto);
      await ok(cAgain, { op: "friend.accept", userId: a.userId });
      await cAgain.close();
      await waitOffline(a.c, c.userId);
      const g = await ok(a.c, { op: "group.create", name: "g", members: [b.userId, c.userId] });
      const inGroup = await ok(a.c, {
        op: "send",
        to: { group: g.groupId },
        cmid: "g1",
        body: { type: "text", text: "to all" },
      });
      const groupPushes = await receiver.waitFor(1, forMid(inGroup.mid));
      await sleep(100);
      assert.deepEqual(
        receiver.received.filter(forMid(inGroup.mid)).map((r) => r.body.userId),
        [c.userId],
      );
      assert.equal(groupPushes[0].signatureValid, true);
      assert.equal(receiver.received.filter(forMid(live.mid)).length, 0);
      assert.ok(receiver.received.every((r) => r.body.userId !== a.userId));
    } finally {
      await closeAll([a, c], extra);
      await node.stop();
      await receiver.close();
    }
  });
}

Deno.test("muted conversations, do-not-disturb, quiet hours and blocks suppress offline pushes", async () => {
  const { receiver, node } = await pushNode();
  const [a, b, c] = await people(node.url, ["a", "b", "c"], "im.v1.json");
  const d = await signUp(node.url, uniqueName("d")); // offline: every message to d is pushed
  const extra: TestClient[] = [];
  let bc = b.c;
  try {
    await ok(c.c, { op: "friend.request", userId: b.userId });
    await ok(bc, { op: "friend.accept", userId: c.userId });
    const conv = `d:${[a.userId, b.userId].sort().join(":")}`;

    /** With `b` offline: a writes to b, then to d; d's push proves b's decision was made. */
    const expectPush = async (setup: F[], pushedToB: boolean) => {
      for (const f of setup) await ok(bc, f);
      await bc.close();
      await waitOffline(c.c, b.userId);
      const toB = await ok(a.c, textTo(b.userId));
      const barrier = await ok(a.c, textTo(d.userId));
      await receiver.waitFor(1, forMid(barrier.mid));
      if (pushedToB) await receiver.waitFor(1, forMid(toB.mid));
      else await sleep(100);
      assert.equal(receiver.received.filter(forMid(toB.mid)).length, pushedToB ? 1 : 0);
      bc = await connectAgain(node.url, b, "im.v1.json");
      extra.push(bc);
    };

    const muted = await ok(bc, { op: "push.mute", conv, until: Date.now() + 3_600_000 });
    assert.deepEqual((muted.muted as F[]).map((m) => m.conv), [conv]);
    await expectPush([], false);
    const unmuted = await ok(bc, { op: "push.unmute", conv });
    assert.deepEqual(unmuted.muted, []);
    // The conversation list's mute flag silences pushes too.
    await expectPush([{ op: "conv.mute", conv, muted: true }], false);
    await ok(bc, { op: "conv.mute", conv, muted: false });
    await expectPush([{ op: "push.settings", dnd: true }], false);
    const now = new Date();
    const m = now.getUTCHours() * 60 + now.getUTCMinutes();
    const hhmm = (x: number) => {
      const v = ((x % 1440) + 1440) % 1440;
      return `${String(Math.floor(v / 60)).padStart(2, "0")}:${String(v % 60).padStart(2, "0")}`;
    };
    const quiet = { start: hhmm(m - 10), end: hhmm(m + 10), tz: "UTC" };
    const set = await ok(bc, { op: "push.settings", dnd: false, quietHours: quiet });
    assert.deepEqual(set.quietHours, { start: (m + 1430) % 1440, end: (m + 10) % 1440, tz: "UTC" });
    assert.equal(set.dnd, false);
    await expectPush([], false);
    await expectPush([{
      op: "push.settings",
      quietHours: { start: hhmm(m + 60), end: hhmm(m + 120) },
    }], true);
    // Muted until a time that has passed: pushed again.
    await ok(bc, { op: "push.mute", conv, until: Date.now() + 20 });
    await sleep(40);
    await expectPush([{ op: "push.settings", quietHours: null }], true);

    // A blocked sender's group messages are not pushed to the blocker.
    await ok(bc, { op: "block.add", userId: a.userId });
    const g = await ok(a.c, { op: "group.create", name: "g", members: [b.userId, d.userId] });
    await bc.close();
    await waitOffline(c.c, b.userId);
    const inGroup = await ok(a.c, {
      op: "send",
      to: { group: g.groupId },
      cmid: "g1",
      body: { type: "text", text: "x" },
    });
    await receiver.waitFor(1, forMid(inGroup.mid));
    await sleep(100);
    assert.deepEqual(
      receiver.received.filter(forMid(inGroup.mid)).map((r) => r.body.userId),
      [d.userId],
    );
    assert.ok(receiver.received.every((r) => r.signatureValid));
  } finally {
    await closeAll([a, b, c], extra);
    await node.stop();
    await receiver.close();
  }
});

Deno.test("every push preference refusal has its code", async () => {
  const node = await testNode();
  const [a, b, c] = await people(node.url, ["a", "b", "c"], "im.v1.msgpack");
  try {
    const conv = `d:${[a.userId, b.userId].sort().join(":")}`;
    const others = `d:${[c.userId, b.userId].sort().join(":")}`;
    const g = await ok(b.c, { op: "group.create", name: "g", members: [c.userId] });
    const r = (frame: F, code: string) => refused(a.c, frame, code);
    await r({ op: "push.mute", conv: others }, "not_member");
    await r({ op: "push.mute", conv: "x:y" }, "not_member");
    await r({ op: "push.mute", conv: g.conv }, "not_member");
    await r({ op: "push.mute", conv: "g:g_" + "q".repeat(20) }, "not_member");
    await r({ op: "push.mute" }, "bad_request");
    await r({ op: "push.mute", conv, until: 0 }, "bad_request");
    await r({ op: "push.mute", conv, until: "soon" }, "bad_request");
    await r({ op: "push.unmute", conv }, "not_found");
    await r({ op: "push.unmute", conv: "nope" }, "not_member");
    await r({ op: "push.settings", dnd: "yes" }, "bad_request");
    await r({ op: "push.settings", quietHours: { start: "25:00", end: "07:00" } }, "bad_request");
    await r({ op: "push.settings", quietHours: { start: "22:00", end: "22:00" } }, "bad_request");
    await r({
      op: "push.settings",
      quietHours: { start: "22:00", end: "07:00", tz: "Mars/Olympus" },
    }, "bad_request");
    await r({ op: "push.settings", quietHours: "22-07" }, "bad_request");
    const tokyo = await ok(a.c, {
      op: "push.settings",
      quietHours: { start: "22:00", end: "07:00", tz: "Asia/Tokyo" },
    });
    assert.deepEqual(tokyo.quietHours, { start: 1320, end: 420, tz: "Asia/Tokyo" });

    const saved = SOCIAL_LIMITS.mutes;
    SOCIAL_LIMITS.mutes = 1;
    try {
      await ok(a.c, { op: "push.mute", conv });
      await ok(a.c, { op: "push.mute", conv }); // the same one again: fine
      await r(
        { op: "push.mute", conv: `d:${[a.userId, c.userId].sort().join(":")}` },
        "limit_exceeded",
      );
    } finally {
      SOCIAL_LIMITS.mutes = saved;
    }
    const settings = await ok(a.c, { op: "push.settings" });
    assert.deepEqual(settings.muted, [{ conv, until: null }]);
  } finally {
    await closeAll([a, b, c] as Person[]);
    await node.stop();
  }
});
