/**
 * The rules of a group actor's state: who is a member, who outranks whom, who may speak, how
 * member lists are paged, how a state change is committed, and how a change is announced as a
 * system message. Shared by the group handlers (`group.ts`, `group_admin.ts`) so every check is
 * written once.
 *
 * @module
 */
import type { ActorContext, Deferred } from "../behavior.ts";
import { ImError, NotFoundError, NotMemberError, toImError } from "../errors.ts";
import { groupConvId } from "./conversation_ids.ts";
import { commitSend } from "./messaging.ts";
import type { ImServices } from "./services.ts";
import type { GroupMember, GroupRole, GroupState, JoinRequest } from "./group.ts";

/** The context of a group handler. */
export type GroupContext = ActorContext<GroupState, ImServices>;

/** Largest page of `members` / `requests`; also the default is {@link DEFAULT_PAGE}. */
export const MAX_PAGE = 500;
/** Default page size of `members` / `requests`. */
export const DEFAULT_PAGE = 100;

const memberLists = new WeakMap<GroupState, string[]>();
const sortedLists = new WeakMap<GroupState, string[]>();

/** Member ids (the recipients of a group message), cached until {@link membershipChanged}. */
export function memberList(state: GroupState): string[] {
  let list = memberLists.get(state);
  if (!list) {
    list = Object.keys(state.members);
    memberLists.set(state, list);
  }
  return list;
}

/** Member ids sorted (code unit order), cached until {@link membershipChanged}. */
function sortedMemberIds(state: GroupState): string[] {
  let list = sortedLists.get(state);
  if (!list) {
    list = Object.keys(state.members).sort();
    sortedLists.set(state, list);
  }
  return list;
}

/** Drops the cached member lists; call after any change to `state.members`. */
export function membershipChanged(state: GroupState): void {
  memberLists.delete(state);
  sortedLists.delete(state);
}

/** The member `userId` of the group, or undefined (never an inherited property). */
export function memberOf(state: GroupState, userId: unknown): GroupMember | undefined {
  return typeof userId === "string" && Object.hasOwn(state.members, userId)
    ? state.members[userId]
    : undefined;
}

/** The pending join request of `userId`, or undefined. */
export function requestOf(state: GroupState, userId: string): JoinRequest | undefined {
  return Object.hasOwn(state.requests, userId) ? state.requests[userId] : undefined;
}

/** Throws `not_found` unless the group exists and is not dissolved. */
export function liveGroup(state: GroupState): void {
  if (!state.exists || state.dissolved) throw new NotFoundError("Unknown group");
}

/** The caller's membership in a live group; `not_found` / `not_member` otherwise. */
export function liveMember(state: GroupState, userId: unknown): GroupMember {
  liveGroup(state);
  const m = memberOf(state, userId);
  if (!m) throw new NotMemberError("Not a member of this group");
  return m;
}

/** A `forbidden` error. */
export function forbidden(message: string): ImError {
  return new ImError("forbidden", message);
}

const RANK: Record<GroupRole, number> = { member: 0, admin: 1, owner: 2 };

/** The caller's membership when they are an admin or the owner; `forbidden` otherwise. */
export function liveAdmin(state: GroupState, userId: unknown): GroupMember {
  const m = liveMember(state, userId);
  if (RANK[m.role] < RANK.admin) throw forbidden("Only admins and the owner may do this");
  return m;
}

/** The caller's membership when they are the owner; `forbidden` otherwise. */
export function liveOwner(state: GroupState, userId: unknown): GroupMember {
  const m = liveMember(state, userId);
  if (m.role !== "owner") throw forbidden("Only the owner may do this");
  return m;
}

/**
 * Throws `forbidden` unless `actor` may moderate (kick, mute) `target`: admins moderate members,
 * the owner moderates admins and members, nobody moderates the owner.
 */
export function checkOutranks(actor: GroupMember, target: GroupMember, what: string): void {
  if (RANK[actor.role] < RANK.admin) throw forbidden(`Only admins and the owner may ${what}`);
  if (RANK[actor.role] <= RANK[target.role]) {
    throw forbidden(`Cannot ${what} a member whose role is ${target.role}`);
  }
}

/** Throws `muted` when `member` may not send now (own mute not expired, or mute-all). */
export function checkCanSpeak(state: GroupState, member: GroupMember, now: number): void {
  if (member.mutedUntil !== undefined && member.mutedUntil > now) {
    throw new ImError("muted", `Muted in this group until ${member.mutedUntil}`);
  }
  if (state.muteAll && member.role === "member") {
    throw new ImError("muted", "Only admins and the owner may send while the group is muted");
  }
}

/** The public profile and settings of a group (`group.info` without the caller's fields). */
export function groupInfo(groupId: string, state: GroupState, maxMembers: number) {
  return {
    groupId,
    conv: groupConvId(groupId),
    name: state.name,
    description: state.description,
    avatar: state.avatar,
    announcement: state.announcement,
    owner: state.owner,
    createdAt: state.createdAt,
    memberCount: memberList(state).length,
    maxMembers,
    invitePolicy: state.invitePolicy,
    joinPolicy: state.joinPolicy,
    muteAll: state.muteAll,
  };
}

/** Clamps a page size into `[1, MAX_PAGE]`, {@link DEFAULT_PAGE} when absent. */
export function pageSize(limit: unknown): number {
  if (typeof limit !== "number" || !Number.isFinite(limit)) return DEFAULT_PAGE;
  return Math.min(MAX_PAGE, Math.max(1, Math.trunc(limit)));
}

/** The slice of sorted `ids` strictly after `after`, and whether more follow. */
function pageOf(ids: string[], after: unknown, limit: unknown): { ids: string[]; more: boolean } {
  let start = 0;
  if (typeof after === "string" && after !== "") {
    let lo = 0, hi = ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ids[mid] <= after) lo = mid + 1;
      else hi = mid;
    }
    start = lo;
  }
  const n = pageSize(limit);
  return { ids: ids.slice(start, start + n), more: start + n < ids.length };
}

/** One page of members sorted by user id (mutes shown only while they last). */
export function pageMembers(state: GroupState, after: unknown, limit: unknown, now: number) {
  const page = pageOf(sortedMemberIds(state), after, limit);
  return {
    members: page.ids.map((userId) => {
      const m = state.members[userId];
      return {
        userId,
        role: m.role,
        joinedAt: m.joinedAt,
        ...(m.mutedUntil !== undefined && m.mutedUntil > now ? { mutedUntil: m.mutedUntil } : {}),
      };
    }),
    more: page.more,
    count: memberList(state).length,
  };
}

/** One page of pending join requests sorted by user id. */
export function pageRequests(state: GroupState, after: unknown, limit: unknown) {
  const ids = Object.keys(state.requests).sort();
  const page = pageOf(ids, after, limit);
  return {
    requests: page.ids.map((userId) => ({ userId, ...state.requests[userId] })),
    more: page.more,
    count: ids.length,
  };
}

/**
 * Applies `mutate` to the state and snapshots it before returning. When the snapshot fails the
 * state is put back as it was, so memory never holds a change the store does not.
 */
export async function commitChange(
  ctx: GroupContext,
  mutate: (state: GroupState) => void,
): Promise<void> {
  const state = ctx.state;
  const before = structuredClone(state);
  mutate(state);
  membershipChanged(state);
  try {
    await ctx.snapshot();
  } catch (err) {
    const s = state as unknown as Record<string, unknown>;
    for (const k of Object.keys(s)) delete s[k];
    Object.assign(s, before);
    membershipChanged(state);
    throw err;
  }
}

/** The `ok` fields of a change that was announced: the system message's ids when stored. */
export interface AnnouncedOk {
  mid?: string;
  cseq?: number;
  ts?: number;
}

/**
 * Stores a system message `{type: "system", event, ...fields}` from `by` through the send
 * pipeline (so history shows it and `recipients` get it as a `msg`), and answers with `extra`
 * plus the message's `mid`/`cseq`/`ts` once it is stored.
 *
 * Call it after the change is committed and in the same turn, so the message takes its `cseq`
 * before any later send. The change itself stands even if the message cannot be stored: the
 * answer then lacks `mid`/`cseq`/`ts` and the failure is logged (a relocation is still an error).
 */
export function announce<T extends Record<string, unknown>>(
  ctx: GroupContext,
  by: string,
  recipients: string[],
  event: string,
  fields: Record<string, unknown>,
  extra: T = {} as T,
): Deferred<T & AnnouncedOk> {
  const svc = ctx.services;
  const sent = commitSend(
    ctx,
    {
      from: by,
      to: { group: ctx.key },
      cmid: svc.newId("sys."),
      body: { type: "system", event, ...fields },
    },
    groupConvId(ctx.key),
    recipients,
  );
  return ctx.defer(sent.deferred.then(
    (ok): T & AnnouncedOk => ({ ...extra, mid: ok.mid, cseq: ok.cseq, ts: ok.ts }),
    (err): T & AnnouncedOk => {
      const e = toImError(err);
      if (e.code === "moved" || e.code === "fenced") throw e;
      svc.logger.warn("group system message not stored", {
        actorId: ctx.id,
        event,
        code: e.code,
        error: e.message,
      });
      return { ...extra };
    },
  ));
}
