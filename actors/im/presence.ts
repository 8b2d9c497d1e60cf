/**
 * Presence (online / offline / last seen across a user's devices) and group typing indicators,
 * kept in the user actors. `user.ts` calls {@link presenceConnected} from `connect` and
 * {@link presenceActivated} from `onActivate`, and spreads {@link presenceHandlers}.
 *
 * Guarantees:
 * - A user is **online while any of its devices is connected anywhere in the cluster**: every
 *   session registers `<nodeId>/<connId>` on connect and removes it on close
 *   (`presence.disconnect`). Connections of a node that is not live in the cluster view (crash,
 *   shutdown) stop counting within `PRESENCE_TIMING.tickMs` — checked by a timer that runs
 *   while connections are known, and on activation (an actor that moved away with a stopping
 *   node catches up when it is next activated, e.g. by a presence query) — and are forgotten
 *   after `deadNodeGraceMs` (a node back before that, after a membership flap, counts again).
 *   Connections are in the snapshot, written shortly after they change (coalesced).
 * - Only **friends and group co-members** see a user's presence: a subscription names the ids
 *   and, for non-friends, a group both belong to; the group actor confirms the membership and
 *   the watched user's actor confirms the friendship and that it does not block the watcher.
 * - Subscriptions are **bounded**: at most {@link PRESENCE_LIMITS.perRequest} ids per request
 *   and {@link PRESENCE_LIMITS.subs} per user. They belong to the user (all its devices) and end
 *   with `presence.unsubscribe`, when the user's last device disconnects, or when the
 *   friendship ends or a block is set. Each is a lease in the watched actor that the watcher
 *   renews while online, so a lost unwatch expires by itself.
 * - `presence` frames are pushed to watchers on every online/offline change; `typing` frames
 *   are ephemeral (never stored, never synced).
 *
 * @module
 */
import type { MessageMeta } from "../behavior.ts";
import { BadRequestError, ImError } from "../errors.ts";
import { groupActor, groupConvId, userActor } from "./conversation_ids.ts";
import {
  has,
  presenceOf,
  type PresenceVia,
  requireFromUser,
  requireSelf,
  socialOf,
  type UserCtx,
} from "./social_state.ts";

type Ctx = UserCtx;

/** Bounds of presence subscriptions (not `const` so that tests can lower them). */
export const PRESENCE_LIMITS: Record<"perRequest" | "subs" | "watchers", number> = {
  /** Ids per subscribe / get request. */
  perRequest: 100,
  /** Users one user may watch at once. */
  subs: 256,
  /** Watchers one user may have at once. */
  watchers: 20_000,
};

/** Presence timing, ms (not `const` so that tests can shorten it). */
export const PRESENCE_TIMING: Record<
  "tickMs" | "saveDelayMs" | "deadNodeGraceMs" | "leaseMs" | "renewMs",
  number
> = {
  /** How often an online user's actor drops connections of dead nodes and renews its leases. */
  tickMs: 15_000,
  /** Delay of the coalesced snapshot after connections change. */
  saveDelayMs: 2_000,
  /**
   * How long connections of a node that is not live are kept (not counted) before they are
   * forgotten; a node back within it (a membership flap) counts again.
   */
  deadNodeGraceMs: 60_000,
  /** How long a watch lasts without renewal. */
  leaseMs: 30 * 60_000,
  /** How often an online watcher renews its watches. */
  renewMs: 10 * 60_000,
};

/** Members read per `members` page when checking a group (the group actor's largest page). */
const MEMBER_PAGE = 500;

/** What a presence answer and a `presence` frame say about one user. */
export interface PresenceInfo {
  userId: string;
  online: boolean;
  /** When the last device went offline; null while online or when never seen. */
  lastSeen: number | null;
}

function nodeOf(conn: string): string {
  const i = conn.indexOf("/");
  return i < 0 ? conn : conn.slice(0, i);
}

/** When each node was first seen dead, per actor state (transient: a restart starts over). */
const deadSince = new WeakMap<object, Map<string, number>>();

/**
 * Whether a device of this user is connected on a live node now. Connections of a node that is
 * not live do not count (they count again if the node comes back, e.g. after a membership flap).
 */
export function connectedAnywhere(ctx: Ctx): boolean {
  const live = ctx.services.isNodeLive;
  return Object.keys(presenceOf(ctx.state).conns).some((c) => !live || live(nodeOf(c)));
}

/**
 * Forgets connections whose node has not been live for `PRESENCE_TIMING.deadNodeGraceMs`;
 * true when any was forgotten.
 */
function forgetDead(ctx: Ctx): boolean {
  const live = ctx.services.isNodeLive;
  if (!live) return false;
  const p = presenceOf(ctx.state);
  let seen = deadSince.get(p);
  const now = ctx.services.now();
  let forgot = false;
  for (const conn of Object.keys(p.conns)) {
    const node = nodeOf(conn);
    if (live(node)) {
      seen?.delete(node);
      continue;
    }
    if (!seen) deadSince.set(p, seen = new Map());
    const since = seen.get(node) ?? now;
    seen.set(node, since);
    if (now - since >= PRESENCE_TIMING.deadNodeGraceMs) {
      delete p.conns[conn];
      forgot = true;
    }
  }
  return forgot;
}

/** This user's presence. */
export function presenceInfo(ctx: Ctx): PresenceInfo {
  const p = presenceOf(ctx.state);
  return { userId: ctx.key, online: p.online, lastSeen: p.online ? null : p.lastSeen };
}

/** Pushes this user's presence to its live watchers (expired leases are dropped). */
function announce(ctx: Ctx): void {
  const p = presenceOf(ctx.state);
  const now = ctx.services.now();
  const users: string[] = [];
  for (const [watcher, until] of Object.entries(p.watchers)) {
    if (until > now) users.push(watcher);
    else delete p.watchers[watcher];
  }
  if (users.length) {
    ctx.services.deliver({ frame: { op: "presence", ...presenceInfo(ctx) }, users });
  }
}

/**
 * Brings the announced state (`online`) in line with the connections: on a change, watchers are
 * told; going offline sets last seen and ends this user's own watches. The timer runs while any
 * connection is known (also one of a node that is down for now). True when anything changed.
 */
function settle(ctx: Ctx): boolean {
  const p = presenceOf(ctx.state);
  const forgot = forgetDead(ctx);
  if (Object.keys(p.conns).length === 0) ctx.cancelTimer("presence");
  const online = connectedAnywhere(ctx);
  if (online === p.online) return forgot;
  p.online = online;
  if (!online) {
    p.lastSeen = ctx.services.now();
    for (const target of Object.keys(p.subs)) {
      ctx.tell(userActor(target), "presence.unwatch", { watcher: ctx.key });
    }
    p.subs = {};
  }
  announce(ctx);
  return true;
}

function startTimer(ctx: Ctx): void {
  ctx.setTimer("presence", PRESENCE_TIMING.tickMs, "presence.tick", undefined, true);
}

const saveScheduled = new WeakSet<object>();

/**
 * Snapshots the connections soon, once for all changes until then: connects and disconnects
 * come in storms (a node restart reconnects everyone), and a write per connection on the auth
 * path would serialise them all behind the store. A crash before the save forgets at most the
 * connections of the last `saveDelayMs` (shown offline until that device reconnects).
 */
function scheduleSave(ctx: Ctx): void {
  const p = presenceOf(ctx.state);
  if (saveScheduled.has(p)) return;
  saveScheduled.add(p);
  ctx.setTimer("presence.save", PRESENCE_TIMING.saveDelayMs, "presence.save");
}

/**
 * Registers a connection (`body.conn`, `<nodeId>/<connId>`) of this user; called by `connect`.
 * Announces the user online when it was not; the snapshot follows shortly (`scheduleSave`).
 */
export function presenceConnected(ctx: Ctx, body: { conn?: unknown }): void {
  if (typeof body?.conn !== "string" || body.conn.length > 200) return;
  const p = presenceOf(ctx.state);
  const first = Object.keys(p.conns).length === 0;
  p.conns[body.conn] = ctx.services.now();
  settle(ctx);
  if (first) startTimer(ctx);
  scheduleSave(ctx);
}

/** Re-evaluates a restored user's connections (nodes may have gone) and restarts its timer. */
export function presenceActivated(ctx: Ctx): void {
  const p = presenceOf(ctx.state);
  if (Object.keys(p.conns).length === 0 && !p.online) return;
  const changed = settle(ctx);
  if (Object.keys(p.conns).length > 0) startTimer(ctx);
  if (changed) scheduleSave(ctx);
}

/**
 * Forgets presence links with `other` (unfriend, block): it no longer watches this user, and
 * this user's watch of it ends (`tellOther`: also in `other`'s actor; otherwise that actor
 * forgets on its own side).
 */
export function presenceForget(ctx: Ctx, other: string, tellOther: boolean): void {
  const p = presenceOf(ctx.state);
  delete p.watchers[other];
  if (has(p.subs, other)) {
    delete p.subs[other];
    if (tellOther) ctx.tell(userActor(other), "presence.unwatch", { watcher: ctx.key });
  }
}

/** Throws `forbidden` unless every id of `ids` is a member of `group` (and so is the caller). */
async function checkCoMembers(ctx: Ctx, group: string, ids: string[]): Promise<void> {
  const missing = new Set(ids);
  for await (const member of groupMembers(ctx, group)) {
    missing.delete(member);
    if (missing.size === 0) return;
  }
  const [first] = missing;
  throw new ImError("forbidden", `User "${first}" is neither a friend nor a member of that group`);
}

/** Every member of `group`, page by page; `not_member`/`not_found` unless the caller is one. */
async function* groupMembers(ctx: Ctx, group: string): AsyncGenerator<string> {
  let after: string | null = null;
  for (;;) {
    const res: { members: { userId: string }[]; more?: boolean } = await ctx.ask(
      groupActor(group),
      "members",
      { user: ctx.key, after, limit: MEMBER_PAGE },
    );
    for (const m of res.members) yield m.userId;
    if (!res.more || res.members.length === 0) return;
    after = res.members[res.members.length - 1].userId;
  }
}

/** Handlers `user.ts` adds to the user actor. */
export const presenceHandlers = {
  /** A session closed (told by the gateway that held it). */
  "presence.disconnect"(ctx: Ctx, body: { conn: string }) {
    const p = presenceOf(ctx.state);
    if (typeof body?.conn !== "string" || !has(p.conns, body.conn)) return {};
    delete p.conns[body.conn];
    settle(ctx);
    scheduleSave(ctx);
    return {};
  },

  /** The delayed snapshot of `scheduleSave`. */
  async "presence.save"(ctx: Ctx) {
    saveScheduled.delete(presenceOf(ctx.state));
    await ctx.snapshot();
    return {};
  },

  /** Timer while connections are known: follow node liveness, renew this user's watches. */
  "presence.tick"(ctx: Ctx) {
    const p = presenceOf(ctx.state);
    if (settle(ctx)) scheduleSave(ctx);
    if (!p.online) return {};
    const now = ctx.services.now();
    if (now - p.subsRenewedAt >= PRESENCE_TIMING.renewMs && Object.keys(p.subs).length) {
      p.subsRenewedAt = now;
      for (const [target, via] of Object.entries(p.subs)) {
        ctx.tell(userActor(target), "presence.watch", { watcher: ctx.key, via, watch: true });
      }
    }
    return {};
  },

  /**
   * `watcher` asks for this user's presence (and, with `watch`, a lease on its changes).
   * Refused (`forbidden`) when this user blocks the watcher, or when the watcher claims a
   * friendship this user does not have (co-membership is confirmed by the watcher's actor).
   */
  "presence.watch"(
    ctx: Ctx,
    body: { watcher: string; via: PresenceVia; watch: boolean },
    meta: MessageMeta,
  ) {
    const watcher = requireFromUser(meta, body?.watcher);
    const s = socialOf(ctx.state);
    if (has(s.blocked, watcher)) throw new ImError("forbidden", "Presence not visible");
    if (body.via === "friend" && !has(s.friends, watcher)) {
      throw new ImError("forbidden", "Presence not visible: not a friend");
    }
    if (body.watch) {
      const p = presenceOf(ctx.state);
      const now = ctx.services.now();
      if (!has(p.watchers, watcher) && Object.keys(p.watchers).length >= PRESENCE_LIMITS.watchers) {
        for (const [w, until] of Object.entries(p.watchers)) if (until <= now) delete p.watchers[w];
        if (Object.keys(p.watchers).length >= PRESENCE_LIMITS.watchers) {
          throw new ImError("limit_exceeded", "This user has too many watchers");
        }
      }
      p.watchers[watcher] = now + PRESENCE_TIMING.leaseMs;
    }
    return presenceInfo(ctx);
  },

  "presence.unwatch"(ctx: Ctx, body: { watcher: string }, meta: MessageMeta) {
    const watcher = requireFromUser(meta, body?.watcher);
    delete presenceOf(ctx.state).watchers[watcher];
    return {};
  },

  /**
   * The presence of `userIds` (friends, or members of `group`), and with `watch` a subscription
   * to their changes. All or nothing: one id that may not be seen refuses the whole request.
   */
  "presence.subscribe"(
    ctx: Ctx,
    body: { userIds: string[]; group: string | null; watch: boolean },
  ) {
    const ids = [...new Set(body.userIds)];
    if (ids.includes(ctx.key)) throw new BadRequestError("Cannot watch yourself");
    const s = socialOf(ctx.state);
    const p = presenceOf(ctx.state);
    if (body.watch) {
      const added = ids.filter((id) => !has(p.subs, id)).length;
      if (Object.keys(p.subs).length + added > PRESENCE_LIMITS.subs) {
        throw new ImError(
          "limit_exceeded",
          `At most ${PRESENCE_LIMITS.subs} presence subscriptions`,
        );
      }
    }
    const via: Record<string, PresenceVia> = {};
    for (const id of ids) via[id] = has(s.friends, id) ? "friend" : "group";
    const viaGroup = ids.filter((id) => via[id] === "group");
    if (viaGroup.length && body.group === null) {
      throw new ImError(
        "forbidden",
        `User "${viaGroup[0]}" is not a friend; name a group you share with them`,
      );
    }
    return ctx.defer((async () => {
      if (viaGroup.length) await checkCoMembers(ctx, body.group!, viaGroup);
      const outcomes = await Promise.allSettled(
        ids.map((id) =>
          ctx.ask<PresenceInfo>(userActor(id), "presence.watch", {
            watcher: ctx.key,
            via: via[id],
            watch: body.watch,
          })
        ),
      );
      const failed = outcomes.find((o) => o.status === "rejected") as
        | PromiseRejectedResult
        | undefined;
      if (failed) {
        if (body.watch) {
          ids.forEach((id, i) => {
            if (outcomes[i].status === "fulfilled") {
              ctx.tell(userActor(id), "presence.unwatch", { watcher: ctx.key });
            }
          });
        }
        throw failed.reason;
      }
      if (body.watch) {
        await ctx.ask(ctx.id, "presence.subsAdd", { subs: via });
      }
      return {
        presence: outcomes.map((o) => (o as PromiseFulfilledResult<PresenceInfo>).value),
      };
    })());
  },

  /** Records granted watches (internal step of `presence.subscribe`). */
  async "presence.subsAdd"(
    ctx: Ctx,
    body: { subs: Record<string, PresenceVia> },
    meta: MessageMeta,
  ) {
    requireSelf(ctx, meta);
    const p = presenceOf(ctx.state);
    for (const [id, via] of Object.entries(body.subs)) {
      // Gone offline meanwhile, or over the bound (a concurrent subscribe): let it go again.
      if (
        !p.online || (!has(p.subs, id) && Object.keys(p.subs).length >= PRESENCE_LIMITS.subs)
      ) {
        ctx.tell(userActor(id), "presence.unwatch", { watcher: ctx.key });
        continue;
      }
      p.subs[id] = via;
    }
    if (!p.subsRenewedAt) p.subsRenewedAt = ctx.services.now();
    await ctx.snapshot();
    return {};
  },

  /** Ends subscriptions (ids not subscribed are ignored). */
  async "presence.unsubscribe"(ctx: Ctx, body: { userIds: string[] }) {
    const p = presenceOf(ctx.state);
    let changed = false;
    for (const id of body.userIds) {
      if (!has(p.subs, id)) continue;
      delete p.subs[id];
      ctx.tell(userActor(id), "presence.unwatch", { watcher: ctx.key });
      changed = true;
    }
    if (changed) await ctx.snapshot();
    return {};
  },

  /** A typing indicator to every other member of a group this user belongs to. */
  "typing.group"(ctx: Ctx, body: { groupId: string; active: boolean }) {
    return ctx.defer((async () => {
      const users: string[] = [];
      for await (const member of groupMembers(ctx, body.groupId)) {
        if (member !== ctx.key) users.push(member);
      }
      if (users.length) {
        ctx.services.deliver({
          frame: {
            op: "typing",
            conv: groupConvId(body.groupId),
            from: ctx.key,
            active: body.active,
          },
          users,
        });
      }
      return {};
    })());
  },
};
