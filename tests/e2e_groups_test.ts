/**
 * Group administration end to end through a real WebSocket on a real node (docs/protocol.md,
 * "Group administration"): profile and settings, roles, invite policy, join requests, leave,
 * kick, dissolve, mutes, the member limit, paged member lists, the system messages that record
 * every membership change, and a 1,000-member group's fan-out.
 */
import assert from "node:assert/strict";
import { hashPassword } from "../gateway/password.ts";
import { newId } from "../gateway/ids.ts";
import { groupActor } from "../actors/im/conversation_ids.ts";
import { type F, login, type Proto, signUp, TestClient } from "./support/client.ts";
import { testNode } from "./support/node.ts";

let userSeq = 0;
function uname(p: string): string {
  return `${p}${Date.now().toString(36)}${++userSeq}`.slice(0, 32);
}

type Node = Awaited<ReturnType<typeof testNode>>;
type User = { userId: string; accessToken: string };

/** Signs up one user per name and connects each. */
async function people(
  node: Node,
  names: string[],
  proto: Proto = "im.v1.msgpack",
): Promise<[User[], TestClient[]]> {
  const users = await Promise.all(names.map((p) => signUp(node.url, uname(p))));
  const clients = await Promise.all(
    users.map((u) => TestClient.connect(node.url, u.accessToken, proto)),
  );
  return [users, clients];
}

/** Waits for the system message of `event` (also among frames already received). */
function sys(c: TestClient, event: string, pred: (b: F) => boolean = () => true): Promise<F> {
  return c.waitFor(
    (f) =>
      f.op === "msg" && (f.body as F)?.type === "system" && (f.body as F).event === event &&
      pred(f.body as F),
    5000,
    true,
  );
}

function ok(f: F): F {
  assert.equal(f.op, "ok", JSON.stringify(f));
  return f;
}

function refused(f: F, code: string): void {
  assert.equal(f.op, "error", JSON.stringify(f));
  assert.equal(f.code, code, JSON.stringify(f));
}

async function closeAll(clients: TestClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.close()));
}

let cmidSeq = 0;
function text(c: TestClient, group: string, t: string, timeoutMs = 15_000): Promise<F> {
  // Generous: the whole suite runs in parallel on 2 cores; this bounds a hang, it times nothing.
  return c.request({
    op: "send",
    to: { group },
    cmid: `t${++cmidSeq}`,
    body: { type: "text", text: t },
  }, timeoutMs);
}

for (const proto of ["im.v1.msgpack", "im.v1.json"] as const) {
  Deno.test(`[${proto}] group.info and group.update: members read, admins edit, members get group.updated`, async () => {
    const node = await testNode();
    try {
      const [[a, b, c], [ca, cb, cc, cd]] = await people(node, ["a", "b", "c", "d"], proto);
      const members = [b.userId, c.userId];
      const g = ok(await ca.request({ op: "group.create", name: "club", members }));
      const group = g.groupId as string;

      const info = ok(await cb.request({ op: "group.info", group }));
      assert.equal(info.groupId, group);
      assert.equal(info.conv, `g:${group}`);
      assert.equal(info.name, "club");
      assert.equal(info.owner, a.userId);
      assert.equal(info.memberCount, 3);
      assert.equal(info.maxMembers, 2000);
      assert.equal(info.role, "member");
      assert.equal(info.invitePolicy, "anyone");
      assert.equal(info.joinPolicy, "approval");
      assert.equal(info.muteAll, false);
      assert.equal(info.description, "");
      assert.equal((ok(await ca.request({ op: "group.info", group }))).role, "owner");
      refused(await cd.request({ op: "group.info", group }), "not_member");
      refused(await cd.request({ op: "group.info", group: "g_nosuchgroup" }), "not_found");
      refused(await cd.request({ op: "group.info" }), "bad_request");

      refused(await cb.request({ op: "group.update", group, name: "mine" }), "forbidden");
      refused(await cd.request({ op: "group.update", group, name: "mine" }), "not_member");
      refused(await ca.request({ op: "group.update", group }), "bad_request");
      refused(await ca.request({ op: "group.update", group, name: "" }), "bad_request");
      refused(await ca.request({ op: "group.update", group, invitePolicy: "all" }), "bad_request");
      refused(
        await ca.request({ op: "group.update", group, announcement: "x".repeat(4001) }),
        "bad_request",
      );

      const updated = ok(
        await ca.request({
          op: "group.update",
          group,
          name: "book club",
          description: "we read",
          avatar: "https://example.com/a.png",
          announcement: "meeting on friday",
        }),
      );
      assert.equal(updated.name, "book club");
      assert.equal(updated.announcement, "meeting on friday");
      for (const client of [cb, cc]) {
        const push = await client.waitFor((f) => f.op === "group.updated", 5000, true);
        assert.equal(push.groupId, group);
        assert.equal(push.name, "book club");
        assert.equal(push.description, "we read");
        assert.equal(push.avatar, "https://example.com/a.png");
        assert.equal(push.by, a.userId);
        assert.deepEqual(
          [...(push.changed as string[])].sort(),
          ["announcement", "avatar", "description", "name"],
        );
        assert.equal(push.seq, undefined, "group.updated is ephemeral (no inbox seq)");
      }
      const after = ok(await cc.request({ op: "group.info", group }));
      assert.equal(after.name, "book club");
      assert.equal(after.description, "we read");
      assert.equal(
        cd.frames.some((f) => f.op === "group.updated"),
        false,
        "non-members get nothing",
      );
      // An admin may edit too.
      ok(await ca.request({ op: "group.set_role", group, user: b.userId, role: "admin" }));
      ok(await cb.request({ op: "group.update", group, description: "we read a lot" }));
      await closeAll([ca, cb, cc, cd]);
    } finally {
      await node.stop();
    }
  });
}

Deno.test("roles: only the owner sets admins and transfers; admins kick members, the owner kicks admins", async () => {
  const node = await testNode();
  try {
    const [[a, b, c, d, e], [ca, cb, cc, cd, ce]] = await people(node, ["a", "b", "c", "d", "e"]);
    const g = ok(
      await ca.request({
        op: "group.create",
        name: "ranks",
        members: [b.userId, c.userId, d.userId, e.userId],
      }),
    );
    const group = g.groupId as string;

    refused(
      await cb.request({ op: "group.set_role", group, user: c.userId, role: "admin" }),
      "forbidden",
    );
    refused(
      await ca.request({ op: "group.set_role", group, user: c.userId, role: "owner" }),
      "bad_request",
    );
    refused(
      await ca.request({ op: "group.set_role", group, user: a.userId, role: "member" }),
      "bad_request",
    );
    const promoted = ok(
      await ca.request({ op: "group.set_role", group, user: b.userId, role: "admin" }),
    );
    assert.equal(promoted.role, "admin");
    assert.equal(typeof promoted.cseq, "number");
    // Every member sees the change as a system message from the owner, with the same cseq.
    for (const client of [ca, cb, cc, cd, ce]) {
      const m = await sys(client, "member.role");
      assert.equal(m.from, a.userId);
      assert.equal(m.cseq, promoted.cseq);
      assert.equal(m.mid, promoted.mid);
      assert.deepEqual((m.body as F).user, b.userId);
      assert.deepEqual((m.body as F).role, "admin");
      assert.equal(typeof m.seq, "number", "system messages enter the inbox");
    }
    // An admin may not change roles.
    refused(
      await cb.request({ op: "group.set_role", group, user: c.userId, role: "admin" }),
      "forbidden",
    );

    // An admin kicks a member; the kicked member gets the kick message, then nothing more.
    refused(await cc.request({ op: "group.kick", group, user: d.userId }), "forbidden");
    const kicked = ok(await cb.request({ op: "group.kick", group, user: c.userId }));
    const kickMsg = await sys(cc, "member.kicked");
    assert.equal(kickMsg.cseq, kicked.cseq);
    assert.equal(kickMsg.from, b.userId);
    assert.equal((kickMsg.body as F).user, c.userId);
    const cBefore = cc.msgs().length;
    const after = ok(await text(ca, group, "after the kick"));
    await cd.waitFor((f) => f.op === "msg" && f.mid === after.mid, 5000, true);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(cc.msgs().length, cBefore, "the kicked member gets nothing after the kick");
    refused(await text(cc, group, "let me back"), "not_member");
    refused(await cc.request({ op: "history", conv: g.conv }), "not_member");
    refused(await cc.request({ op: "group.info", group }), "not_member");
    const synced = ok(await cc.request({ op: "sync", after: kickMsg.seq }));
    assert.equal(synced.seq, kickMsg.seq, "nothing more entered the kicked member's inbox");
    refused(await cb.request({ op: "group.kick", group, user: c.userId }), "not_found");
    refused(await cb.request({ op: "group.kick", group, user: b.userId }), "bad_request");

    // Admins cannot kick admins or the owner; the owner kicks admins.
    ok(await ca.request({ op: "group.set_role", group, user: d.userId, role: "admin" }));
    refused(await cb.request({ op: "group.kick", group, user: d.userId }), "forbidden");
    refused(await cb.request({ op: "group.kick", group, user: a.userId }), "forbidden");
    ok(await ca.request({ op: "group.kick", group, user: d.userId }));
    await sys(cd, "member.kicked");

    // Demotion.
    ok(await ca.request({ op: "group.set_role", group, user: b.userId, role: "member" }));
    refused(await cb.request({ op: "group.kick", group, user: e.userId }), "forbidden");
    ok(await ca.request({ op: "group.set_role", group, user: b.userId, role: "admin" }));

    // Transfer: owner only, to a member; the old owner becomes an admin.
    refused(await ca.request({ op: "group.transfer", group, user: a.userId }), "bad_request");
    refused(await cb.request({ op: "group.transfer", group, user: e.userId }), "forbidden");
    refused(await ca.request({ op: "group.transfer", group, user: c.userId }), "not_found");
    const moved = ok(await ca.request({ op: "group.transfer", group, user: e.userId }));
    const tm = await sys(cb, "owner.transferred");
    assert.equal(tm.cseq, moved.cseq);
    assert.deepEqual(
      { user: (tm.body as F).user, previous: (tm.body as F).previous },
      { user: e.userId, previous: a.userId },
    );
    const infoE = ok(await ce.request({ op: "group.info", group }));
    assert.equal(infoE.owner, e.userId);
    assert.equal(infoE.role, "owner");
    assert.equal(ok(await ca.request({ op: "group.info", group })).role, "admin");
    refused(await ca.request({ op: "group.transfer", group, user: b.userId }), "forbidden");
    refused(await ca.request({ op: "group.kick", group, user: e.userId }), "forbidden");
    // The new owner demotes the old one.
    ok(await ce.request({ op: "group.set_role", group, user: a.userId, role: "member" }));
    await closeAll([ca, cb, cc, cd, ce]);
  } finally {
    await node.stop();
  }
});

Deno.test("a crafted frame cannot act for another user: the actor is always the connection's user", async () => {
  const node = await testNode();
  try {
    const [[a, b, c], [ca, cb, cc]] = await people(node, ["a", "b", "c"]);
    const g = ok(
      await ca.request({ op: "group.create", name: "safe", members: [b.userId, c.userId] }),
    );
    const group = g.groupId as string;
    // b names the owner as actor in every way a frame could.
    const forged = { by: a.userId, from: a.userId, userId: a.userId, owner: b.userId };
    refused(await cb.request({ op: "group.kick", group, user: c.userId, ...forged }), "forbidden");
    refused(
      await cb.request({ op: "group.set_role", group, user: b.userId, role: "admin", ...forged }),
      "forbidden",
    );
    refused(
      await cb.request({ op: "group.set_role", group, user: c.userId, role: "admin", ...forged }),
      "forbidden",
    );
    refused(
      await cb.request({ op: "group.transfer", group, user: b.userId, ...forged }),
      "forbidden",
    );
    refused(await cb.request({ op: "group.dissolve", group, ...forged }), "forbidden");
    refused(await cb.request({ op: "group.update", group, name: "x", ...forged }), "forbidden");
    refused(
      await cb.request({ op: "group.mute", group, user: c.userId, durationMs: 1000, ...forged }),
      "forbidden",
    );
    // A client cannot forge a system message either.
    refused(
      await cb.request({
        op: "send",
        to: { group },
        cmid: "forge",
        body: { type: "system", event: "member.kicked", user: c.userId },
      }),
      "bad_request",
    );
    // Inherited property names are not members.
    refused(await ca.request({ op: "group.kick", group, user: "constructor" }), "not_found");
    refused(await ca.request({ op: "group.kick", group, user: "__proto__" }), "not_found");
    const info = ok(await ca.request({ op: "group.info", group }));
    assert.equal(info.memberCount, 3);
    assert.equal(info.name, "safe");
    await closeAll([ca, cb, cc]);
  } finally {
    await node.stop();
  }
});

Deno.test("invite policy and join requests: request, list, approve, reject, open and closed groups", async () => {
  const node = await testNode();
  try {
    const names = ["a", "b", "c", "d", "e", "f", "h", "i"];
    const [[a, b, c, d, e, f, h, i], [ca, cb, cc, cd, ce, cf, ch, ci]] = await people(node, names);
    const g = ok(await ca.request({ op: "group.create", name: "gate", members: [b.userId] }));
    const group = g.groupId as string;

    // Default policy: any member invites; the invitee is a recipient of the invite message.
    const inv = ok(
      await cb.request({ op: "group.invite", group, users: [c.userId, c.userId, b.userId] }),
    );
    assert.deepEqual(inv.added, [c.userId]);
    const im = await sys(cc, "member.invited");
    assert.equal(im.cseq, inv.cseq);
    assert.equal(im.from, b.userId);
    assert.deepEqual((im.body as F).users, [c.userId]);
    assert.deepEqual(
      ok(await cb.request({ op: "group.invite", group, users: [c.userId] })).added,
      [],
    );
    refused(await cb.request({ op: "group.invite", group, users: ["u_nobody"] }), "not_found");
    refused(await cd.request({ op: "group.invite", group, users: [d.userId] }), "not_member");
    refused(await cb.request({ op: "group.invite", group, users: [] }), "bad_request");
    refused(await cb.request({ op: "group.invite", group, users: [42] }), "bad_request");

    // Admins-only policy.
    ok(await ca.request({ op: "group.update", group, invitePolicy: "admins" }));
    refused(await cb.request({ op: "group.invite", group, users: [d.userId] }), "forbidden");
    ok(await ca.request({ op: "group.invite", group, users: [d.userId] }));
    await sys(cd, "member.invited");

    // Join request with approval (the default policy).
    const pending = ok(await ce.request({ op: "group.join", group, message: "let me in" }));
    assert.equal(pending.status, "pending");
    const note = await ca.waitFor((x) => x.op === "group.join_request", 5000, true);
    assert.deepEqual(
      { group: note.group, user: note.user, message: note.message },
      { group, user: e.userId, message: "let me in" },
    );
    assert.equal(cb.frames.some((x) => x.op === "group.join_request"), false, "members not told");
    assert.equal(ok(await ce.request({ op: "group.join", group })).status, "pending");
    refused(await text(ce, group, "am I in?"), "not_member");
    refused(await cb.request({ op: "group.requests", group }), "forbidden");
    refused(await ce.request({ op: "group.requests", group }), "not_member");
    refused(await cb.request({ op: "group.approve", group, user: e.userId }), "forbidden");
    const list = ok(await ca.request({ op: "group.requests", group }));
    assert.equal(list.count, 1);
    assert.equal(list.more, false);
    assert.equal((list.requests as F[])[0].userId, e.userId);
    assert.equal((list.requests as F[])[0].message, "let me in");
    const approved = ok(await ca.request({ op: "group.approve", group, user: e.userId }));
    const jm = await sys(ce, "member.joined");
    assert.equal(jm.cseq, approved.cseq);
    assert.equal(jm.from, a.userId, "the approving admin is the actor");
    assert.deepEqual((jm.body as F).user, e.userId);
    assert.deepEqual((jm.body as F).via, "approval");
    ok(await text(ce, group, "thanks"));
    refused(await ca.request({ op: "group.approve", group, user: e.userId }), "not_found");
    assert.equal(ok(await ce.request({ op: "group.join", group })).status, "joined");

    // Rejection.
    ok(await cf.request({ op: "group.join", group }));
    ok(await ca.request({ op: "group.reject", group, user: f.userId }));
    const rj = await cf.waitFor((x) => x.op === "group.join_rejected", 5000, true);
    assert.equal(rj.group, group);
    assert.equal(ok(await ca.request({ op: "group.requests", group })).count, 0);
    refused(await ca.request({ op: "group.reject", group, user: f.userId }), "not_found");
    refused(await text(cf, group, "?"), "not_member");

    // Open groups let anyone in at once; closed groups refuse requests.
    ok(await ca.request({ op: "group.update", group, joinPolicy: "open" }));
    const joined = ok(await ch.request({ op: "group.join", group }));
    assert.equal(joined.status, "joined");
    const om = await sys(cb, "member.joined", (body) => body.user === h.userId);
    assert.equal(om.from, h.userId);
    assert.equal((om.body as F).via, "open");
    await sys(ch, "member.joined", (body) => body.user === h.userId);
    ok(await ca.request({ op: "group.update", group, joinPolicy: "closed" }));
    refused(await ci.request({ op: "group.join", group }), "forbidden");
    refused(await ci.request({ op: "group.join", group: "g_nosuchgroup" }), "not_found");
    assert.equal(ok(await ca.request({ op: "group.info", group })).memberCount, 6);
    assert.equal(i.userId.length > 0, true);
    await closeAll([ca, cb, cc, cd, ce, cf, ch, ci]);
  } finally {
    await node.stop();
  }
});

Deno.test("GROUP_MAX_MEMBERS holds on create, invite, approval and open join", async () => {
  const node = await testNode({ GROUP_MAX_MEMBERS: "4" });
  try {
    const [[, b, c, d, e, f], [ca, , , , ce, cf]] = await people(node, [
      "a",
      "b",
      "c",
      "d",
      "e",
      "f",
    ]);
    refused(
      await ca.request({
        op: "group.create",
        name: "big",
        members: [b.userId, c.userId, d.userId, e.userId],
      }),
      "bad_request",
    );
    const g = ok(
      await ca.request({ op: "group.create", name: "four", members: [b.userId, c.userId] }),
    );
    const group = g.groupId as string;
    assert.equal(ok(await ca.request({ op: "group.info", group })).maxMembers, 4);
    refused(
      await ca.request({ op: "group.invite", group, users: [d.userId, e.userId] }),
      "group_full",
    );
    assert.equal(ok(await ca.request({ op: "group.info", group })).memberCount, 3, "none added");
    ok(await ca.request({ op: "group.invite", group, users: [d.userId] }));
    refused(await ca.request({ op: "group.invite", group, users: [e.userId] }), "group_full");
    ok(await ce.request({ op: "group.join", group }));
    refused(await ca.request({ op: "group.approve", group, user: e.userId }), "group_full");
    ok(await ca.request({ op: "group.kick", group, user: d.userId }));
    ok(await ca.request({ op: "group.approve", group, user: e.userId }));
    ok(await ca.request({ op: "group.update", group, joinPolicy: "open" }));
    refused(await cf.request({ op: "group.join", group }), "group_full");
    assert.equal(f.userId.length > 0, true);
    assert.equal(ok(await ca.request({ op: "group.info", group })).memberCount, 4);
    await closeAll([ca, ce, cf]);
  } finally {
    await node.stop();
  }
});

Deno.test("mutes: a muted member's sends get muted until the mute ends; mute-all leaves only admins", async () => {
  const node = await testNode();
  try {
    const [[a, b, c, d], [ca, cb, cc, cd]] = await people(node, ["a", "b", "c", "d"]);
    const g = ok(
      await ca.request({
        op: "group.create",
        name: "quiet",
        members: [b.userId, c.userId, d.userId],
      }),
    );
    const group = g.groupId as string;
    ok(await ca.request({ op: "group.set_role", group, user: b.userId, role: "admin" }));

    refused(
      await cc.request({ op: "group.mute", group, user: d.userId, durationMs: 1000 }),
      "forbidden",
    );
    refused(
      await cb.request({ op: "group.mute", group, user: a.userId, durationMs: 1000 }),
      "forbidden",
    );
    refused(
      await cb.request({ op: "group.mute", group, user: b.userId, durationMs: 1000 }),
      "bad_request",
    );
    refused(await cb.request({ op: "group.mute", group, user: d.userId }), "bad_request");
    refused(
      await cb.request({ op: "group.mute", group, user: d.userId, durationMs: -5 }),
      "bad_request",
    );

    const t0 = Date.now();
    const muted = ok(
      await cb.request({ op: "group.mute", group, user: d.userId, durationMs: 600 }),
    );
    assert.ok((muted.mutedUntil as number) >= t0 + 600);
    const mm = await sys(cd, "member.muted");
    assert.equal(mm.from, b.userId);
    assert.equal((mm.body as F).user, d.userId);
    assert.equal((mm.body as F).until, muted.mutedUntil);
    refused(await text(cd, group, "hello?"), "muted");
    assert.equal(ok(await cd.request({ op: "group.info", group })).mutedUntil, muted.mutedUntil);
    const page = ok(await ca.request({ op: "group.members", group }));
    const dRow = (page.members as F[]).find((m) => m.userId === d.userId)!;
    assert.equal(dRow.mutedUntil, muted.mutedUntil);
    ok(await text(cc, group, "others still speak"));
    const wait = (muted.mutedUntil as number) - Date.now() + 50;
    await new Promise((r) => setTimeout(r, Math.max(0, wait)));
    ok(await text(cd, group, "back"));
    assert.equal(ok(await cd.request({ op: "group.info", group })).mutedUntil, undefined);

    // The owner mutes an admin, then lifts it.
    ok(await ca.request({ op: "group.mute", group, user: b.userId, durationMs: 60_000 }));
    refused(await text(cb, group, "hmm"), "muted");
    const lifted = ok(await ca.request({ op: "group.mute", group, user: b.userId, durationMs: 0 }));
    assert.equal(lifted.mutedUntil, 0);
    const um = await sys(cb, "member.unmuted");
    assert.equal((um.body as F).user, b.userId);
    ok(await text(cb, group, "free"));

    // Mute all: members are silenced, admins and the owner speak.
    refused(await cc.request({ op: "group.mute_all", group, on: true }), "forbidden");
    refused(await cb.request({ op: "group.mute_all", group, on: "yes" }), "bad_request");
    const on = ok(await cb.request({ op: "group.mute_all", group, on: true }));
    assert.equal(on.muteAll, true);
    const ma = await sys(cc, "group.muted_all");
    assert.equal((ma.body as F).on, true);
    assert.equal(ma.from, b.userId);
    refused(await text(cc, group, "?"), "muted");
    refused(await text(cd, group, "?"), "muted");
    ok(await text(cb, group, "admin speaks"));
    ok(await text(ca, group, "owner speaks"));
    assert.equal(ok(await cc.request({ op: "group.info", group })).muteAll, true);
    ok(await ca.request({ op: "group.mute_all", group, on: false }));
    ok(await text(cc, group, "members speak again"));
    await closeAll([ca, cb, cc, cd]);
  } finally {
    await node.stop();
  }
});

Deno.test("leave and dissolve: the owner cannot leave; after dissolve everything but history is not_found", async () => {
  const node = await testNode();
  try {
    const [[a, b, c], [ca, cb, cc, cd]] = await people(node, ["a", "b", "c", "d"]);
    const g = ok(
      await ca.request({ op: "group.create", name: "brief", members: [b.userId, c.userId] }),
    );
    const group = g.groupId as string;
    const conv = g.conv as string;

    const left = ok(await cc.request({ op: "group.leave", group }));
    const lm = await sys(cc, "member.left");
    assert.equal(lm.cseq, left.cseq);
    assert.equal(lm.from, c.userId);
    await sys(ca, "member.left");
    refused(await cc.request({ op: "group.leave", group }), "not_member");
    refused(await text(cc, group, "?"), "not_member");
    refused(await ca.request({ op: "group.leave", group }), "forbidden");
    refused(await cd.request({ op: "group.leave", group }), "not_member");

    ok(await text(cb, group, "before the end"));
    refused(await cb.request({ op: "group.dissolve", group }), "forbidden");
    refused(await cd.request({ op: "group.dissolve", group }), "not_member");
    const dissolved = ok(await ca.request({ op: "group.dissolve", group }));
    for (const client of [ca, cb]) {
      const m = await sys(client, "group.dissolved");
      assert.equal(m.cseq, dissolved.cseq);
      assert.equal(m.from, a.userId);
    }
    refused(await text(cb, group, "anyone?"), "not_found");
    refused(await text(ca, group, "anyone?"), "not_found");
    refused(await cb.request({ op: "group.info", group }), "not_found");
    refused(await cb.request({ op: "group.members", group }), "not_found");
    refused(await ca.request({ op: "group.invite", group, users: [c.userId] }), "not_found");
    refused(await ca.request({ op: "group.update", group, name: "again" }), "not_found");
    refused(await ca.request({ op: "group.dissolve", group }), "not_found");
    refused(await cc.request({ op: "group.join", group }), "not_found");
    // The last members keep the history, which ends with the dissolve message.
    const h = ok(await cb.request({ op: "history", conv }));
    const events = (h.messages as F[]).map((m) => (m.body as F).event ?? (m.body as F).text);
    assert.deepEqual(events, ["group.dissolved", "before the end", "member.left"]);
    refused(await cc.request({ op: "history", conv }), "not_member");
    await closeAll([ca, cb, cc, cd]);
  } finally {
    await node.stop();
  }
});

Deno.test("group.members pages by user id with after and limit; group state survives a restart", async () => {
  const first = await testNode();
  const dir = first.dataDir;
  let group = "";
  let everyone: string[] = [];
  let owner: User;
  try {
    const [users, clients] = await people(first, ["a", "b", "c", "d", "e"]);
    owner = users[0];
    everyone = users.map((u) => u.userId).sort();
    const g = ok(
      await clients[0].request({
        op: "group.create",
        name: "pages",
        members: users.slice(1).map((u) => u.userId),
      }),
    );
    group = g.groupId as string;
    refused(await clients[1].request({ op: "group.members", group, limit: "x" }), "bad_request");
    const seen: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 3; page++) {
      const p = ok(
        await clients[1].request({
          op: "group.members",
          group,
          limit: 2,
          ...(after ? { after } : {}),
        }),
      );
      assert.equal(p.count, 5);
      assert.equal(p.owner, owner.userId);
      const ids = (p.members as F[]).map((m) => m.userId as string);
      seen.push(...ids);
      assert.equal(p.more, page < 2);
      after = ids[ids.length - 1];
    }
    assert.deepEqual(seen, everyone);
    const roles = Object.fromEntries(
      (ok(await clients[1].request({ op: "group.members", group, limit: 0 })).members as F[])
        .map((m) => [m.userId, m.role]),
    );
    assert.equal(Object.keys(roles).length, 1, "limit is clamped to at least 1");
    ok(await clients[0].request({ op: "group.update", group, announcement: "kept" }));
    ok(
      await clients[0].request({
        op: "group.set_role",
        group,
        user: users[1].userId,
        role: "admin",
      }),
    );
    ok(await clients[0].request({ op: "group.update", group, invitePolicy: "admins" }));
    await closeAll(clients);
  } finally {
    await first.stop(true);
  }
  const second = await testNode({}, dir);
  try {
    const c = await TestClient.connect(second.url, owner!.accessToken);
    const info = ok(await c.request({ op: "group.info", group }));
    assert.equal(info.announcement, "kept");
    assert.equal(info.invitePolicy, "admins");
    assert.equal(info.memberCount, 5);
    const all = ok(await c.request({ op: "group.members", group, limit: 500 }));
    assert.deepEqual((all.members as F[]).map((m) => m.userId), everyone);
    const admins = (all.members as F[]).filter((m) => m.role === "admin");
    assert.equal(admins.length, 1);
    await c.close();
  } finally {
    await second.stop();
  }
});

Deno.test("create with announce stores a group.created system message (actor option)", async () => {
  const node = await testNode();
  try {
    const [[a, b], [ca, cb]] = await people(node, ["a", "b"]);
    const groupId = newId("g_");
    const res = await node.router.ask(groupActor(groupId), "create", {
      owner: a.userId,
      name: "hello",
      members: [b.userId],
      announce: true,
    }) as F;
    assert.equal(res.groupId, groupId);
    assert.equal(res.cseq, 1);
    const m = await sys(cb, "group.created");
    assert.equal(m.from, a.userId);
    assert.deepEqual({ ...(m.body as F) }, {
      type: "system",
      event: "group.created",
      name: "hello",
      memberCount: 2,
    });
    await sys(ca, "group.created");
    await closeAll([ca, cb]);
  } finally {
    await node.stop();
  }
});

Deno.test("a 1,000-member group: fan-out reaches connected members and the inboxes of the rest", async () => {
  const node = await testNode();
  try {
    const N = 1000;
    const password = "correct horse battery";
    // One hash for everyone: registering through the store skips 1,000 KDF runs.
    const passwordHash = await hashPassword(password, { iterations: 1000 });
    const prefix = `big${Date.now().toString(36)}`;
    const users = Array.from({ length: N }, (_, i) => ({
      userId: newId("u_"),
      username: `${prefix}_${i}`,
    }));
    // The embedded store writes synchronously (one fsync each): yield between small batches so
    // the node's heartbeat timer keeps running on a busy machine.
    for (let i = 0; i < N; i += 25) {
      await Promise.all(
        users.slice(i, i + 25).map((u) =>
          node.store.createUser({ ...u, passwordHash, createdAt: Date.now(), disabled: false })
        ),
      );
      await new Promise((r) => setTimeout(r, 0));
    }
    const sample = (from: number, n: number) =>
      Promise.all(
        users.slice(from, from + n).map(async (u) => {
          const t = await login(node.url, u.username, password);
          return TestClient.connect(node.url, t.accessToken);
        }),
      );
    const live = await sample(0, 25);
    const owner = live[0];
    const created = ok(
      await owner.request({
        op: "group.create",
        name: "thousand",
        members: users.slice(1).map((u) => u.userId),
      }, 15_000),
    );
    const group = created.groupId as string;
    const info = ok(await live[7].request({ op: "group.info", group }));
    assert.equal(info.memberCount, N);

    const sent = ok(await text(owner, group, "hello, all of you"));
    for (const c of live) {
      const m = await c.waitFor((f) => f.op === "msg" && f.mid === sent.mid, 10_000, true);
      assert.equal(m.cseq, sent.cseq);
    }
    // Members who were offline find it in their inbox.
    const offline = await sample(500, 20);
    for (const c of offline) {
      const s = ok(await c.request({ op: "sync", after: 0 }));
      assert.equal(s.more, false);
      const got = c.msgs().filter((m) => m.mid === sent.mid);
      assert.equal(got.length, 1);
      assert.equal((got[0].body as F).text, "hello, all of you");
    }
    // The whole membership in two pages.
    const p1 = ok(await live[3].request({ op: "group.members", group, limit: 500 }));
    const p2 = ok(
      await live[3].request({
        op: "group.members",
        group,
        limit: 500,
        after: (p1.members as F[])[499].userId,
      }),
    );
    assert.equal(p1.more, true);
    assert.equal(p2.more, false);
    const ids = [...(p1.members as F[]), ...(p2.members as F[])].map((m) => m.userId as string);
    assert.deepEqual(ids, users.map((u) => u.userId).sort());
    // A membership change in a big group reaches everyone the same way.
    const kicked = ok(await owner.request({ op: "group.kick", group, user: users[900].userId }));
    for (const c of live.slice(0, 5)) {
      await c.waitFor((f) => f.op === "msg" && f.mid === kicked.mid, 10_000, true);
    }
    assert.equal(ok(await owner.request({ op: "group.info", group })).memberCount, N - 1);
    await closeAll([...live, ...offline]);
  } finally {
    await node.stop();
  }
});
