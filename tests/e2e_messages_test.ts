/**
 * End to end through a real node and real WebSockets: message body types, replies, mentions,
 * reactions, recall, edit, delete-for-me, read receipts and the conversation list
 * (docs/protocol.md, "Message features"), each with its refusals.
 */
import assert from "node:assert/strict";
import { type F, signUp, TestClient } from "./support/client.ts";
import { testNode } from "./support/node.ts";
import { createTempDatabase } from "./support/postgres.ts";

let seq = 0;
function uname(p: string): string {
  return `${p}${Date.now().toString(36)}${++seq}`.slice(0, 32);
}

type Node = Awaited<ReturnType<typeof testNode>>;
type User = { userId: string; accessToken: string; client: TestClient };

async function users(node: Node, ...names: string[]): Promise<User[]> {
  return await Promise.all(names.map(async (n) => {
    const u = await signUp(node.url, uname(n));
    return { ...u, client: await TestClient.connect(node.url, u.accessToken) };
  }));
}

async function closeAll(...list: User[]): Promise<void> {
  for (const u of list) await u.client.close();
}

let cmids = 0;
async function send(from: User, to: F, body: F): Promise<F> {
  const ok = await from.client.request({ op: "send", to, cmid: `c${++cmids}`, body });
  assert.equal(ok.op, "ok", JSON.stringify(ok));
  return ok;
}

async function refused(client: TestClient, frame: F, code: string): Promise<F> {
  const res = await client.request(frame);
  assert.equal(res.op, "error", `expected ${code} for ${JSON.stringify(frame)}`);
  assert.equal(res.code, code, JSON.stringify(res));
  return res;
}

const text = (t: string) => ({ type: "text", text: t });

/** The next frame with `op` (and matching `pred`) that arrives on `client`. */
function next(client: TestClient, op: string, pred: (f: F) => boolean = () => true) {
  return client.waitFor((f) => f.op === op && pred(f));
}

/** The `msg` frame of `mid` on `client` (it may have arrived before the sender's `ok`). */
function msgOf(client: TestClient, mid: unknown) {
  return client.waitFor((f) => f.op === "msg" && f.mid === mid, 5000, true);
}

Deno.test("every body type is accepted in its own shape and stored as sent", async () => {
  const node = await testNode();
  const [a, b] = await users(node, "ta", "tb");
  try {
    const to = { user: b.userId };
    const bodies: F[] = [
      text("plain"),
      text(""),
      { type: "location", lat: 48.8584, lng: 2.2945, name: "Tour Eiffel", address: "Paris" },
      { type: "location", lat: -90, lng: 180 },
      { type: "sticker", sticker: "cat.wave", pack: "cats" },
      { type: "emoji", emoji: "🎉" },
      { type: "custom", ext: "poll.v1", data: { q: "Lunch?", options: ["yes", "no"], n: 2 } },
    ];
    for (const body of bodies) {
      const ok = await send(a, to, body);
      const m = await msgOf(b.client, ok.mid);
      assert.deepEqual(m.body, body);
    }
  } finally {
    await closeAll(a, b);
    await node.stop();
  }
});

Deno.test("malformed bodies are refused with bad_request and nothing is stored", async () => {
  const node = await testNode();
  const [a, b] = await users(node, "ba", "bb");
  try {
    const to = { user: b.userId };
    const bad: F[] = [
      { type: "video-call" },
      { type: "system", event: "group.created" },
      { type: "recalled" },
      { type: "text" },
      { type: "text", text: 5 },
      { type: "text", text: "x".repeat(10_001) },
      { type: "text", text: "hi", edited: 1 },
      { type: "text", text: "hi", replyTo: { mid: "m_1", cseq: 1 } },
      { type: "text", text: "hi", replyTo: "m_1" },
      { type: "text", text: "hi", mentions: "everyone" },
      { type: "text", text: "hi", mentions: ["../etc"] },
      { type: "text", text: "hi", mentionAll: "yes" },
      { type: "image", width: 10, height: 10 },
      { type: "image", mediaId: "../../etc/passwd" },
      { type: "image", mediaId: "md_aaaaaaaaaaaaaaaaaaaa", width: 0 },
      { type: "file", mediaId: "md_aaaaaaaaaaaaaaaaaaaa", name: "../x.pdf" },
      { type: "file", mediaId: "md_aaaaaaaaaaaaaaaaaaaa" },
      { type: "voice", mediaId: "md_aaaaaaaaaaaaaaaaaaaa" },
      { type: "voice", mediaId: "md_aaaaaaaaaaaaaaaaaaaa", duration: -1 },
      { type: "location", lat: 91, lng: 0 },
      { type: "location", lat: 0 },
      { type: "location", lat: "0", lng: 0 },
      { type: "sticker", sticker: "a b" },
      { type: "emoji", emoji: "" },
      { type: "custom", ext: "Poll", data: {} },
      { type: "custom", ext: "poll", data: [1, 2] },
      { type: "custom", ext: "poll", data: { big: "x".repeat(5000) } },
      { type: "custom", ext: "poll", data: { a: { b: { c: { d: { e: { f: { g: 1 } } } } } } } },
    ];
    for (const body of bad) {
      await refused(a.client, { op: "send", to, cmid: `bad${++cmids}`, body }, "bad_request");
    }
    const ok = await send(a, to, text("after"));
    assert.equal(ok.cseq, 1, "no refused body took a sequence number");
  } finally {
    await closeAll(a, b);
    await node.stop();
  }
});

Deno.test("a reply quotes a message of the same conversation with a snapshot of its text", async () => {
  const node = await testNode();
  const [a, b, c] = await users(node, "ra", "rb", "rc");
  try {
    const long = "q".repeat(300);
    const first = await send(a, { user: b.userId }, text(long));
    const byMid = await send(b, { user: a.userId }, {
      type: "text",
      text: "agreed",
      replyTo: { mid: first.mid },
    });
    const m = await msgOf(a.client, byMid.mid);
    assert.deepEqual((m.body as F).replyTo, {
      mid: first.mid,
      cseq: 1,
      from: a.userId,
      type: "text",
      text: "q".repeat(200),
    });
    const byCseq = await send(a, { user: b.userId }, {
      type: "emoji",
      emoji: "👍",
      replyTo: { cseq: 2 },
    });
    const h = await a.client.request({ op: "history", conv: first.conv, limit: 1 });
    const quoted = ((h.messages as F[])[0].body as F).replyTo as F;
    assert.equal(quoted.mid, byMid.mid);
    assert.equal(quoted.text, "agreed");
    assert.equal((h.messages as F[])[0].mid, byCseq.mid);

    // Quoting a message of another conversation, or one that does not exist, is refused.
    const other = await send(a, { user: c.userId }, text("elsewhere"));
    for (const replyTo of [{ mid: other.mid }, { cseq: 99 }, { mid: "m_nope" }]) {
      await refused(a.client, {
        op: "send",
        to: { user: b.userId },
        cmid: `q${++cmids}`,
        body: { type: "text", text: "x", replyTo },
      }, "not_found");
    }
  } finally {
    await closeAll(a, b, c);
    await node.stop();
  }
});

Deno.test("mentions must name participants, and @all is for group admins and the owner only", async () => {
  const node = await testNode();
  const [owner, admin, member, outsider] = await users(node, "mo", "ma", "mm", "mx");
  try {
    const ok = await send(owner, { user: member.userId }, {
      type: "text",
      text: "hey",
      mentions: [member.userId, member.userId],
    });
    const m = await msgOf(member.client, ok.mid);
    assert.deepEqual((m.body as F).mentions, [member.userId], "duplicates are dropped");
    await refused(owner.client, {
      op: "send",
      to: { user: member.userId },
      cmid: `m${++cmids}`,
      body: { type: "text", text: "x", mentions: [outsider.userId] },
    }, "bad_request");
    await refused(owner.client, {
      op: "send",
      to: { user: member.userId },
      cmid: `m${++cmids}`,
      body: { type: "text", text: "x", mentionAll: true },
    }, "bad_request");

    const g = await owner.client.request({
      op: "group.create",
      name: "mentions",
      members: [admin.userId, member.userId],
    });
    const role = await owner.client.request({
      op: "group.set_role",
      group: g.groupId,
      user: admin.userId,
      role: "admin",
    });
    assert.equal(role.op, "ok", JSON.stringify(role));
    const to = { group: g.groupId as string };
    await send(owner, to, { type: "text", text: "all of you", mentionAll: true });
    await send(admin, to, { type: "text", text: "all of you", mentionAll: true });
    await send(member, to, { type: "text", text: "hi", mentions: [admin.userId] });
    await refused(member.client, {
      op: "send",
      to,
      cmid: `m${++cmids}`,
      body: { type: "text", text: "all of you", mentionAll: true },
    }, "forbidden");
    await refused(member.client, {
      op: "send",
      to,
      cmid: `m${++cmids}`,
      body: { type: "text", text: "psst", mentions: [outsider.userId] },
    }, "bad_request");
  } finally {
    await closeAll(owner, admin, member, outsider);
    await node.stop();
  }
});

Deno.test("reactions are added, aggregated per emoji with who, pushed to participants, removed, and shown in history", async () => {
  const node = await testNode();
  const [a, b, c] = await users(node, "xa", "xb", "xc");
  try {
    const g = await a.client.request({ op: "group.create", name: "r", members: [b.userId] });
    const conv = g.conv as string;
    const sent = await send(a, { group: g.groupId as string }, text("react to me"));
    const mid = sent.mid as string;

    const pushedToA = next(a.client, "msg.updated", (f) => f.change === "reaction");
    const r1 = await b.client.request({ op: "msg.react", conv, mid, emoji: "👍" });
    assert.deepEqual(r1.reactions, [{ emoji: "👍", count: 1, users: [b.userId] }]);
    const pushed = await pushedToA;
    assert.equal(pushed.mid, mid);
    assert.equal(pushed.conv, conv);
    assert.equal(pushed.by, b.userId);
    assert.equal(pushed.emoji, "👍");
    assert.equal(pushed.on, true);
    assert.deepEqual(pushed.reactions, r1.reactions);

    await a.client.request({ op: "msg.react", conv, mid, emoji: "👍" });
    const r3 = await a.client.request({ op: "msg.react", conv, mid, emoji: "🎉" });
    assert.deepEqual(r3.reactions, [
      { emoji: "👍", count: 2, users: [b.userId, a.userId] },
      { emoji: "🎉", count: 1, users: [a.userId] },
    ]);
    const again = await a.client.request({ op: "msg.react", conv, mid, emoji: "🎉" });
    assert.deepEqual(again.reactions, r3.reactions, "adding twice changes nothing");
    const r4 = await b.client.request({ op: "msg.unreact", conv, mid, emoji: "👍" });
    assert.deepEqual(r4.reactions, [
      { emoji: "👍", count: 1, users: [a.userId] },
      { emoji: "🎉", count: 1, users: [a.userId] },
    ]);
    const h = await b.client.request({ op: "history", conv });
    assert.deepEqual((h.messages as F[])[0].reactions, r4.reactions);

    // Refusals: an outsider, an unknown message, a message of another conversation, bad emoji.
    await refused(c.client, { op: "msg.react", conv, mid, emoji: "👍" }, "not_member");
    await refused(b.client, { op: "msg.react", conv, mid: "m_unknown", emoji: "👍" }, "not_found");
    const elsewhere = await send(a, { user: c.userId }, text("dm"));
    await refused(
      a.client,
      { op: "msg.react", conv, mid: elsewhere.mid, emoji: "👍" },
      "not_found",
    );
    await refused(b.client, { op: "msg.react", conv, mid, emoji: "" }, "bad_request");
    await refused(b.client, { op: "msg.react", conv, mid, emoji: "a\u0000" }, "bad_request");
    await refused(b.client, { op: "msg.react", conv: "g:nope", mid, emoji: "x" }, "not_member");
    await refused(b.client, { op: "msg.react", conv: "bogus", mid, emoji: "x" }, "not_member");
    for (let i = 0; i < 20; i++) {
      const r = await b.client.request({ op: "msg.react", conv, mid, emoji: `e${i}` });
      assert.equal(r.op, "ok", JSON.stringify(r));
    }
    await refused(b.client, { op: "msg.react", conv, mid, emoji: "one-too-many" }, "bad_request");
  } finally {
    await closeAll(a, b, c);
    await node.stop();
  }
});

Deno.test("the sender recalls within the window, group admins at any time, nobody else", async () => {
  // A one-second window, waited out below.
  const node = await testNode({ RECALL_WINDOW_SEC: "1" });
  const [owner, admin, member] = await users(node, "co", "ca", "cm");
  try {
    const g = await owner.client.request({
      op: "group.create",
      name: "recall",
      members: [admin.userId, member.userId],
    });
    await owner.client.request({
      op: "group.set_role",
      group: g.groupId,
      user: admin.userId,
      role: "admin",
    });
    const conv = g.conv as string;
    const to = { group: g.groupId as string };

    const fresh = await send(member, to, text("oops"));
    const pushed = next(owner.client, "msg.updated", (f) => f.mid === fresh.mid);
    const ok = await member.client.request({ op: "msg.recall", conv, mid: fresh.mid });
    assert.equal(ok.op, "ok", JSON.stringify(ok));
    assert.equal((ok.body as F).type, "recalled");
    assert.equal((ok.body as F).by, member.userId);
    const update = await pushed;
    assert.equal(update.change, "recall");
    assert.deepEqual(update.body, ok.body);
    const again = await member.client.request({ op: "msg.recall", conv, mid: fresh.mid });
    assert.deepEqual(again.body, ok.body, "recalling twice is harmless");
    const h = await owner.client.request({ op: "history", conv, limit: 1 });
    assert.deepEqual((h.messages as F[])[0].body, ok.body, "history shows the recall");
    await refused(
      owner.client,
      { op: "msg.react", conv, mid: fresh.mid, emoji: "x" },
      "bad_request",
    );
    await refused(member.client, {
      op: "msg.edit",
      conv,
      mid: fresh.mid,
      body: text("x"),
    }, "bad_request");

    const byAdmin = await send(admin, to, text("admin says"));
    const byMember = await send(member, to, text("member says"));
    const byOwner = await send(owner, to, text("owner says"));
    await refused(member.client, { op: "msg.recall", conv, mid: byAdmin.mid }, "forbidden");
    await refused(admin.client, { op: "msg.recall", conv, mid: byOwner.mid }, "forbidden");

    await new Promise((r) => setTimeout(r, 1100));
    await refused(member.client, { op: "msg.recall", conv, mid: byMember.mid }, "forbidden");
    const modded = await admin.client.request({ op: "msg.recall", conv, mid: byMember.mid });
    assert.equal(modded.op, "ok", "an admin recalls a member's message after the window");
    assert.equal((modded.body as F).by, admin.userId);
    const owned = await owner.client.request({ op: "msg.recall", conv, mid: byAdmin.mid });
    assert.equal(owned.op, "ok", "the owner recalls an admin's message");

    // A direct chat has no moderators: only the sender, within the window.
    const dm = await send(owner, { user: member.userId }, text("dm"));
    await refused(member.client, { op: "msg.recall", conv: dm.conv, mid: dm.mid }, "forbidden");
  } finally {
    await closeAll(owner, admin, member);
    await node.stop();
  }
});

Deno.test("the sender edits a message: marked edited, pushed, visible in history; others cannot", async () => {
  const node = await testNode();
  const [a, b, c] = await users(node, "ea", "eb", "ec");
  try {
    const first = await send(a, { user: b.userId }, text("original"));
    const reply = await send(b, { user: a.userId }, {
      type: "text",
      text: "re",
      replyTo: { mid: first.mid },
    });
    const conv = first.conv as string;
    const pushed = next(b.client, "msg.updated", (f) => f.change === "edit");
    const ok = await a.client.request({
      op: "msg.edit",
      conv,
      mid: first.mid,
      body: { type: "text", text: "fixed", mentions: [b.userId] },
    });
    assert.equal(ok.op, "ok", JSON.stringify(ok));
    const body = ok.body as F;
    assert.equal(body.text, "fixed");
    assert.deepEqual(body.mentions, [b.userId]);
    assert.equal(typeof body.edited, "number");
    const update = await pushed;
    assert.equal(update.mid, first.mid);
    assert.equal(update.by, a.userId);
    assert.deepEqual(update.body, body);
    const h = await b.client.request({ op: "history", conv });
    const msgs = h.messages as F[];
    assert.deepEqual(msgs.find((m) => m.mid === first.mid)!.body, body);

    // The reply keeps its quote through an edit of the reply.
    const edited = await b.client.request({
      op: "msg.edit",
      conv,
      mid: reply.mid,
      body: text("re, edited"),
    });
    assert.equal(((edited.body as F).replyTo as F).mid, first.mid);

    await refused(
      b.client,
      { op: "msg.edit", conv, mid: first.mid, body: text("mine") },
      "forbidden",
    );
    await refused(
      c.client,
      { op: "msg.edit", conv, mid: first.mid, body: text("x") },
      "not_member",
    );
    await refused(a.client, {
      op: "msg.edit",
      conv,
      mid: first.mid,
      body: { type: "emoji", emoji: "x" },
    }, "bad_request");
    await refused(a.client, {
      op: "msg.edit",
      conv,
      mid: first.mid,
      body: { type: "text", text: "x", replyTo: { cseq: 2 } },
    }, "bad_request");
    await refused(a.client, {
      op: "msg.edit",
      conv,
      mid: first.mid,
      body: { type: "text", text: "x", mentions: [c.userId] },
    }, "bad_request");
    await refused(
      a.client,
      { op: "msg.edit", conv, mid: first.mid, body: { type: "text" } },
      "bad_request",
    );
    await refused(a.client, { op: "msg.edit", conv, mid: "m_nope", body: text("x") }, "not_found");
  } finally {
    await closeAll(a, b, c);
    await node.stop();
  }
});

Deno.test("delete-for-me hides a message from that user's history and sync only", async () => {
  const node = await testNode();
  const [a, b, c] = await users(node, "da", "db", "dc");
  try {
    const m1 = await send(a, { user: b.userId }, text("one"));
    const m2 = await send(b, { user: a.userId }, text("two"));
    await send(a, { user: b.userId }, text("three"));
    const conv = m1.conv as string;
    const a2 = await TestClient.connect(node.url, a.accessToken, "im.v1.json", "second");
    const onOther = next(a2, "msg.updated", (f) => f.change === "delete");
    const ok = await a.client.request({ op: "msg.delete", conv, mid: m2.mid });
    assert.equal(ok.op, "ok", JSON.stringify(ok));
    const update = await onOther;
    assert.equal(update.mid, m2.mid);
    assert.equal(update.by, a.userId);

    const ha = await a.client.request({ op: "history", conv });
    assert.deepEqual((ha.messages as F[]).map((m) => m.cseq), [3, 1]);
    const hb = await b.client.request({ op: "history", conv });
    assert.deepEqual((hb.messages as F[]).map((m) => m.cseq), [3, 2, 1]);
    const before = a2.msgs().length;
    const synced = await a2.request({ op: "sync", after: 0 });
    assert.equal(synced.seq, 3);
    const seqs = a2.msgs().slice(before).map((m) => m.seq);
    assert.deepEqual(seqs, [1, 3], "sync skips the hidden message's seq");
    // b never hears of a's deletion.
    await b.client.request({ op: "ping" });
    assert.equal(b.client.frames.filter((f) => f.op === "msg.updated").length, 0);

    await refused(c.client, { op: "msg.delete", conv, mid: m1.mid }, "not_member");
    await refused(a.client, { op: "msg.delete", conv, mid: "m_nope" }, "not_found");
    await refused(a.client, { op: "msg.delete", conv }, "bad_request");
    await a2.close();
  } finally {
    await closeAll(a, b, c);
    await node.stop();
  }
});

Deno.test("read receipts: a cumulative read cseq per user, pushed to the others; in groups, read by N and who", async () => {
  const node = await testNode();
  const [a, b, c, d] = await users(node, "pa", "pb", "pc", "pd");
  try {
    const dm1 = await send(a, { user: b.userId }, text("1"));
    await send(a, { user: b.userId }, text("2"));
    const conv = dm1.conv as string;
    const b2 = await TestClient.connect(node.url, b.accessToken, "im.v1.msgpack", "tablet");
    const receiptAtA = next(a.client, "read", (f) => f.conv === conv);
    const listAtB2 = next(b2, "conv.updated", (f) => f.conv === conv);
    const r = await b.client.request({ op: "read", conv, cseq: 1 });
    assert.equal(r.op, "ok", JSON.stringify(r));
    assert.equal(r.cseq, 1);
    assert.equal(r.unread, 1);
    const receipt = await receiptAtA;
    assert.equal(receipt.user, b.userId);
    assert.equal(receipt.cseq, 1);
    assert.equal(typeof receipt.ts, "number");
    const updated = await listAtB2;
    assert.equal(updated.read, 1);
    assert.equal(updated.unread, 1);
    const back = await b.client.request({ op: "read", conv, cseq: 1 });
    assert.equal(back.cseq, 1, "reading again changes nothing");
    const far = await b.client.request({ op: "read", conv, cseq: 99 });
    assert.equal(far.cseq, 2, "a read cursor stops at the latest message");
    assert.equal(far.unread, 0);
    const dmReceipts = await a.client.request({ op: "receipts", conv, mid: dm1.mid });
    assert.equal(dmReceipts.count, 1);
    assert.equal(dmReceipts.of, 1);

    const g = await a.client.request({
      op: "group.create",
      name: "receipts",
      members: [b.userId, c.userId],
    });
    const gconv = g.conv as string;
    const gm = await send(a, { group: g.groupId as string }, text("did you read this?"));
    await send(a, { group: g.groupId as string }, text("and this?"));
    await b.client.request({ op: "read", conv: gconv, cseq: gm.cseq });
    await c.client.request({ op: "read", conv: gconv, cseq: (gm.cseq as number) + 1 });
    const rec = await a.client.request({ op: "receipts", conv: gconv, mid: gm.mid });
    assert.equal(rec.op, "ok", JSON.stringify(rec));
    assert.equal(rec.count, 2);
    assert.equal(rec.of, 2);
    assert.deepEqual(
      (rec.readers as F[]).map((x) => x.user).sort(),
      [b.userId, c.userId].sort(),
    );
    const later = await b.client.request({
      op: "receipts",
      conv: gconv,
      cseq: (gm.cseq as number) + 1,
    });
    assert.deepEqual((later.readers as F[]).map((x) => x.user), [c.userId]);

    await refused(d.client, { op: "read", conv: gconv, cseq: 1 }, "not_member");
    await refused(d.client, { op: "receipts", conv: gconv, mid: gm.mid }, "not_member");
    await refused(d.client, { op: "read", conv, cseq: 1 }, "not_member");
    await refused(a.client, { op: "read", conv: "g:unknown", cseq: 1 }, "not_member");
    await refused(a.client, { op: "read", conv: gconv, cseq: 0 }, "bad_request");
    await refused(a.client, { op: "receipts", conv: gconv, mid: "m_nope" }, "not_found");
    await refused(a.client, { op: "receipts", conv: gconv }, "bad_request");
    await b2.close();
  } finally {
    await closeAll(a, b, c, d);
    await node.stop();
  }
});

Deno.test("the conversation list has last message, unread, pinned and muted, and stays in step across devices", async () => {
  const node = await testNode();
  const [a, b, c] = await users(node, "la", "lb", "lc");
  try {
    const dm = await send(b, { user: a.userId }, text("from b"));
    await send(b, { user: a.userId }, text("from b again"));
    await send(a, { user: b.userId }, text("mine does not count"));
    const g = await c.client.request({ op: "group.create", name: "l", members: [a.userId] });
    const gmsg = await send(c, { group: g.groupId as string }, text("group hello"));

    const list = await a.client.request({ op: "conversations" });
    assert.equal(list.op, "ok", JSON.stringify(list));
    assert.equal(list.total, 2);
    assert.equal(list.more, false);
    const [first, second] = list.convs as F[];
    assert.equal(first.conv, g.conv, "the latest conversation comes first");
    assert.equal(first.group, g.groupId);
    assert.equal((first.last as F).mid, gmsg.mid);
    assert.equal(first.unread, 1);
    assert.equal(second.conv, dm.conv);
    assert.equal(second.user, b.userId);
    assert.equal(second.unread, 2);
    assert.equal(
      (second.last as F).body && ((second.last as F).body as F).text,
      "mine does not count",
    );
    assert.equal(second.pinned, false);
    assert.equal(second.muted, false);

    const a2 = await TestClient.connect(node.url, a.accessToken, "im.v1.json", "laptop");
    const pinPush = next(a2, "conv.updated", (f) => f.conv === dm.conv && f.pinned === true);
    const pin = await a.client.request({ op: "conv.pin", conv: dm.conv, pinned: true });
    assert.deepEqual({ ...pin, re: undefined }, {
      op: "ok",
      re: undefined,
      conv: dm.conv,
      pinned: true,
      muted: false,
    });
    await pinPush;
    const mutePush = next(a2, "conv.updated", (f) => f.conv === g.conv && f.muted === true);
    await a.client.request({ op: "conv.mute", conv: g.conv, muted: true });
    await mutePush;
    await a.client.request({ op: "read", conv: dm.conv, cseq: 3 });

    const after = await a2.request({ op: "conversations", limit: 1 });
    assert.equal(after.more, true);
    const [top] = after.convs as F[];
    assert.equal(top.conv, dm.conv, "a pinned conversation comes first");
    assert.equal(top.pinned, true);
    assert.equal(top.unread, 0);
    assert.equal(top.read, 3);
    const rest = await a2.request({ op: "conversations", offset: 1 });
    assert.equal((rest.convs as F[])[0].muted, true);

    // New messages after the first listing are found by the next one.
    await send(c, { group: g.groupId as string }, text("more"));
    const again = await a.client.request({ op: "conversations" });
    const grp = (again.convs as F[]).find((x) => x.conv === g.conv)!;
    assert.equal(grp.unread, 2);
    await a.client.request({ op: "conv.pin", conv: dm.conv, pinned: false });
    const unpinned = await a.client.request({ op: "conversations" });
    assert.equal((unpinned.convs as F[])[0].conv, g.conv);

    // Refusals: pinning a conversation one is not in, unknown ids, malformed fields.
    await refused(b.client, { op: "conv.pin", conv: g.conv, pinned: true }, "not_member");
    await refused(b.client, { op: "conv.mute", conv: "d:x:y", muted: true }, "not_member");
    await refused(a.client, { op: "conv.pin", conv: g.conv, pinned: "yes" }, "bad_request");
    await refused(a.client, { op: "conversations", offset: -1 }, "bad_request");
    await a2.close();
  } finally {
    await closeAll(a, b, c);
    await node.stop();
  }
});

Deno.test("a crafted frame cannot act as someone else: the caller is always the connection's user", async () => {
  const node = await testNode();
  const [a, b, c] = await users(node, "fa", "fb", "fc");
  try {
    const m = await send(a, { user: b.userId }, text("mine"));
    const conv = m.conv as string;
    await refused(c.client, { op: "msg.recall", conv, mid: m.mid, user: a.userId }, "not_member");
    await refused(
      c.client,
      { op: "msg.edit", conv, mid: m.mid, from: a.userId, body: text("x") },
      "not_member",
    );
    await refused(b.client, { op: "msg.recall", conv, mid: m.mid, user: a.userId }, "forbidden");
    await refused(c.client, { op: "read", conv, cseq: 1, user: b.userId }, "not_member");
    await refused(c.client, { op: "history", conv, user: a.userId }, "not_member");
  } finally {
    await closeAll(a, b, c);
    await node.stop();
  }
});

Deno.test("pins, read positions, reactions, edits and deletions survive a restart of the node", async () => {
  const first = await testNode();
  const dir = first.dataDir;
  let node: Node = first;
  const [a, b] = await users(first, "sa", "sb");
  try {
    const m1 = await send(a, { user: b.userId }, text("before"));
    await send(a, { user: b.userId }, text("second"));
    const conv = m1.conv as string;
    await b.client.request({ op: "msg.react", conv, mid: m1.mid, emoji: "👍" });
    await a.client.request({ op: "msg.edit", conv, mid: m1.mid, body: text("edited") });
    await b.client.request({ op: "read", conv, cseq: 1 });
    await b.client.request({ op: "conv.pin", conv, pinned: true });
    await b.client.request({ op: "conv.mute", conv, muted: true });
    await b.client.request({ op: "msg.delete", conv, mid: m1.mid });
    await closeAll(a, b);
    await first.stop(true);

    node = await testNode({}, dir);
    const cb = await TestClient.connect(node.url, b.accessToken);
    const ca = await TestClient.connect(node.url, a.accessToken);
    const list = await cb.request({ op: "conversations" });
    const [entry] = list.convs as F[];
    assert.deepEqual(
      { conv: entry.conv, pinned: entry.pinned, muted: entry.muted, read: entry.read },
      { conv, pinned: true, muted: true, read: 1 },
    );
    assert.equal(entry.unread, 1);
    const hb = await cb.request({ op: "history", conv });
    assert.deepEqual((hb.messages as F[]).map((m) => m.cseq), [2], "b's deletion holds");
    const ha = await ca.request({ op: "history", conv });
    const old = (ha.messages as F[]).find((m) => m.mid === m1.mid)!;
    assert.equal((old.body as F).text, "edited");
    assert.deepEqual(old.reactions, [{ emoji: "👍", count: 1, users: [b.userId] }]);
    const rec = await ca.request({ op: "receipts", conv, mid: m1.mid });
    assert.equal(rec.count, 1);
    await ca.close();
    await cb.close();
  } finally {
    await node.stop();
  }
});

Deno.test("on the Postgres store too: reactions, edit, recall, delete-for-me, read receipts and the conversation list", async () => {
  const db = await createTempDatabase();
  const node = await testNode({ DATABASE_URL: db.url });
  const [a, b] = await users(node, "pga", "pgb");
  try {
    const m1 = await send(a, { user: b.userId }, text("one"));
    const m2 = await send(a, { user: b.userId }, {
      type: "text",
      text: "two",
      replyTo: { cseq: 1 },
    });
    const conv = m1.conv as string;
    const r = await b.client.request({ op: "msg.react", conv, mid: m1.mid, emoji: "👍" });
    assert.deepEqual(r.reactions, [{ emoji: "👍", count: 1, users: [b.userId] }]);
    const e = await a.client.request({ op: "msg.edit", conv, mid: m1.mid, body: text("uno") });
    assert.equal((e.body as F).text, "uno");
    const rc = await a.client.request({ op: "msg.recall", conv, mid: m2.mid });
    assert.equal((rc.body as F).type, "recalled");
    await send(b, { user: a.userId }, text("three"));
    await b.client.request({ op: "msg.delete", conv, mid: m1.mid });
    const read = await a.client.request({ op: "read", conv, cseq: 2 });
    assert.deepEqual([read.cseq, read.unread], [2, 1]);
    const hb = await b.client.request({ op: "history", conv });
    assert.deepEqual((hb.messages as F[]).map((m) => m.cseq), [3, 2]);
    const ha = await a.client.request({ op: "history", conv });
    const first = (ha.messages as F[]).find((m) => m.cseq === 1)!;
    assert.equal((first.body as F).text, "uno");
    assert.equal(typeof (first.body as F).edited, "number");
    assert.deepEqual(first.reactions, r.reactions);
    await b.client.request({ op: "read", conv, cseq: 2 });
    const rec = await a.client.request({ op: "receipts", conv, cseq: 2 });
    assert.deepEqual((rec.readers as F[]).map((x) => x.user), [b.userId]);
    const list = await a.client.request({ op: "conversations" });
    const [entry] = list.convs as F[];
    assert.deepEqual([entry.conv, entry.unread, entry.read], [conv, 1, 2]);
    assert.equal((entry.last as F).cseq, 3);
  } finally {
    await closeAll(a, b);
    await node.stop();
    await db.drop();
  }
});
