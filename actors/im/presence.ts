/**
 * Presence (online / offline / last seen across a user's devices) and group typing indicators,
 * kept in the user actors. `user.ts` calls {@link presenceConnected} from `connect`,
 * {@link presenceActivated} from `onActivate`, {@link presenceHandoff} from `onPassivate`, and
 * spreads {@link presenceHandlers}.
 *
 * Guarantees:
 * - A user is **online while any of its devices is connected anywhere in the cluster**: every
 *   session registers `<nodeId>/<connId>` on connect and removes it on close
 *   (`presence.disconnect`). Connections of a node that is not live in the cluster view (crash,
 *   shutdown) stop counting within `PRESENCE_TIMING.tickMs` — checked by a timer that runs
 *   while connections are known, and on activation (an actor that moved away with a stopping
 *   node catches up when it is next activated, e.g. by a presence query) — and are forgotten
 *   after `deadNodeGraceMs` (a node back before that, after a membership flap, counts again).
 *   So after a node restart its old connections no longer count, and the user shows offline
 *   with a last-seen time until a device connects again.
 * - **No durable write per connect or disconnect.** The connections live in the actor's memory
 *   and reach the store with the snapshots the actor writes anyway: always its last one, when it
 *   passivates or hands off (graceful shutdown), and any it writes for other reasons. What a
 *   snapshot cannot know is repaired from the gateways, the source of truth: an activation that
 *   does not follow a clean hand-off (the previous activation crashed, was fenced or dropped, so
 *   its last connections were never written) sends one internal delivery to the user
 *   (`$presence.reassert`: every gateway holding a session of the user re-announces it with
 *   `presence.reassert`, see gateway/connections.ts), and forgets the restored connections of
 *   live nodes that nobody re-announced within `PRESENCE_TIMING.confirmMs`. Clean means: the
 *   snapshot was written by the passivation of epoch `E` (the state's `handoff = E`) and this
 *   activation's epoch is `E + 1` — every activation raises the stored epoch before its first
 *   turn, so any activation in between, even one that wrote nothing, leaves a gap — or there is
 *   no snapshot and this is the actor's first epoch. A crash therefore costs one delivery per
 *   re-activated user actor, and the common path (connect, disconnect) costs no write at all.
 *   Last seen is durable with the next snapshot (after a crash before it, the user shows the
 *   time of the recovery instead).
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
  type PresenceState,
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
  "tickMs" | "confirmMs" | "deadNodeGraceMs" | "leaseMs" | "renewMs",
  number
> = {
  /** How often an online user's actor drops connections of dead nodes and renews its leases. */
  tickMs: 15_000,
  /**
   * After an activation that did not follow a clean hand-off: how long restored connections of
   * live nodes wait to be re-announced by their gateways before they are forgotten.
   */
  confirmMs: 10_000,
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

/**
 * The frame op of the internal delivery that asks every gateway holding a session of the user
 * to re-announce it (`presence.reassert`); never sent to a client (gateway/connections.ts).
 */
export const PRESENCE_REASSERT_OP = "$presence.reassert";

/**
 * The clean hand-off marker, a field of the user state (kept in the snapshot): the epoch whose
 * passivation wrote the snapshot; 0 in memory once activated and after any change of the
 * connections (so no other snapshot passes for a hand-off); absent in snapshots older than it.
 */
type HandoffState = { handoff?: number };

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

/** Restored connections not yet re-announced, per presence state (transient). */
const unconfirmed = new WeakMap<object, Set<string>>();

/**
 * The presence sub-state, created with every field at once when missing (one object shape, no
 * out-of-object properties: it is kept for every connected user).
 */
function presence(ctx: Ctx): PresenceState {
  if (ctx.state.presence === undefined) {
    ctx.state.presence = {
      conns: {},
      online: false,
      lastSeen: null,
      watchers: {},
      subs: {},
      subsRenewedAt: 0,
    } satisfies PresenceState;
  }
  return presenceOf(ctx.state);
}

/** Adds (or refreshes) a connection; any change after a hand-off voids its marker. */
function addConn(ctx: Ctx, conn: string): void {
  const p = presence(ctx);
  const first = Object.keys(p.conns).length === 0;
  p.conns[conn] = ctx.services.now();
  (ctx.state as HandoffState).handoff = 0;
  unconfirmed.get(p)?.delete(conn);
  settle(ctx);
  if (first) startTimer(ctx);
}

/**
 * Registers a connection (`body.conn`, `<nodeId>/<connId>`) of this user; called by `connect`.
 * Announces the user online when it was not. Nothing is written (see the module doc).
 */
export function presenceConnected(ctx: Ctx, body: { conn?: unknown }): void {
  if (typeof body?.conn !== "string" || body.conn.length > 200) return;
  addConn(ctx, body.conn);
}

/**
 * Called from `onActivate`: re-evaluates the restored connections (nodes may have gone) and
 * restarts the timer; after anything but a clean hand-off (see the module doc), asks the
 * gateways to re-announce this user's sessions and schedules the forgetting of the restored
 * ones that are not re-announced.
 */
export function presenceActivated(ctx: Ctx): void {
  const state = ctx.state as HandoffState;
  const clean = state.handoff === ctx.epoch - 1;
  state.handoff = 0;
  const raw = ctx.state.presence as PresenceState | undefined;
  if (!clean) {
    ctx.services.deliver({ frame: { op: PRESENCE_REASSERT_OP }, users: [ctx.key] });
    const live = ctx.services.isNodeLive;
    const restored = raw
      ? Object.keys(raw.conns ?? {}).filter((c) => !live || live(nodeOf(c)))
      : [];
    if (restored.length) {
      unconfirmed.set(presence(ctx), new Set(restored));
      ctx.setTimer("presence.confirm", PRESENCE_TIMING.confirmMs, "presence.confirm");
    }
  }
  if (!raw) return;
  const p = presence(ctx);
  if (Object.keys(p.conns).length === 0 && !p.online) return;
  settle(ctx);
  if (Object.keys(p.conns).length > 0) startTimer(ctx);
}

/**
 * Called from `onPassivate` (the last turn): marks the state so that the snapshot written next
 * is known as this epoch's hand-off (see the module doc).
 */
export function presenceHandoff(ctx: Ctx): void {
  (ctx.state as HandoffState).handoff = ctx.epoch;
}

/** The field `initialState` gives a user that has no snapshot (see {@link presenceActivated}). */
export const FRESH_HANDOFF = { handoff: 0 } as const;

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
    const p = presence(ctx);
    if (typeof body?.conn !== "string" || !has(p.conns, body.conn)) return {};
    delete p.conns[body.conn];
    (ctx.state as HandoffState).handoff = 0;
    unconfirmed.get(p)?.delete(body.conn);
    settle(ctx);
    return {};
  },

  /**
   * A gateway re-announces a live session of this user (asked by {@link presenceActivated}
   * after an activation that did not follow a clean hand-off).
   */
  "presence.reassert"(ctx: Ctx, body: { conn: string }) {
    if (typeof body?.conn !== "string" || body.conn.length > 200) return {};
    addConn(ctx, body.conn);
    return {};
  },

  /** Forgets the restored connections that no gateway re-announced. */
  "presence.confirm"(ctx: Ctx) {
    const p = presence(ctx);
    const left = unconfirmed.get(p);
    unconfirmed.delete(p);
    if (!left?.size) return {};
    for (const conn of left) delete p.conns[conn];
    (ctx.state as HandoffState).handoff = 0;
    settle(ctx);
    return {};
  },

  /** Timer while connections are known: follow node liveness, renew this user's watches. */
  "presence.tick"(ctx: Ctx) {
    const p = presenceOf(ctx.state);
    settle(ctx);
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
