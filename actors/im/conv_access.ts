/**
 * What the message features (reactions, recall, edit, delete for me, read receipts, media
 * access) need to know about a conversation actor's state, for both kinds: who participates,
 * who moderates, and which conversation id the actor serves.
 *
 * The answers come from the actor's own in-memory state (the direct pair, the group's members
 * and roles as `group.ts`/`group_rules.ts` keep them), so authorising a request costs no store
 * round trip.
 *
 * @module
 */
import type { ActorContext } from "../behavior.ts";
import { directConvId, groupConvId } from "./conversation_ids.ts";
import type { DirectState } from "./direct.ts";
import type { GroupState } from "./group.ts";
import { checkCanSpeak, memberList, memberOf } from "./group_rules.ts";
import type { ImServices } from "./services.ts";

/** A conversation actor's view for the message features. */
export interface ConvAccess<S> {
  kind: "direct" | "group";
  /** The conversation id the actor serves. */
  conv(ctx: ActorContext<S, ImServices>): string;
  /** Whether `user` may read the conversation (history, receipts, its media). */
  isParticipant(state: S, user: string): boolean;
  /** Whether the conversation accepts changes (a dissolved group keeps only its history). */
  live(state: S): boolean;
  /** Every participant (the fan-out of update frames). */
  participants(state: S): string[];
  /** Whether `actor` may recall `author`'s messages at any time (group moderation). */
  moderates(state: S, actor: string, author: string): boolean;
  /** Whether `user` may mention everyone. */
  mayMentionAll(state: S, user: string): boolean;
  /** Throws when `user` may not post now (e.g. muted in a group). */
  checkCanPost(ctx: ActorContext<S, ImServices>, user: string): void;
}

/** The view of a direct conversation: its two users, no moderators. */
export const directAccess: ConvAccess<DirectState> = {
  kind: "direct",
  conv: (ctx) => directConvId(ctx.state.a, ctx.state.b),
  isParticipant: (s, user) => s.valid && (user === s.a || user === s.b),
  live: (s) => s.valid,
  participants: (s) => s.a === s.b ? [s.a] : [s.a, s.b],
  moderates: () => false,
  mayMentionAll: () => false,
  checkCanPost: () => {},
};

const RANK = { member: 0, admin: 1, owner: 2 } as const;

/**
 * The view of a group: its members; the owner moderates everyone and admins moderate
 * ordinary members (and anyone who is no longer a member).
 */
export const groupAccess: ConvAccess<GroupState> = {
  kind: "group",
  conv: (ctx) => groupConvId(ctx.key),
  isParticipant: (s, user) => s.exists && memberOf(s, user) !== undefined,
  live: (s) => s.exists && !s.dissolved,
  participants: (s) => memberList(s),
  moderates(s, actor, author) {
    const a = memberOf(s, actor);
    if (!a || a.role === "member") return false;
    const b = memberOf(s, author);
    return !b || actor === author || RANK[a.role] > RANK[b.role];
  },
  mayMentionAll(s, user) {
    const m = memberOf(s, user);
    return m?.role === "owner" || m?.role === "admin";
  },
  checkCanPost(ctx, user) {
    const m = memberOf(ctx.state, user);
    if (m) checkCanSpeak(ctx.state, m, ctx.services.now());
  },
};
