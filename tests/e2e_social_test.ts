/**
 * End to end through a real WebSocket: friend requests, contacts and remarks, blocks, the
 * stranger policy, follows, profiles and user search — each refusal with its code.
 */
import assert from "node:assert/strict";
import { SOCIAL_LIMITS } from "../actors/im/social_state.ts";
import type { Proto } from "./support/client.ts";
import { testNode } from "./support/node.ts";
import {
  closeAll,
  framesOf,
  NOBODY,
  ok,
  people,
  pushed,
  refused,
  sleep,
  textTo,
  uniqueName,
} from "./support/people.ts";

const PROTOS: Proto[] = ["im.v1.msgpack", "im.v1.json"];

/** Runs `fn` with lowered social limits, restoring them after (this file's isolate only). */
async function withLimits(limits: Partial<typeof SOCIAL_LIMITS>, fn: () => Promise<void>) {
  const saved = { ...SOCIAL_LIMITS };
  Object.assign(SOCIAL_LIMITS, limits);
  try {
    await fn();
  } finally {
    Object.assign(SOCIAL_LIMITS, saved);
  }
}

for (const proto of PROTOS) {
  Deno.test(`[${proto}] a friend request with a message is accepted: both sides are notified and list each other`, async () => {
    const node = await testNode();
    const [a, b] = await people(node.url, ["a", "b"], proto);
    try {
      const sent = await ok(a.c, { op: "friend.request", userId: b.userId, message: "hi, it's A" });
      assert.equal(sent.status, "pending");
      const req = await pushed(b.c, "friend.request", { userId: a.userId });
      assert.equal(req.message, "hi, it's A");
      assert.equal(typeof req.ts, "number");

      const bReqs = await ok(b.c, { op: "friend.requests" });
      assert.deepEqual((bReqs.incoming as Record<string, unknown>[]).map((r) => r.userId), [
        a.userId,
      ]);
      assert.equal((bReqs.incoming as Record<string, unknown>[])[0].username, a.username);
      assert.equal((bReqs.incoming as Record<string, unknown>[])[0].message, "hi, it's A");
      const aReqs = await ok(a.c, { op: "friend.requests" });
      assert.deepEqual((aReqs.outgoing as Record<string, unknown>[]).map((r) => r.userId), [
        b.userId,
      ]);

      const accepted = await ok(b.c, { op: "friend.accept", userId: a.userId });
      assert.equal(accepted.status, "friends");
      const note = await pushed(a.c, "friend.accepted", { userId: b.userId });
      assert.equal(note.since, accepted.since);
      const after = await ok(a.c, { op: "friend.requests" });
      assert.deepEqual([after.incoming, after.outgoing], [[], []]);

      await ok(a.c, { op: "friend.remark", userId: b.userId, remark: "Bobby" });
      const aList = await ok(a.c, { op: "friend.list" });
      assert.deepEqual(aList.friends, [{
        userId: b.userId,
        username: b.username,
        displayName: "",
        avatar: "",
        remark: "Bobby",
        since: accepted.since,
      }]);
      assert.equal(aList.more, false);
      const bList = await ok(b.c, { op: "friend.list" });
      assert.deepEqual(
        (bList.friends as Record<string, unknown>[]).map((f) => [f.userId, f.remark]),
        [[a.userId, ""]],
      );
      const profile = await ok(a.c, { op: "profile.get", userId: b.userId });
      assert.equal(profile.friend, true);
      assert.equal(profile.remark, "Bobby");

      await ok(a.c, { op: "friend.delete", userId: b.userId });
      await pushed(b.c, "friend.removed", { userId: a.userId });
      assert.deepEqual((await ok(a.c, { op: "friend.list" })).friends, []);
      assert.deepEqual((await ok(b.c, { op: "friend.list" })).friends, []);
    } finally {
      await closeAll([a, b]);
      await node.stop();
    }
  });
}

Deno.test("a rejected or cancelled request notifies the other side, and every friend refusal has its code", async () => {
  const node = await testNode();
  const [a, b, c, d] = await people(node.url, ["a", "b", "c", "d"], "im.v1.json");
  try {
    await ok(a.c, { op: "friend.request", userId: b.userId });
    await pushed(b.c, "friend.request", { userId: a.userId, message: "" });
    await ok(b.c, { op: "friend.reject", userId: a.userId });
    await pushed(a.c, "friend.rejected", { userId: b.userId });
    assert.deepEqual((await ok(a.c, { op: "friend.requests" })).outgoing, []);
    assert.deepEqual((await ok(b.c, { op: "friend.requests" })).incoming, []);

    await ok(a.c, { op: "friend.request", userId: c.userId, message: "x" });
    await pushed(c.c, "friend.request", { userId: a.userId });
    await ok(a.c, { op: "friend.cancel", userId: c.userId });
    await pushed(c.c, "friend.cancelled", { userId: a.userId });
    assert.deepEqual((await ok(c.c, { op: "friend.requests" })).incoming, []);

    // a and d become friends for the refusals that need a friendship.
    await ok(a.c, { op: "friend.request", userId: d.userId });
    await ok(d.c, { op: "friend.accept", userId: a.userId });

    const r = (frame: Record<string, unknown>, code: string) => refused(a.c, frame, code);
    await r({ op: "friend.request", userId: a.userId }, "bad_request");
    await r({ op: "friend.request" }, "bad_request");
    await r({ op: "friend.request", userId: "__proto__" }, "bad_request");
    await r({ op: "friend.request", userId: b.userId, message: "x".repeat(201) }, "bad_request");
    await r({ op: "friend.request", userId: b.userId, message: "bell\u0007" }, "bad_request");
    await r({ op: "friend.request", userId: NOBODY }, "not_found");
    await r({ op: "friend.request", userId: d.userId }, "already_friends");
    await r({ op: "friend.accept", userId: b.userId }, "not_found");
    await r({ op: "friend.accept", userId: d.userId }, "already_friends");
    await r({ op: "friend.reject", userId: b.userId }, "not_found");
    await r({ op: "friend.cancel", userId: b.userId }, "not_found");
    await r({ op: "friend.delete", userId: b.userId }, "not_found");
    await r({ op: "friend.remark", userId: b.userId, remark: "x" }, "not_found");
    await r({ op: "friend.remark", userId: d.userId, remark: "x".repeat(65) }, "bad_request");
    await r({ op: "friend.remark", userId: d.userId }, "bad_request");
    await r({ op: "friend.list", after: 5 }, "bad_request");
  } finally {
    await closeAll([a, b, c, d]);
    await node.stop();
  }
});

Deno.test("requests sent both ways make the two users friends at once", async () => {
  const node = await testNode();
  const [a, b] = await people(node.url, ["a", "b"], "im.v1.msgpack");
  try {
    await ok(a.c, { op: "friend.request", userId: b.userId });
    await pushed(b.c, "friend.request", { userId: a.userId });
    const res = await ok(b.c, { op: "friend.request", userId: a.userId });
    assert.equal(res.status, "friends");
    await pushed(a.c, "friend.accepted", { userId: b.userId });
    for (const [p, other] of [[a, b], [b, a]]) {
      const list = await ok(p.c, { op: "friend.list" });
      assert.deepEqual((list.friends as Record<string, unknown>[]).map((f) => f.userId), [
        other.userId,
      ]);
      const reqs = await ok(p.c, { op: "friend.requests" });
      assert.deepEqual([reqs.incoming, reqs.outgoing], [[], []]);
    }
  } finally {
    await closeAll([a, b]);
    await node.stop();
  }
});

Deno.test("friend limits refuse with limit_exceeded and roll back the requester's side", async () => {
  const node = await testNode();
  const [a, b, c, d, x, y, q] = await people(
    node.url,
    ["a", "b", "c", "d", "x", "y", "q"],
    "im.v1.json",
  );
  try {
    await withLimits({ friends: 1, outgoing: 1, incoming: 1 }, async () => {
      // Outgoing: one pending request at most.
      await ok(a.c, { op: "friend.request", userId: b.userId });
      await refused(a.c, { op: "friend.request", userId: c.userId }, "limit_exceeded");
      // Incoming: b holds one request already; d's is refused by b's actor and d's side undone.
      await refused(d.c, { op: "friend.request", userId: b.userId }, "limit_exceeded");
      assert.deepEqual((await ok(d.c, { op: "friend.requests" })).outgoing, []);
      // Friends: a and b are friends; a can neither request nor accept another friend.
      await ok(b.c, { op: "friend.accept", userId: a.userId });
      await refused(a.c, { op: "friend.request", userId: c.userId }, "limit_exceeded");
      await ok(c.c, { op: "friend.request", userId: a.userId });
      await refused(a.c, { op: "friend.accept", userId: c.userId }, "limit_exceeded");
      // The requester's actor refuses an accept when it has reached the limit meanwhile; the
      // accepter's pending request is dropped.
      await ok(x.c, { op: "friend.request", userId: y.userId });
      await ok(q.c, { op: "friend.request", userId: x.userId });
      await ok(x.c, { op: "friend.accept", userId: q.userId });
      await refused(y.c, { op: "friend.accept", userId: x.userId }, "limit_exceeded");
      assert.deepEqual((await ok(y.c, { op: "friend.requests" })).incoming, []);
      assert.deepEqual((await ok(y.c, { op: "friend.list" })).friends, []);
    });
  } finally {
    await closeAll([a, b, c, d, x, y, q]);
    await node.stop();
  }
});

Deno.test("a blocked user's direct messages, friend requests and follows are refused with blocked, both ways, until unblocked", async () => {
  const node = await testNode();
  const [a, b, c, d] = await people(node.url, ["a", "b", "c", "d"], "im.v1.msgpack");
  try {
    // A chat that worked before the block (so the direct actor has its gates cached).
    await ok(b.c, textTo(a.userId, "before"));
    // Pending requests between the two are dropped by the block.
    await ok(b.c, { op: "friend.request", userId: a.userId });
    await ok(b.c, { op: "follow.add", userId: a.userId });
    assert.equal((await ok(a.c, { op: "follow.counts" })).followers, 1);

    await ok(a.c, { op: "block.add", userId: b.userId });
    await ok(a.c, { op: "block.add", userId: b.userId }); // again: nothing changes
    const list = await ok(a.c, { op: "block.list" });
    assert.deepEqual(
      (list.blocked as Record<string, unknown>[]).map((e) => [e.userId, e.username]),
      [[b.userId, b.username]],
    );
    assert.deepEqual((await ok(a.c, { op: "friend.requests" })).incoming, []);
    assert.equal((await ok(a.c, { op: "follow.counts" })).followers, 0, "b's follow ended");

    await refused(b.c, textTo(a.userId), "blocked");
    await refused(a.c, textTo(b.userId), "blocked");
    await refused(b.c, { op: "friend.request", userId: a.userId }, "blocked");
    await refused(a.c, { op: "friend.request", userId: b.userId }, "blocked");
    await refused(b.c, { op: "follow.add", userId: a.userId }, "blocked");
    await refused(a.c, { op: "follow.add", userId: b.userId }, "blocked");
    await refused(b.c, { op: "follow.list", userId: a.userId, kind: "followers" }, "blocked");
    await refused(b.c, { op: "follow.counts", userId: a.userId }, "blocked");
    await refused(b.c, { op: "typing", to: { user: a.userId } }, "blocked");

    await ok(a.c, { op: "block.remove", userId: b.userId });
    await ok(b.c, textTo(a.userId, "after"));
    await ok(a.c, textTo(b.userId, "back"));
    assert.deepEqual((await ok(a.c, { op: "block.list" })).blocked, []);

    // Blocking a friend keeps the friendship but stops the messages (the cache is updated).
    await ok(a.c, { op: "friend.request", userId: d.userId });
    await ok(d.c, { op: "friend.accept", userId: a.userId });
    await ok(d.c, textTo(a.userId, "friends"));
    await ok(a.c, { op: "block.add", userId: d.userId });
    await refused(d.c, textTo(a.userId), "blocked");
    assert.deepEqual(
      ((await ok(a.c, { op: "friend.list" })).friends as Record<string, unknown>[]).map((f) =>
        f.userId
      ),
      [d.userId],
    );

    // Blocking someone a request was sent to withdraws it.
    await ok(a.c, { op: "friend.request", userId: c.userId });
    await pushed(c.c, "friend.request", { userId: a.userId });
    await ok(a.c, { op: "block.add", userId: c.userId });
    await pushed(c.c, "friend.cancelled", { userId: a.userId });

    await refused(a.c, { op: "block.add", userId: a.userId }, "bad_request");
    await refused(a.c, { op: "block.add", userId: NOBODY }, "not_found");
    await refused(a.c, { op: "block.add" }, "bad_request");
    await refused(b.c, { op: "block.remove", userId: c.userId }, "not_found");
    await withLimits({ blocked: 1 }, async () => {
      await ok(b.c, { op: "block.add", userId: c.userId });
      await refused(b.c, { op: "block.add", userId: d.userId }, "limit_exceeded");
    });
  } finally {
    await closeAll([a, b, c, d]);
    await node.stop();
  }
});

Deno.test("a friends-only user refuses strangers' direct messages with not_friend; anyone may start a temporary chat otherwise", async () => {
  const node = await testNode();
  const [a, b, c] = await people(node.url, ["a", "b", "c"], "im.v1.json");
  try {
    assert.deepEqual((await ok(a.c, { op: "privacy.get" })).strangers, "anyone");
    await ok(c.c, textTo(a.userId, "temporary chat"));
    await ok(a.c, { op: "friend.request", userId: b.userId });
    await ok(b.c, { op: "friend.accept", userId: a.userId });

    assert.equal((await ok(a.c, { op: "privacy.set", strangers: "friends" })).strangers, "friends");
    assert.equal((await ok(a.c, { op: "privacy.get" })).strangers, "friends");
    await refused(c.c, textTo(a.userId), "not_friend");
    await refused(c.c, { op: "typing", to: { user: a.userId } }, "not_friend");
    await ok(a.c, textTo(c.userId, "a may still write to c"));
    await ok(b.c, textTo(a.userId, "friends pass"));

    // Unfriending makes b a stranger at once.
    await ok(b.c, { op: "friend.delete", userId: a.userId });
    await refused(b.c, textTo(a.userId), "not_friend");

    await ok(a.c, { op: "privacy.set", strangers: "anyone" });
    await ok(c.c, textTo(a.userId, "open again"));
    await refused(a.c, { op: "privacy.set", strangers: "nobody" }, "bad_request");
    await refused(a.c, { op: "privacy.set" }, "bad_request");
  } finally {
    await closeAll([a, b, c]);
    await node.stop();
  }
});

Deno.test("follows: lists newest first with cursors, counts, and the followee is notified", async () => {
  const node = await testNode();
  const [a, b, c] = await people(node.url, ["a", "b", "c"], "im.v1.msgpack");
  try {
    await ok(b.c, { op: "follow.add", userId: a.userId });
    await pushed(a.c, "follow.new", { userId: b.userId });
    await sleep(2); // distinct edge times, so the order is by time
    await ok(c.c, { op: "follow.add", userId: a.userId });
    await pushed(a.c, "follow.new", { userId: c.userId });
    await ok(c.c, { op: "follow.add", userId: a.userId }); // again: no second notice
    await ok(a.c, { op: "follow.add", userId: c.userId });

    const counts = await ok(b.c, { op: "follow.counts", userId: a.userId });
    assert.deepEqual([counts.followers, counts.following], [2, 1]);
    const all = await ok(b.c, { op: "follow.list", userId: a.userId, kind: "followers" });
    assert.deepEqual((all.users as Record<string, unknown>[]).map((u) => u.userId), [
      c.userId,
      b.userId,
    ]);
    assert.equal((all.users as Record<string, unknown>[])[0].username, c.username);
    assert.equal(all.next, null);
    const first = await ok(b.c, {
      op: "follow.list",
      userId: a.userId,
      kind: "followers",
      limit: 1,
    });
    assert.deepEqual((first.users as Record<string, unknown>[]).map((u) => u.userId), [c.userId]);
    assert.equal(typeof first.next, "string");
    const second = await ok(b.c, {
      op: "follow.list",
      userId: a.userId,
      kind: "followers",
      limit: 1,
      after: first.next,
    });
    assert.deepEqual((second.users as Record<string, unknown>[]).map((u) => u.userId), [
      b.userId,
    ]);
    assert.equal(second.next, null);
    const following = await ok(b.c, { op: "follow.list", kind: "following" });
    assert.deepEqual((following.users as Record<string, unknown>[]).map((u) => u.userId), [
      a.userId,
    ]);
    assert.equal(framesOf(a.c, "follow.new").length, 2);

    await ok(c.c, { op: "follow.remove", userId: a.userId });
    assert.equal((await ok(a.c, { op: "follow.counts" })).followers, 1);
    await refused(c.c, { op: "follow.remove", userId: a.userId }, "not_found");
    await refused(c.c, { op: "follow.add", userId: c.userId }, "bad_request");
    await refused(c.c, { op: "follow.remove", userId: c.userId }, "bad_request");
    await refused(c.c, { op: "follow.add", userId: NOBODY }, "not_found");
    await refused(c.c, { op: "follow.remove", userId: NOBODY }, "not_found");
    await refused(c.c, { op: "follow.list", userId: NOBODY, kind: "followers" }, "not_found");
    await refused(c.c, { op: "follow.counts", userId: NOBODY }, "not_found");
    await refused(c.c, { op: "follow.list", kind: "fans" }, "bad_request");
    await refused(c.c, { op: "follow.list", kind: "followers", after: "garbage" }, "bad_request");
  } finally {
    await closeAll([a, b, c]);
    await node.stop();
  }
});

Deno.test("profiles are updated and found by username or display-name prefix, paged", async () => {
  const node = await testNode();
  const tag = uniqueName("s").slice(0, 9);
  const [a, b] = await people(node.url, [`${tag}x`, `${tag}y`], "im.v1.json");
  const [c] = await people(node.url, ["other"], "im.v1.json");
  try {
    const updated = await ok(a.c, {
      op: "profile.update",
      displayName: "Zoë Example",
      bio: "line one\nline two",
      avatar: "https://cdn.example/a.png",
    });
    assert.deepEqual(
      [updated.userId, updated.username, updated.displayName, updated.avatar, updated.bio],
      [a.userId, a.username, "Zoë Example", "https://cdn.example/a.png", "line one\nline two"],
    );
    // c's display name starts with the tag, so c matches by display name only.
    await ok(c.c, { op: "profile.update", displayName: `${tag.toUpperCase()} Carol` });
    await ok(b.c, { op: "profile.update", avatar: "m_media123" });
    const seen = await ok(b.c, { op: "profile.get", userId: a.userId });
    assert.equal(seen.displayName, "Zoë Example");
    assert.equal(seen.friend, false);
    assert.equal((await ok(b.c, { op: "profile.get" })).avatar, "m_media123");

    const ids = (res: Record<string, unknown>) =>
      (res.users as Record<string, unknown>[]).map((u) => u.userId);
    // Ordered by the matching key: "<tag> carol" sorts before "<tag>x…" and "<tag>y…".
    const all = await ok(b.c, { op: "user.search", query: tag });
    assert.deepEqual(ids(all), [c.userId, a.userId, b.userId]);
    assert.equal(all.next, null);
    const p1 = await ok(b.c, { op: "user.search", query: tag.toUpperCase(), limit: 2 });
    assert.deepEqual(ids(p1), [c.userId, a.userId]);
    const p2 = await ok(b.c, { op: "user.search", query: tag, limit: 2, after: p1.next });
    assert.deepEqual(ids(p2), [b.userId]);
    assert.equal(p2.next, null);
    assert.deepEqual(ids(await ok(b.c, { op: "user.search", query: "zoë ex" })), [a.userId]);
    assert.deepEqual(ids(await ok(b.c, { op: "user.search", query: `${tag}zzz` })), []);

    await refused(b.c, { op: "user.search", query: "  " }, "bad_request");
    await refused(b.c, { op: "user.search", query: tag, after: "!!" }, "bad_request");
    await refused(b.c, { op: "user.search" }, "bad_request");
    await refused(b.c, { op: "profile.update" }, "bad_request");
    await refused(b.c, { op: "profile.update", avatar: "javascript:alert(1)" }, "bad_request");
    await refused(b.c, { op: "profile.update", displayName: "x".repeat(65) }, "bad_request");
    await refused(b.c, { op: "profile.update", displayName: "tab\there" }, "bad_request");
    await refused(b.c, { op: "profile.update", bio: 5 }, "bad_request");
    await refused(b.c, { op: "profile.get", userId: NOBODY }, "not_found");
  } finally {
    await closeAll([a, b, c]);
    await node.stop();
  }
});

Deno.test("fields in a frame cannot make a request act for another user", async () => {
  const node = await testNode();
  const [a, b, c] = await people(node.url, ["a", "b", "c"], "im.v1.json");
  try {
    // Everything below names c as the actor in some field; the server acts for a only.
    await ok(a.c, { op: "friend.request", userId: b.userId, from: c.userId, by: c.userId });
    const req = await pushed(b.c, "friend.request", { userId: a.userId });
    assert.equal(req.userId, a.userId);
    assert.deepEqual((await ok(c.c, { op: "friend.requests" })).outgoing, []);
    await ok(a.c, { op: "typing", to: { user: b.userId }, from: c.userId });
    assert.equal((await pushed(b.c, "typing")).from, a.userId);
    await ok(a.c, { op: "profile.update", displayName: "A", userId: c.userId });
    assert.equal((await ok(c.c, { op: "profile.get" })).displayName, "");
    await ok(a.c, { op: "privacy.set", strangers: "friends", userId: c.userId });
    assert.equal((await ok(c.c, { op: "privacy.get" })).strangers, "anyone");
    // Accepting a request one did not receive is refused, whoever the frame names.
    await refused(c.c, { op: "friend.accept", userId: a.userId, by: b.userId }, "not_found");
  } finally {
    await closeAll([a, b, c]);
    await node.stop();
  }
});
