/**
 * The social sub-states of a user actor (`social`, `presence`, `push` fields of
 * {@link UserState}) and the helpers the social modules share.
 *
 * Every sub-state is created lazily with its defaults and completed when a snapshot written by an
 * older version lacks a field, so adding a field never breaks a restored actor. Keys of the
 * records are user ids (or conversation ids) that were checked before they were set: a key is
 * never taken from a frame without an existence check, and reads use `Object.hasOwn`.
 *
 * @module
 */
import type { ActorContext, MessageMeta } from "../behavior.ts";
import { ImError } from "../errors.ts";
import { userActor } from "./conversation_ids.ts";
import type { ImServices } from "./services.ts";
import type { UserState } from "./user.ts";

/**
 * Bounds of the social state of one user (each keeps a snapshot small and a turn short).
 * The server never changes them; they are not `const` so that tests can lower them.
 */
export const SOCIAL_LIMITS: Record<
  "friends" | "incoming" | "outgoing" | "blocked" | "requestMessage" | "remark" | "mutes",
  number
> = {
  /** Friends per user. */
  friends: 5000,
  /** Pending friend requests a user may have received. */
  incoming: 500,
  /** Pending friend requests a user may have sent. */
  outgoing: 200,
  /** Blocked users per user. */
  blocked: 5000,
  /** Characters of a friend request's message. */
  requestMessage: 200,
  /** Characters of a remark. */
  remark: 64,
  /** Muted conversations per user. */
  mutes: 1000,
};

/** Who may start a direct chat with a user. */
export type StrangerPolicy = "anyone" | "friends";

/** A friend and the caller's remark on them. */
export interface Friend {
  /** When the friendship began, ms. */
  since: number;
  /** A private note/alias the user keeps for this friend ("" when none). */
  remark: string;
}

/** A pending friend request. */
export interface FriendRequest {
  message: string;
  ts: number;
}

/** The social graph as one user sees it. */
export interface SocialState {
  /**
   * Grows with every change that affects who may message whom (friends, blocks, policy). The
   * direct conversation actors keep the latest revision they saw and ignore older updates.
   */
  rev: number;
  friends: Record<string, Friend>;
  /** Requests received, by requester. */
  incoming: Record<string, FriendRequest>;
  /** Requests sent, by addressee. */
  outgoing: Record<string, FriendRequest>;
  /** Blocked users and when they were blocked. */
  blocked: Record<string, number>;
  strangers: StrangerPolicy;
}

/** How a watcher was authorised to see a user's presence. */
export type PresenceVia = "friend" | "group";

/** Presence of a user and who watches it. */
export interface PresenceState {
  /** Connected devices anywhere in the cluster: `<nodeId>/<connId>` → connected since, ms. */
  conns: Record<string, number>;
  /** The state last announced to watchers: a connection on a live node was known. */
  online: boolean;
  /** When the last device went offline (null: never connected, or online now). */
  lastSeen: number | null;
  /** Users who get `presence` frames about this user → lease expiry, ms. */
  watchers: Record<string, number>;
  /** Users this user watches → how that was authorised. */
  subs: Record<string, PresenceVia>;
  /** When the watch leases of `subs` were last renewed, ms. */
  subsRenewedAt: number;
}

/** Quiet hours: a daily window in a time zone during which no offline push is sent. */
export interface QuietHours {
  /** Minutes after local midnight when the window starts (0-1439). */
  start: number;
  /** Minutes after local midnight when it ends (may be before `start`: overnight). */
  end: number;
  /** IANA time zone name, e.g. `Europe/Berlin` or `UTC`. */
  tz: string;
}

/** Offline-push preferences. */
export interface PushPrefs {
  /** Conversation id → muted until (ms; 0 = until unmuted). */
  muted: Record<string, number>;
  /** Do not disturb: no offline push at all while true. */
  dnd: boolean;
  quiet: QuietHours | null;
}

/** The social sub-state of `state`, created or completed with defaults. */
export function socialOf(state: UserState): SocialState {
  const s = (state.social ??= {}) as Partial<SocialState>;
  s.rev ??= 0;
  s.friends ??= {};
  s.incoming ??= {};
  s.outgoing ??= {};
  s.blocked ??= {};
  s.strangers ??= "anyone";
  return s as SocialState;
}

/** The presence sub-state of `state`, created or completed with defaults. */
export function presenceOf(state: UserState): PresenceState {
  const s = (state.presence ??= {}) as Partial<PresenceState>;
  s.conns ??= {};
  s.online ??= false;
  s.lastSeen ??= null;
  s.watchers ??= {};
  s.subs ??= {};
  s.subsRenewedAt ??= 0;
  return s as PresenceState;
}

/** The push preferences of `state`, created or completed with defaults. */
export function pushPrefsOf(state: UserState): PushPrefs {
  const s = (state.push ??= {}) as Partial<PushPrefs>;
  s.muted ??= {};
  s.dnd ??= false;
  s.quiet ??= null;
  return s as PushPrefs;
}

/** Whether `record` has its own key `key` (never an inherited one). */
export function has(record: Record<string, unknown>, key: string): boolean {
  return Object.hasOwn(record, key);
}

/** The context of a user actor handler. */
export type UserCtx = ActorContext<UserState, ImServices>;

/**
 * Refuses a message that claims to come from user `from` unless that user's actor sent it:
 * actor-to-actor messages carry the sending actor's id, which no client can set.
 */
export function requireFromUser(meta: MessageMeta, from: unknown): string {
  if (typeof from !== "string" || meta.sender !== userActor(from)) {
    throw new ImError("forbidden", "This message must come from the named user's actor");
  }
  return from;
}

/** Refuses a message that this actor did not send to itself (internal commit steps). */
export function requireSelf(ctx: UserCtx, meta: MessageMeta): void {
  if (meta.sender !== ctx.id) throw new ImError("forbidden", "Internal message");
}

/** Whether `userId` names an existing account. */
export async function userExists(ctx: UserCtx, userId: string): Promise<boolean> {
  return (await ctx.services.store.existingUsers([userId])).length === 1;
}
