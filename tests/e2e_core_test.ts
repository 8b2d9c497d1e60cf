/**
 * End to end through a real WebSocket on a real port, in both subprotocols: the core contract of
 * PROTOCOL-CORE.md and the delivery promises of ARCHITECTURE.md on the embedded default.
 */
import assert from "node:assert/strict";
import { type F, type Proto, signUp, TestClient } from "./support/client.ts";
import { testNode } from "./support/node.ts";

const PROTOS: Proto[] = ["im.v1.msgpack", "im.v1.json"];

let userSeq = 0;
function uname(p: string): string {
  return `${p}${Date.now().toString(36)}${++userSeq}`.slice(0, 32);
}

for (const proto of PROTOS) {
  Deno.test(`[${proto}] auth answers userId and seq, direct messages reach both sides`, async () => {
    const node = await testNode();
    try {
      const a = await signUp(node.url, uname("a"));
      const b = await signUp(node.url, uname("b"));
      const ca = await TestClient.open(node.url, proto);
      const authOk = await ca.request({ op: "auth", token: a.accessToken });
      assert.equal(authOk.op, "ok");
      assert.equal(authOk.userId, a.userId);
      assert.equal(authOk.seq, 0);
      const cb = await TestClient.connect(node.url, b.accessToken, proto);

      const ok = await ca.request({
        op: "send",
        to: { user: b.userId },
        cmid: "c1",
        body: { type: "text", text: "hello" },
      });
      assert.equal(ok.op, "ok", JSON.stringify(ok));
      assert.equal(typeof ok.mid, "string");
      assert.equal(ok.cseq, 1);
      assert.equal(typeof ok.ts, "number");
      const conv = ok.conv as string;
      assert.equal(conv, [a.userId, b.userId].sort().join(":").replace(/^/, "d:"));

      const [mb] = await cb.waitForMsgs(1);
      assert.deepEqual(
        { ...mb },
        {
          op: "msg",
          seq: 1,
          mid: ok.mid,
          conv,
          cseq: 1,
          from: a.userId,
          to: { user: b.userId },
          ts: ok.ts,
          body: { type: "text", text: "hello" },
        },
      );
      const [ma] = await ca.waitForMsgs(1);
      assert.equal(ma.mid, ok.mid, "the sending device gets its own msg too");
      assert.equal(ma.seq, 1);

      // The reply goes the other way in the same conversation, next cseq.
      const ok2 = await cb.request({
        op: "send",
        to: { user: a.userId },
        cmid: "r1",
        body: { type: "text", text: "hi" },
      });
      assert.equal(ok2.conv, conv);
      assert.equal(ok2.cseq, 2);
      await ca.waitForMsgs(2);
      assert.equal(ca.msgs()[1].seq, 2);
      await ca.close();
      await cb.close();
    } finally {
      await node.stop();
    }
  });

  Deno.test(`[${proto}] a group of 3 gets every message once, in cseq order`, async () => {
    const node = await testNode();
    try {
      const [a, b, c] = await Promise.all(["a", "b", "c"].map((p) => signUp(node.url, uname(p))));
      const [ca, cb, cc] = await Promise.all(
        [a, b, c].map((u) => TestClient.connect(node.url, u.accessToken, proto)),
      );
      const created = await ca.request({
        op: "group.create",
        name: "trio",
        members: [b.userId, c.userId, b.userId],
      });
      assert.equal(created.op, "ok", JSON.stringify(created));
      const groupId = created.groupId as string;
      assert.equal(created.conv, `g:${groupId}`);
      for (let i = 0; i < 5; i++) {
        const sender = [ca, cb, cc][i % 3];
        const ok = await sender.request({
          op: "send",
          to: { group: groupId },
          cmid: `g${i}`,
          body: { type: "text", text: `m${i}` },
        });
        assert.equal(ok.op, "ok", JSON.stringify(ok));
        assert.equal(ok.cseq, i + 1);
      }
      for (const client of [ca, cb, cc]) {
        const msgs = await client.waitForMsgs(5);
        assert.deepEqual(msgs.map((m) => m.cseq), [1, 2, 3, 4, 5]);
        assert.deepEqual(msgs.map((m) => m.seq), [1, 2, 3, 4, 5]);
        assert.ok(msgs.every((m) => (m.to as F).group === groupId));
      }
      // history, newest first, paged with before (exclusive)
      const h = await cb.request({ op: "history", conv: created.conv, limit: 2 });
      assert.deepEqual((h.messages as F[]).map((m) => m.cseq), [5, 4]);
      assert.equal(h.more, true);
      const h2 = await cb.request({ op: "history", conv: created.conv, before: 4, limit: 500 });
      assert.deepEqual((h2.messages as F[]).map((m) => m.cseq), [3, 2, 1]);
      assert.equal(h2.more, false);
      for (const client of [ca, cb, cc]) await client.close();
    } finally {
      await node.stop();
    }
  });

  Deno.test(`[${proto}] every device of sender and recipient gets the message`, async () => {
    const node = await testNode();
    try {
      const a = await signUp(node.url, uname("a"));
      const b = await signUp(node.url, uname("b"));
      const a1 = await TestClient.connect(node.url, a.accessToken, proto, "phone");
      const a2 = await TestClient.connect(node.url, a.accessToken, proto, "laptop");
      const b1 = await TestClient.connect(node.url, b.accessToken, proto, "phone");
      const b2 = await TestClient.connect(node.url, b.accessToken, proto, "tablet");
      const ok = await a1.request({
        op: "send",
        to: { user: b.userId },
        cmid: "x",
        body: { type: "text", text: "multi" },
      });
      for (const c of [a1, a2, b1, b2]) {
        const [m] = await c.waitForMsgs(1);
        assert.equal(m.mid, ok.mid);
      }
      for (const c of [a1, a2, b1, b2]) await c.close();
    } finally {
      await node.stop();
    }
  });

  Deno.test(`[${proto}] offline messages wait in the inbox and sync delivers them in order`, async () => {
    const node = await testNode();
    try {
      const a = await signUp(node.url, uname("a"));
      const b = await signUp(node.url, uname("b"));
      const ca = await TestClient.connect(node.url, a.accessToken, proto);
      let cb = await TestClient.connect(node.url, b.accessToken, proto);
      await ca.request({
        op: "send",
        to: { user: b.userId },
        cmid: "m0",
        body: { type: "text", text: "0" },
      });
      await cb.waitForMsgs(1);
      cb.send({ op: "ack", seq: 1 });
      await cb.close();
      for (let i = 1; i <= 7; i++) {
        const ok = await ca.request({
          op: "send",
          to: { user: b.userId },
          cmid: `m${i}`,
          body: { type: "text", text: `${i}` },
        });
        assert.equal(ok.op, "ok");
      }
      cb = await TestClient.connect(node.url, b.accessToken, proto);
      assert.equal(cb.frames[0].seq, 8, "auth answers the latest inbox seq");
      const sync1 = await cb.request({ op: "sync", after: 1, limit: 4 });
      assert.equal(sync1.op, "ok");
      assert.equal(sync1.more, true);
      assert.equal(sync1.seq, 8);
      const sync2 = await cb.request({ op: "sync", after: 5 });
      assert.equal(sync2.more, false);
      const got = cb.msgs();
      assert.deepEqual(got.map((m) => m.seq), [2, 3, 4, 5, 6, 7, 8]);
      assert.deepEqual(got.map((m) => (m.body as F).text), ["1", "2", "3", "4", "5", "6", "7"]);
      // msgs of a sync come before its ok
      const okIndex = cb.frames.findIndex((f) => f.re === sync1.re);
      assert.ok(cb.frames.slice(0, okIndex).filter((f) => f.op === "msg").length === 4);
      await ca.close();
      await cb.close();
    } finally {
      await node.stop();
    }
  });

  Deno.test(`[${proto}] a repeated cmid returns the same ok and stores once`, async () => {
    const node = await testNode();
    try {
      const a = await signUp(node.url, uname("a"));
      const b = await signUp(node.url, uname("b"));
      const ca = await TestClient.connect(node.url, a.accessToken, proto);
      const frame = {
        op: "send",
        to: { user: b.userId },
        cmid: "same",
        body: { type: "text", text: "once" },
      };
      // concurrently in one message, then again later from another device
      const id1 = ca.nextId(), id2 = ca.nextId();
      const p1 = ca.waitFor((f) => f.re === id1);
      const p2 = ca.waitFor((f) => f.re === id2);
      ca.send({ ...frame, id: id1 }, { ...frame, id: id2 });
      const [r1, r2] = await Promise.all([p1, p2]);
      const other = await TestClient.connect(node.url, a.accessToken, proto, "other");
      const r3 = await other.request(frame);
      for (const r of [r2, r3]) {
        assert.equal(r.op, "ok");
        assert.deepEqual([r.mid, r.cseq, r.conv, r.ts], [r1.mid, r1.cseq, r1.conv, r1.ts]);
      }
      const h = await ca.request({ op: "history", conv: r1.conv });
      assert.equal((h.messages as F[]).length, 1);
      const next = await ca.request({ ...frame, cmid: "different" });
      assert.equal(next.cseq, 2);
      await ca.close();
      await other.close();
    } finally {
      await node.stop();
    }
  });

  Deno.test(`[${proto}] refusals: not_member, not_found, and history of others`, async () => {
    const node = await testNode();
    try {
      const [a, b, c] = await Promise.all(["a", "b", "c"].map((p) => signUp(node.url, uname(p))));
      const ca = await TestClient.connect(node.url, a.accessToken, proto);
      const cc = await TestClient.connect(node.url, c.accessToken, proto);
      const g = await ca.request({ op: "group.create", name: "ab", members: [b.userId] });
      const notMember = await cc.request({
        op: "send",
        to: { group: g.groupId },
        cmid: "x",
        body: { type: "text", text: "intrude" },
      });
      assert.equal(notMember.code, "not_member");
      assert.equal((await cc.request({ op: "history", conv: g.conv })).code, "not_member");
      const dm = await ca.request({
        op: "send",
        to: { user: b.userId },
        cmid: "d",
        body: { type: "text", text: "private" },
      });
      assert.equal((await cc.request({ op: "history", conv: dm.conv })).code, "not_member");
      assert.equal((await cc.request({ op: "history", conv: "d:nobody:zz" })).code, "not_member");
      assert.equal((await cc.request({ op: "history", conv: "garbage" })).code, "not_member");
      const unknownUser = await ca.request({
        op: "send",
        to: { user: "u_doesnotexist" },
        cmid: "y",
        body: { type: "text", text: "?" },
      });
      assert.equal(unknownUser.code, "not_found");
      const unknownGroup = await ca.request({
        op: "send",
        to: { group: "g_doesnotexist" },
        cmid: "z",
        body: { type: "text", text: "?" },
      });
      assert.equal(unknownGroup.code, "not_found");
      const badMember = await ca.request({ op: "group.create", name: "x", members: ["u_nobody"] });
      assert.equal(badMember.code, "not_found");
      assert.equal(cc.closeCode, null, "refusals leave the connection open");
      await ca.close();
      await cc.close();
    } finally {
      await node.stop();
    }
  });

  Deno.test(`[${proto}] bad_request leaves the connection open; unknown ops and ids`, async () => {
    const node = await testNode();
    try {
      const a = await signUp(node.url, uname("a"));
      const ca = await TestClient.connect(node.url, a.accessToken, proto);
      const missingTo = await ca.request({
        op: "send",
        cmid: "x",
        body: { type: "text", text: "t" },
      });
      assert.equal(missingTo.code, "bad_request");
      const wrongType = await ca.request({
        op: "send",
        to: { user: 5 },
        cmid: "x",
        body: { type: "text", text: "t" },
      });
      assert.equal(wrongType.code, "bad_request");
      const unknown = await ca.request({ op: "teleport" });
      assert.equal(unknown.code, "bad_request");
      const secondAuth = await ca.request({ op: "auth", token: a.accessToken });
      assert.equal(secondAuth.code, "bad_request");
      ca.send({ op: "ping" }); // no id → bad_request without re
      const noRe = await ca.waitFor((f) => f.op === "error" && !("re" in f));
      assert.equal(noRe.code, "bad_request");
      ca.send({ op: "ack", seq: "nope" }); // malformed ack without id: never answered
      const pong = await ca.request({ op: "ping" });
      assert.equal(pong.op, "ok");
      assert.equal(ca.frames.filter((f) => f.op === "error").length, 5);
      // limits are clamped, not refused
      const h = await ca.request({ op: "sync", after: 0, limit: 100000 });
      assert.equal(h.op, "ok");
      assert.equal(ca.closeCode, null);
      await ca.close();
    } finally {
      await node.stop();
    }
  });

  Deno.test(`[${proto}] a bad token gets invalid_token and close 4401`, async () => {
    const node = await testNode();
    try {
      const c = await TestClient.open(node.url, proto);
      const err = await c.request({ op: "auth", token: "not.a.jwt" });
      assert.equal(err.code, "invalid_token");
      assert.equal(await c.closed, 4401);
      const c2 = await TestClient.open(node.url, proto);
      c2.send({ op: "ping", id: 1 });
      const un = await c2.waitFor((f) => f.op === "error");
      assert.equal(un.code, "unauthenticated");
      assert.equal(un.re, 1);
      assert.equal(await c2.closed, 4401);
    } finally {
      await node.stop();
    }
  });

  Deno.test(`[${proto}] an undecodable message gets bad_frame and close 1007`, async () => {
    const node = await testNode();
    try {
      const a = await signUp(node.url, uname("a"));
      const c = await TestClient.connect(node.url, a.accessToken, proto);
      c.sendRaw(proto === "im.v1.json" ? "{not json" : new Uint8Array([0xc1, 0xff, 0x00]));
      const err = await c.waitFor((f) => f.op === "error");
      assert.equal(err.code, "bad_frame");
      assert.equal(await c.closed, 1007);
      // the wrong kind of WebSocket message is undecodable too
      const c2 = await TestClient.connect(node.url, a.accessToken, proto);
      c2.sendRaw(proto === "im.v1.json" ? new Uint8Array([1, 2, 3]) : "{}");
      assert.equal(await c2.closed, 1007);
    } finally {
      await node.stop();
    }
  });

  Deno.test(`[${proto}] an oversized message closes with 1009 and nothing is processed`, async () => {
    const node = await testNode({ MAX_FRAME_BYTES: "2048" });
    try {
      const a = await signUp(node.url, uname("a"));
      const b = await signUp(node.url, uname("b"));
      const c = await TestClient.connect(node.url, a.accessToken, proto);
      c.send({
        op: "send",
        id: 9,
        to: { user: b.userId },
        cmid: "big",
        body: { type: "text", text: "x".repeat(4096) },
      });
      assert.equal(await c.closed, 1009);
      assert.equal(c.frames.filter((f) => f.re === 9).length, 0);
      const c2 = await TestClient.connect(node.url, b.accessToken, proto);
      const h = await c2.request({ op: "sync", after: 0 });
      assert.equal(h.seq, 0, "nothing was stored");
      await c2.close();
    } finally {
      await node.stop();
    }
  });
}

Deno.test("an upgrade offering neither subprotocol gets HTTP 400", async () => {
  const node = await testNode();
  try {
    const r = await fetch(`${node.url}/v1/ws`, {
      headers: {
        upgrade: "websocket",
        connection: "Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
        "sec-websocket-protocol": "chat",
      },
    });
    assert.equal(r.status, 400);
    const body = await r.json();
    assert.equal(body.error.code, "bad_request");
  } finally {
    await node.stop();
  }
});

Deno.test("no auth within the deadline closes with 4401", async () => {
  const node = await testNode({ AUTH_TIMEOUT_MS: "300" });
  try {
    const c = await TestClient.open(node.url);
    assert.equal(await c.closed, 4401);
  } finally {
    await node.stop();
  }
});

Deno.test("a full mailbox is refused with an error the client sees", async () => {
  const node = await testNode({ MAILBOX_CAPACITY: "2" });
  try {
    const a = await signUp(node.url, uname("a"));
    const b = await signUp(node.url, uname("b"));
    const c = await TestClient.connect(node.url, a.accessToken);
    const g = await c.request({ op: "group.create", name: "busy", members: [b.userId] });
    const frames = Array.from({ length: 60 }, (_, i) => ({
      op: "send",
      id: 100 + i,
      to: { group: g.groupId },
      cmid: `flood${i}`,
      body: { type: "text", text: "x" },
    }));
    c.send(...frames);
    const answers = await Promise.all(
      frames.map((f) => c.waitFor((x) => x.re === f.id, 10000, true)),
    );
    const codes = answers.map((x) => x.op === "ok" ? "ok" : x.code);
    assert.ok(codes.includes("overloaded"), `expected some overloaded, got ${codes.join(",")}`);
    assert.ok(codes.includes("ok"));
    // what was acknowledged is exactly what is stored, in gapless cseq
    const okCount = codes.filter((x) => x === "ok").length;
    const h = await c.request({ op: "history", conv: g.conv, limit: 200 });
    assert.equal((h.messages as F[]).length, okCount);
    await c.close();
  } finally {
    await node.stop();
  }
});
