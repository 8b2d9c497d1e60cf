/**
 * The social graph, kept in the user actors: friend requests and friends (with remarks), blocks,
 * follows, the stranger policy, profiles and user search. `user.ts` spreads
 * {@link socialHandlers} into its handlers.
 *
 * Consistency between the two users of a relation:
 * - Each user actor owns its own side; the other side changes only by a message from this
 *   actor, which the receiver authenticates by its sender id (`requireFromUser`).
 * - **No user actor waits for another actor inside its own turn.** A handler validates and
 *   changes its own state in its turn, then ends the turn with `ctx.defer` and talks to the other
 *   side; when the answer needs a local change, that change is a message to itself (a turn
 *   again). So two users acting on each other at once never deadlock, and every state change
 *   happens inside a turn.
 * - The side that decides goes first: a request is recorded by the requester, then offered to
 *   the addressee (who may refuse: `blocked`, `limit_exceeded`); an accept is confirmed by the
 *   requester's actor before the accepter records the friendship (a withdrawn request answers
 *   `not_found`); an unfriend is applied by the other side before this side. A request that both
 *   users send each other makes them friends.
 * - Changes that restrict who may message whom (block, unfriend) are applied to the pair's
 *   direct conversation actor before the request is answered (see `direct_gate.ts`).
 * - Every change is snapshotted before it is answered. After `timeout` or `unavailable` the
 *   outcome is unknown; every request here may be repeated.
 *
 * Follow edges live in the store (followers lists are unbounded and paged); they are written by
 * the followee's actor, so a follow and a block of the same follower are serialised.
 *
 * @module
 */
import type { MessageMeta } from "../behavior.ts";
import { BadRequestError, ImError, NotFoundError } from "../errors.ts";
import type { FollowCursor, Profile, ProfilePatch, SearchCursor } from "../../db/store.ts";
import { directActor, userActor } from "./conversation_ids.ts";
import { GATE_TIMING, gateOf } from "./direct_gate.ts";
import { presenceForget } from "./presence.ts";
import {
  type FriendRequest,
  has,
  requireFromUser,
  requireSelf,
  SOCIAL_LIMITS,
  socialOf,
  type SocialState,
  type StrangerPolicy,
  type UserCtx,
  userExists,
} from "./social_state.ts";

type Ctx = UserCtx;

/** Codes with which the other side refuses for good (the local half is rolled back). */
const REFUSALS = new Set([
  "blocked",
  "limit_exceeded",
  "already_friends",
  "not_found",
  "forbidden",
]);

function isRefusal(err: unknown): boolean {
  return err instanceof ImError && REFUSALS.has(err.code);
}

function limit(message: string): ImError {
  return new ImError("limit_exceeded", message);
}

function count(record: Record<string, unknown>): number {
  return Object.keys(record).length;
}

/** Pushes a frame to every connected device of this user. */
function pushToSelf(ctx: Ctx, frame: Record<string, unknown>): void {
  ctx.services.deliver({ frame, users: [ctx.key] });
}

/**
 * Direct actors that cached this user's gate recently (by the other participant, with when),
 * oldest first; transient. A stranger-policy change is pushed to those within the cache TTL.
 */
const gateReaders = new WeakMap<SocialState, Map<string, number>>();
/** Readers remembered per user at most (the oldest is forgotten; its cache expires by TTL). */
const MAX_GATE_READERS = 10_000;

function noteReader(ctx: Ctx, other: string): void {
  const s = socialOf(ctx.state);
  let readers = gateReaders.get(s);
  if (!readers) gateReaders.set(s, readers = new Map());
  readers.delete(other);
  readers.set(other, ctx.services.now());
  if (readers.size > MAX_GATE_READERS) readers.delete(readers.keys().next().value!);
}

/** The others of direct actors whose cache of this user's gate may still be fresh. */
function recentReaders(ctx: Ctx): string[] {
  const readers = gateReaders.get(socialOf(ctx.state));
  if (!readers) return [];
  const since = ctx.services.now() - GATE_TIMING.ttlMs;
  for (const [other, at] of readers) {
    if (at >= since) break; // oldest first: the rest are recent
    readers.delete(other);
  }
  return [...readers.keys()];
}

/** Sends this user's current gate towards `other` to their direct actor; resolves when applied. */
function syncDirect(ctx: Ctx, other: string): Promise<unknown> {
  noteReader(ctx, other);
  return ctx.ask(directActor(ctx.key, other), "social.update", {
    user: ctx.key,
    gate: gateOf(socialOf(ctx.state), other),
  });
}

/** The same, fire-and-forget: for changes that only relax (a stale cache re-reads anyway). */
function tellDirect(ctx: Ctx, other: string): void {
  noteReader(ctx, other);
  ctx.tell(directActor(ctx.key, other), "social.update", {
    user: ctx.key,
    gate: gateOf(socialOf(ctx.state), other),
  });
}

function makeFriend(s: SocialState, other: string, since: number): void {
  delete s.incoming[other];
  delete s.outgoing[other];
  s.friends[other] = { since, remark: has(s.friends, other) ? s.friends[other].remark : "" };
  s.rev++;
}

/** Profiles of `ids` by id (accounts deleted since are absent). */
async function profiles(ctx: Ctx, ids: string[]): Promise<Map<string, Profile>> {
  if (ids.length === 0) return new Map();
  const list = await ctx.services.store.getProfiles(ids);
  return new Map(list.map((p) => [p.userId, p]));
}

/** `{userId, username, displayName, avatar}` of `id` plus `extra`. */
function entry(map: Map<string, Profile>, id: string, extra: Record<string, unknown>) {
  const p = map.get(id);
  return {
    userId: id,
    username: p?.username ?? "",
    displayName: p?.displayName ?? "",
    avatar: p?.avatar ?? "",
    ...extra,
  };
}

/** Sorted keys of `record` strictly after `after`, at most `n`, and whether more follow. */
function page(record: Record<string, unknown>, after: string | null, n: number) {
  const ids = Object.keys(record).sort().filter((id) => after === null || id > after);
  return { ids: ids.slice(0, n), more: ids.length > n };
}

async function requireUser(ctx: Ctx, userId: string): Promise<void> {
  if (!await userExists(ctx, userId)) throw new NotFoundError("Unknown user");
}

function notSelf(ctx: Ctx, userId: string, what: string): void {
  if (userId === ctx.key) throw new BadRequestError(`Cannot ${what} yourself`);
}

/** Confirms `requester`'s request with their actor, then records the friendship here. */
function acceptRequest(ctx: Ctx, requester: string) {
  const s = socialOf(ctx.state);
  if (count(s.friends) >= SOCIAL_LIMITS.friends) {
    throw limit(`At most ${SOCIAL_LIMITS.friends} friends`);
  }
  return ctx.defer((async () => {
    let res: { since: number };
    try {
      res = await ctx.ask(userActor(requester), "social.accepted", { by: ctx.key });
    } catch (err) {
      if (isRefusal(err)) await ctx.ask(ctx.id, "social.dropIncoming", { from: requester });
      throw err;
    }
    await ctx.ask(ctx.id, "social.befriend", { with: requester, since: res.since });
    return { status: "friends", since: res.since };
  })());
}

/** The follow lists and counts of `target` as `ctx.key` may see them (not when blocked). */
async function checkMayView(ctx: Ctx, target: string): Promise<void> {
  if (target === ctx.key) return;
  await requireUser(ctx, target);
  const gate = await ctx.ask<{ blocks: boolean }>(userActor(target), "social.gate", {
    other: ctx.key,
  });
  if (gate.blocks) throw new ImError("blocked", "This user has blocked you");
}

/** Handlers `user.ts` adds to the user actor. Bodies come from `gateway/ops_social.ts`. */
export const socialHandlers = {
  // ---------------------------------------------------------------- friend requests

  /** Sends (or repeats) a friend request; a request both ways makes friends at once. */
  async "social.friendRequest"(ctx: Ctx, body: { userId: string; message: string }) {
    const { userId: to, message } = body;
    const s = socialOf(ctx.state);
    notSelf(ctx, to, "befriend");
    if (has(s.friends, to)) throw new ImError("already_friends", "Already friends");
    if (has(s.blocked, to)) {
      throw new ImError("blocked", "You blocked this user; unblock them first");
    }
    if (has(s.incoming, to)) return acceptRequest(ctx, to);
    if (!has(s.outgoing, to) && count(s.outgoing) >= SOCIAL_LIMITS.outgoing) {
      throw limit(`At most ${SOCIAL_LIMITS.outgoing} pending friend requests`);
    }
    if (count(s.friends) >= SOCIAL_LIMITS.friends) {
      throw limit(`At most ${SOCIAL_LIMITS.friends} friends`);
    }
    await requireUser(ctx, to);
    const ts = ctx.services.now();
    s.outgoing[to] = { message, ts };
    await ctx.snapshot();
    return ctx.defer((async () => {
      let res: { status: "pending" } | { status: "friends"; since: number };
      try {
        res = await ctx.ask(userActor(to), "social.requestIn", { from: ctx.key, message, ts });
      } catch (err) {
        if (isRefusal(err)) await ctx.ask(ctx.id, "social.dropOutgoing", { to, ts });
        throw err;
      }
      if (res.status === "friends") {
        await ctx.ask(ctx.id, "social.befriend", { with: to, since: res.since });
        return { status: "friends", since: res.since };
      }
      return { status: "pending" };
    })());
  },

  /** A request offered by `from`'s actor: recorded and pushed as `friend.request`. */
  async "social.requestIn"(
    ctx: Ctx,
    body: { from: string; message: string; ts: number },
    meta: MessageMeta,
  ) {
    const from = requireFromUser(meta, body?.from);
    const s = socialOf(ctx.state);
    if (has(s.blocked, from)) {
      throw new ImError("blocked", "This user does not accept friend requests from you");
    }
    if (has(s.friends, from)) return { status: "friends", since: s.friends[from].since };
    if (has(s.outgoing, from)) {
      // Both asked: this user's own request is accepted by theirs.
      const since = ctx.services.now();
      makeFriend(s, from, since);
      await ctx.snapshot();
      pushToSelf(ctx, { op: "friend.accepted", userId: from, since });
      tellDirect(ctx, from);
      return { status: "friends", since };
    }
    if (!has(s.incoming, from) && count(s.incoming) >= SOCIAL_LIMITS.incoming) {
      throw limit("This user has too many pending friend requests");
    }
    s.incoming[from] = { message: String(body.message ?? ""), ts: body.ts };
    await ctx.snapshot();
    pushToSelf(ctx, {
      op: "friend.request",
      userId: from,
      message: s.incoming[from].message,
      ts: body.ts,
    });
    return { status: "pending" };
  },

  /** Accepts the pending request of `userId`. */
  "social.friendAccept"(ctx: Ctx, body: { userId: string }) {
    const s = socialOf(ctx.state);
    if (has(s.friends, body.userId)) throw new ImError("already_friends", "Already friends");
    if (!has(s.incoming, body.userId)) {
      throw new NotFoundError("No pending friend request from this user");
    }
    return acceptRequest(ctx, body.userId);
  },

  /** The addressee accepted: confirmed here (the requester's side) first. */
  async "social.accepted"(ctx: Ctx, body: { by: string }, meta: MessageMeta) {
    const by = requireFromUser(meta, body?.by);
    const s = socialOf(ctx.state);
    if (has(s.friends, by)) return { since: s.friends[by].since };
    if (!has(s.outgoing, by)) throw new NotFoundError("The friend request was withdrawn");
    if (count(s.friends) >= SOCIAL_LIMITS.friends) {
      throw limit("The requester has too many friends");
    }
    const since = ctx.services.now();
    makeFriend(s, by, since);
    await ctx.snapshot();
    pushToSelf(ctx, { op: "friend.accepted", userId: by, since });
    tellDirect(ctx, by);
    return { since };
  },

  /** Declines the pending request of `userId`; the requester is told (`friend.rejected`). */
  async "social.friendReject"(ctx: Ctx, body: { userId: string }) {
    const s = socialOf(ctx.state);
    if (!has(s.incoming, body.userId)) {
      throw new NotFoundError("No pending friend request from this user");
    }
    delete s.incoming[body.userId];
    await ctx.snapshot();
    ctx.tell(userActor(body.userId), "social.rejected", { by: ctx.key });
    return {};
  },

  async "social.rejected"(ctx: Ctx, body: { by: string }, meta: MessageMeta) {
    const by = requireFromUser(meta, body?.by);
    const s = socialOf(ctx.state);
    if (!has(s.outgoing, by)) return {};
    delete s.outgoing[by];
    await ctx.snapshot();
    pushToSelf(ctx, { op: "friend.rejected", userId: by });
    return {};
  },

  /** Withdraws this user's pending request to `userId` (`friend.cancelled` to them). */
  async "social.friendCancel"(ctx: Ctx, body: { userId: string }) {
    const s = socialOf(ctx.state);
    if (!has(s.outgoing, body.userId)) {
      throw new NotFoundError("No pending friend request to this user");
    }
    delete s.outgoing[body.userId];
    await ctx.snapshot();
    ctx.tell(userActor(body.userId), "social.cancelled", { by: ctx.key });
    return {};
  },

  async "social.cancelled"(ctx: Ctx, body: { by: string }, meta: MessageMeta) {
    const by = requireFromUser(meta, body?.by);
    const s = socialOf(ctx.state);
    if (!has(s.incoming, by)) return {};
    delete s.incoming[by];
    await ctx.snapshot();
    pushToSelf(ctx, { op: "friend.cancelled", userId: by });
    return {};
  },

  /** Ends a friendship: the other side first, then this one (`friend.removed` to them). */
  "social.friendDelete"(ctx: Ctx, body: { userId: string }) {
    const other = body.userId;
    if (!has(socialOf(ctx.state).friends, other)) throw new NotFoundError("Not a friend");
    return ctx.defer((async () => {
      await ctx.ask(userActor(other), "social.unfriended", { by: ctx.key });
      await ctx.ask(ctx.id, "social.unfriendLocal", { with: other });
      await syncDirect(ctx, other);
      return {};
    })());
  },

  async "social.unfriended"(ctx: Ctx, body: { by: string }, meta: MessageMeta) {
    const by = requireFromUser(meta, body?.by);
    const s = socialOf(ctx.state);
    if (!has(s.friends, by)) return {};
    delete s.friends[by];
    s.rev++;
    presenceForget(ctx, by, false);
    await ctx.snapshot();
    pushToSelf(ctx, { op: "friend.removed", userId: by });
    return ctx.defer(syncDirect(ctx, by).then(() => ({})));
  },

  /** Sets (or, with "", clears) the remark on a friend. */
  async "social.friendRemark"(ctx: Ctx, body: { userId: string; remark: string }) {
    const s = socialOf(ctx.state);
    if (!has(s.friends, body.userId)) throw new NotFoundError("Not a friend");
    s.friends[body.userId].remark = body.remark;
    await ctx.snapshot();
    return {};
  },

  /** One page of friends (by user id) with their profiles, remarks and `since`. */
  "social.friends"(ctx: Ctx, body: { after: string | null; limit: number }) {
    const s = socialOf(ctx.state);
    const { ids, more } = page(s.friends, body.after, body.limit);
    const meta = ids.map((id) => ({ id, f: s.friends[id] }));
    return ctx.defer(
      profiles(ctx, ids).then((map) => ({
        friends: meta.map(({ id, f }) => entry(map, id, { remark: f.remark, since: f.since })),
        more,
      })),
    );
  },

  /** Pending requests both ways, newest first, with the other users' profiles. */
  "social.requests"(ctx: Ctx) {
    const s = socialOf(ctx.state);
    const list = (r: Record<string, FriendRequest>) =>
      Object.entries(r).sort(([, x], [, y]) => y.ts - x.ts);
    const incoming = list(s.incoming);
    const outgoing = list(s.outgoing);
    const ids = [...incoming, ...outgoing].map(([id]) => id);
    return ctx.defer(
      profiles(ctx, ids).then((map) => ({
        incoming: incoming.map(([id, r]) => entry(map, id, { message: r.message, ts: r.ts })),
        outgoing: outgoing.map(([id, r]) => entry(map, id, { message: r.message, ts: r.ts })),
      })),
    );
  },

  // ---------------------------------------------------------------- internal commit steps

  async "social.befriend"(ctx: Ctx, body: { with: string; since: number }, meta: MessageMeta) {
    requireSelf(ctx, meta);
    const s = socialOf(ctx.state);
    if (has(s.friends, body.with)) return {};
    makeFriend(s, body.with, body.since);
    await ctx.snapshot();
    tellDirect(ctx, body.with);
    return {};
  },

  async "social.unfriendLocal"(ctx: Ctx, body: { with: string }, meta: MessageMeta) {
    requireSelf(ctx, meta);
    const s = socialOf(ctx.state);
    if (!has(s.friends, body.with)) return {};
    delete s.friends[body.with];
    s.rev++;
    presenceForget(ctx, body.with, false);
    await ctx.snapshot();
    return {};
  },

  async "social.dropOutgoing"(ctx: Ctx, body: { to: string; ts: number }, meta: MessageMeta) {
    requireSelf(ctx, meta);
    const s = socialOf(ctx.state);
    // Only the request this attempt recorded: a newer repeat stays.
    if (has(s.outgoing, body.to) && s.outgoing[body.to].ts === body.ts) {
      delete s.outgoing[body.to];
      await ctx.snapshot();
    }
    return {};
  },

  async "social.dropIncoming"(ctx: Ctx, body: { from: string }, meta: MessageMeta) {
    requireSelf(ctx, meta);
    const s = socialOf(ctx.state);
    if (has(s.incoming, body.from)) {
      delete s.incoming[body.from];
      await ctx.snapshot();
    }
    return {};
  },

  /** This user's gate towards `other` (asked by their direct conversation actor, remembered). */
  "social.gate"(ctx: Ctx, body: { other: string }, meta: MessageMeta) {
    if (typeof body?.other !== "string") throw new BadRequestError("Missing other");
    if (meta.sender === directActor(ctx.key, body.other)) noteReader(ctx, body.other);
    return gateOf(socialOf(ctx.state), body.other);
  },

  // ---------------------------------------------------------------- blocks

  /**
   * Blocks `userId`: their direct messages, friend requests and follows are refused with
   * `blocked`; pending requests between the two are dropped, their follow of this user and
   * presence subscriptions both ways end. A friendship stays (but no message passes).
   */
  async "social.block"(ctx: Ctx, body: { userId: string }) {
    const other = body.userId;
    const s = socialOf(ctx.state);
    notSelf(ctx, other, "block");
    if (has(s.blocked, other)) return {};
    if (count(s.blocked) >= SOCIAL_LIMITS.blocked) {
      throw limit(`At most ${SOCIAL_LIMITS.blocked} blocked users`);
    }
    await requireUser(ctx, other);
    s.blocked[other] = ctx.services.now();
    s.rev++;
    if (has(s.outgoing, other)) {
      delete s.outgoing[other];
      ctx.tell(userActor(other), "social.cancelled", { by: ctx.key });
    }
    delete s.incoming[other];
    presenceForget(ctx, other, true);
    // Follow edges into this user are written in this actor's turns: none can slip in after.
    await ctx.services.store.unfollow(other, ctx.key);
    await ctx.snapshot();
    return ctx.defer(syncDirect(ctx, other).then(() => ({})));
  },

  async "social.unblock"(ctx: Ctx, body: { userId: string }) {
    const s = socialOf(ctx.state);
    if (!has(s.blocked, body.userId)) throw new NotFoundError("This user is not blocked");
    delete s.blocked[body.userId];
    s.rev++;
    await ctx.snapshot();
    return ctx.defer(syncDirect(ctx, body.userId).then(() => ({})));
  },

  /** One page of blocked users (by user id) with their profiles and when they were blocked. */
  "social.blocks"(ctx: Ctx, body: { after: string | null; limit: number }) {
    const s = socialOf(ctx.state);
    const { ids, more } = page(s.blocked, body.after, body.limit);
    const at = ids.map((id) => s.blocked[id]);
    return ctx.defer(
      profiles(ctx, ids).then((map) => ({
        blocked: ids.map((id, i) => entry(map, id, { ts: at[i] })),
        more,
      })),
    );
  },

  // ---------------------------------------------------------------- stranger policy

  /**
   * Reads, and with `strangers`, sets who may start a direct chat with this user. A change
   * reaches every direct actor that cached this user's gate before it is answered.
   */
  async "social.privacy"(ctx: Ctx, body: { strangers?: StrangerPolicy }) {
    const s = socialOf(ctx.state);
    if (body?.strangers === undefined || body.strangers === s.strangers) {
      return { strangers: s.strangers };
    }
    s.strangers = body.strangers;
    s.rev++;
    await ctx.snapshot();
    const updates = recentReaders(ctx).map((other) => syncDirect(ctx, other));
    const answer = { strangers: s.strangers };
    return ctx.defer(Promise.all(updates).then(() => answer));
  },

  // ---------------------------------------------------------------- follows

  /** Follows `userId` (through their actor, which checks its block list). */
  async "social.follow"(ctx: Ctx, body: { userId: string }) {
    const target = body.userId;
    notSelf(ctx, target, "follow");
    if (has(socialOf(ctx.state).blocked, target)) {
      throw new ImError("blocked", "You blocked this user; unblock them first");
    }
    await requireUser(ctx, target);
    // Asked before the turn ends, so this user's follows and unfollows reach the target in order.
    const answer = ctx.ask(userActor(target), "social.followIn", { from: ctx.key });
    return ctx.defer(answer);
  },

  async "social.unfollow"(ctx: Ctx, body: { userId: string }) {
    notSelf(ctx, body.userId, "unfollow");
    await requireUser(ctx, body.userId);
    const answer = ctx.ask(userActor(body.userId), "social.unfollowIn", { from: ctx.key });
    return ctx.defer(answer);
  },

  /** `from` follows this user: refused when blocked; a new edge is pushed as `follow.new`. */
  async "social.followIn"(ctx: Ctx, body: { from: string }, meta: MessageMeta) {
    const from = requireFromUser(meta, body?.from);
    if (has(socialOf(ctx.state).blocked, from)) {
      throw new ImError("blocked", "This user has blocked you");
    }
    const ts = ctx.services.now();
    if (await ctx.services.store.follow(from, ctx.key, ts)) {
      pushToSelf(ctx, { op: "follow.new", userId: from, ts });
    }
    return {};
  },

  async "social.unfollowIn"(ctx: Ctx, body: { from: string }, meta: MessageMeta) {
    const from = requireFromUser(meta, body?.from);
    if (!await ctx.services.store.unfollow(from, ctx.key)) {
      throw new NotFoundError("Not following this user");
    }
    return {};
  },

  /** One page of `userId`'s followers or followees, newest first, with profiles. */
  "social.follows"(
    ctx: Ctx,
    body: {
      userId: string;
      kind: "followers" | "following";
      after: FollowCursor | null;
      limit: number;
    },
  ) {
    return ctx.defer((async () => {
      await checkMayView(ctx, body.userId);
      const rows = await ctx.services.store.listFollows(
        body.userId,
        body.kind,
        body.after,
        body.limit + 1,
      );
      const more = rows.length > body.limit;
      const list = rows.slice(0, body.limit);
      const map = await profiles(ctx, list.map((r) => r.userId));
      return { users: list.map((r) => entry(map, r.userId, { ts: r.ts })), more };
    })());
  },

  "social.followCounts"(ctx: Ctx, body: { userId: string }) {
    return ctx.defer((async () => {
      await checkMayView(ctx, body.userId);
      return await ctx.services.store.followCounts(body.userId);
    })());
  },

  // ---------------------------------------------------------------- profiles and search

  /** A user's public profile, with `friend` and `remark` as this user sees them. */
  "social.profile"(ctx: Ctx, body: { userId: string }) {
    const s = socialOf(ctx.state);
    const friend = has(s.friends, body.userId) ? s.friends[body.userId] : null;
    return ctx.defer((async () => {
      const [p] = await ctx.services.store.getProfiles([body.userId]);
      if (!p) throw new NotFoundError("Unknown user");
      return { ...p, friend: friend !== null, remark: friend?.remark ?? "" };
    })());
  },

  /** Changes this user's own profile (serialised with its other changes). */
  async "social.profileUpdate"(ctx: Ctx, body: { patch: ProfilePatch }) {
    const p = await ctx.services.store.updateProfile(ctx.key, body.patch, ctx.services.now());
    if (!p) throw new NotFoundError("Unknown user");
    return p;
  },

  "social.search"(
    ctx: Ctx,
    body: { query: string; after: SearchCursor | null; limit: number },
  ) {
    return ctx.defer(ctx.services.store.searchUsers(body.query, body.after, body.limit));
  },
};
