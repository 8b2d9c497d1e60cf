/**
 * Group administration: the handlers of the `group` actor that change its profile, settings,
 * roles and membership (docs/protocol.md, "Group administration").
 *
 * Guarantees:
 * - Every request is authorised against this actor's state; the acting user `by` is set by the
 *   gateway from the authenticated connection, never taken from a client frame.
 * - A change is snapshotted before it is answered; if the snapshot fails nothing changed.
 * - Every membership change (invite, join, leave, kick, role, transfer, mute, mute-all,
 *   dissolve) is then stored as a system message `{type: "system", event, ...}` from `by`,
 *   through the same send pipeline as user messages, in the same turn (so it takes its `cseq`
 *   before any later send). A joining member is a recipient of their own join message; a member
 *   who leaves or is kicked gets that message and nothing after it.
 * - The member limit (`limits.groupMaxMembers`) holds after every invite, join and approval.
 *
 * @module
 */
import type { Handler } from "../behavior.ts";
import { BadRequestError, ImError, NotFoundError } from "../errors.ts";
import type { GroupState, InvitePolicy, JoinPolicy } from "./group.ts";
import {
  announce,
  checkOutranks,
  commitChange,
  forbidden,
  type GroupContext,
  groupInfo,
  liveAdmin,
  liveGroup,
  liveMember,
  liveOwner,
  memberList,
  memberOf,
  pageRequests,
  requestOf,
} from "./group_rules.ts";
import type { ImServices } from "./services.ts";

/** Longest mute: one year. */
export const MAX_MUTE_MS = 366 * 24 * 3600 * 1000;

/** Longest join-request message, in UTF-16 code units (the gateway counts characters). */
export const MAX_JOIN_MESSAGE = 1000;

const INVITE_POLICIES: readonly InvitePolicy[] = ["anyone", "admins"];
const JOIN_POLICIES: readonly JoinPolicy[] = ["approval", "open", "closed"];
const PROFILE_FIELDS = ["name", "description", "avatar", "announcement"] as const;

// deno-lint-ignore no-explicit-any
type Body = any;

function str(body: Body, field: string): string {
  const v = body?.[field];
  if (typeof v !== "string" || v === "") throw new BadRequestError(`"${field}" must be a string`);
  return v;
}

/** The target `user` of a moderation request: a member other than the caller. */
function target(state: GroupState, by: string, user: string, what: string) {
  if (user === by) throw new BadRequestError(`Cannot ${what} yourself`);
  const m = memberOf(state, user);
  if (!m) throw new NotFoundError("No such member in this group");
  return m;
}

function checkRoom(ctx: GroupContext, adding: number): void {
  const max = ctx.services.limits.groupMaxMembers;
  if (memberList(ctx.state).length + adding > max) {
    throw new ImError("group_full", `The group is full (at most ${max} members)`);
  }
}

/** The administration handlers, merged into the group behaviour's handler map. */
export const groupAdminHandlers: Record<string, Handler<GroupState, ImServices>> = {
  /** Changes profile fields and policies (admins); pushes `group.updated` to every member. */
  async update(ctx: GroupContext, body: Body) {
    const by = str(body, "by");
    liveAdmin(ctx.state, by);
    const changes: Partial<GroupState> = {};
    for (const f of PROFILE_FIELDS) {
      if (body[f] === undefined || body[f] === null) continue;
      if (typeof body[f] !== "string") throw new BadRequestError(`"${f}" must be a string`);
      changes[f] = body[f];
    }
    if (changes.name === "") throw new BadRequestError(`"name" must not be empty`);
    if (body.invitePolicy !== undefined && body.invitePolicy !== null) {
      if (!INVITE_POLICIES.includes(body.invitePolicy)) {
        throw new BadRequestError(`"invitePolicy" must be one of ${INVITE_POLICIES.join(", ")}`);
      }
      changes.invitePolicy = body.invitePolicy;
    }
    if (body.joinPolicy !== undefined && body.joinPolicy !== null) {
      if (!JOIN_POLICIES.includes(body.joinPolicy)) {
        throw new BadRequestError(`"joinPolicy" must be one of ${JOIN_POLICIES.join(", ")}`);
      }
      changes.joinPolicy = body.joinPolicy;
    }
    const changed = Object.keys(changes);
    if (changed.length === 0) throw new BadRequestError("Nothing to update");
    await commitChange(ctx, (s) => Object.assign(s, changes));
    const info = groupInfo(ctx.key, ctx.state, ctx.services.limits.groupMaxMembers);
    ctx.services.deliver({
      frame: { op: "group.updated", ...info, by, changed },
      users: memberList(ctx.state),
    });
    return info;
  },

  /** Makes a member an admin or an admin a member (owner only). */
  async setRole(ctx: GroupContext, body: Body) {
    const by = str(body, "by");
    const user = str(body, "user");
    const role = body.role;
    if (role !== "admin" && role !== "member") {
      throw new BadRequestError(`"role" must be "admin" or "member"`);
    }
    liveOwner(ctx.state, by);
    const m = target(ctx.state, by, user, "change the role of");
    if (m.role === role) return { role };
    await commitChange(ctx, (s) => {
      s.members[user].role = role;
    });
    return announce(ctx, by, memberList(ctx.state), "member.role", { user, role }, { role });
  },

  /** Hands ownership to another member (owner only); the previous owner becomes an admin. */
  async transfer(ctx: GroupContext, body: Body) {
    const by = str(body, "by");
    const user = str(body, "user");
    liveOwner(ctx.state, by);
    target(ctx.state, by, user, "transfer ownership to");
    await commitChange(ctx, (s) => {
      s.members[by].role = "admin";
      s.members[user].role = "owner";
      s.owner = user;
    });
    return announce(ctx, by, memberList(ctx.state), "owner.transferred", {
      user,
      previous: by,
    });
  },

  /** Adds users directly (members when the policy is `anyone`, else admins). */
  async invite(ctx: GroupContext, body: Body) {
    const by = str(body, "by");
    const me = liveMember(ctx.state, by);
    if (ctx.state.invitePolicy === "admins" && me.role === "member") {
      throw forbidden("Only admins and the owner may invite to this group");
    }
    if (!Array.isArray(body.users) || body.users.some((u: unknown) => typeof u !== "string")) {
      throw new BadRequestError(`"users" must be an array of user ids`);
    }
    const fresh = [...new Set(body.users as string[])].filter((u) => !memberOf(ctx.state, u));
    if (fresh.length === 0) return { added: [] };
    checkRoom(ctx, fresh.length);
    const found = new Set(await ctx.services.store.existingUsers(fresh));
    const missing = fresh.find((id) => !found.has(id));
    if (missing !== undefined) throw new NotFoundError(`Unknown user "${missing}"`);
    const now = ctx.services.now();
    await commitChange(ctx, (s) => {
      for (const u of fresh) {
        s.members[u] = { role: "member", joinedAt: now };
        delete s.requests[u];
      }
    });
    return announce(ctx, by, memberList(ctx.state), "member.invited", { users: fresh }, {
      added: fresh,
    });
  },

  /**
   * A non-member asks to join: joins at once when the policy is `open`, files a request that an
   * admin approves when it is `approval` (pushing `group.join_request` to the admins), and is
   * refused when it is `closed`.
   */
  async join(ctx: GroupContext, body: Body) {
    const by = str(body, "by");
    const message = typeof body.message === "string" ? body.message : "";
    if (message.length > MAX_JOIN_MESSAGE) {
      throw new BadRequestError(`"message" must be at most ${MAX_JOIN_MESSAGE} characters`);
    }
    liveGroup(ctx.state);
    if (memberOf(ctx.state, by)) return { status: "joined" };
    const policy = ctx.state.joinPolicy;
    if (policy === "closed") throw forbidden("This group does not take join requests");
    const now = ctx.services.now();
    if (policy === "open") {
      checkRoom(ctx, 1);
      await commitChange(ctx, (s) => {
        s.members[by] = { role: "member", joinedAt: now };
        delete s.requests[by];
      });
      return announce(ctx, by, memberList(ctx.state), "member.joined", {
        user: by,
        via: "open",
      }, { status: "joined" });
    }
    if (requestOf(ctx.state, by)) return { status: "pending" };
    const max = ctx.services.limits.groupMaxMembers;
    if (Object.keys(ctx.state.requests).length >= max) {
      throw forbidden("Too many pending join requests; try again later");
    }
    await commitChange(ctx, (s) => {
      s.requests[by] = { message, ts: now };
    });
    const admins = memberList(ctx.state).filter((u) => ctx.state.members[u].role !== "member");
    ctx.services.deliver({
      frame: { op: "group.join_request", group: ctx.key, user: by, message, ts: now },
      users: admins,
    });
    return { status: "pending" };
  },

  /** One page of pending join requests (admins). */
  requests(ctx: GroupContext, body: Body) {
    liveAdmin(ctx.state, str(body, "by"));
    return pageRequests(ctx.state, body.after, body.limit);
  },

  /** Accepts a pending join request (admins); the new member gets the join message too. */
  async approve(ctx: GroupContext, body: Body) {
    const by = str(body, "by");
    const user = str(body, "user");
    liveAdmin(ctx.state, by);
    if (!requestOf(ctx.state, user)) throw new NotFoundError("No pending request from that user");
    checkRoom(ctx, 1);
    const now = ctx.services.now();
    await commitChange(ctx, (s) => {
      s.members[user] = { role: "member", joinedAt: now };
      delete s.requests[user];
    });
    return announce(ctx, by, memberList(ctx.state), "member.joined", {
      user,
      via: "approval",
    });
  },

  /** Refuses a pending join request (admins); pushes `group.join_rejected` to the requester. */
  async reject(ctx: GroupContext, body: Body) {
    const by = str(body, "by");
    const user = str(body, "user");
    liveAdmin(ctx.state, by);
    if (!requestOf(ctx.state, user)) throw new NotFoundError("No pending request from that user");
    await commitChange(ctx, (s) => {
      delete s.requests[user];
    });
    ctx.services.deliver({ frame: { op: "group.join_rejected", group: ctx.key }, users: [user] });
    return {};
  },

  /** The caller leaves; the owner must transfer ownership (or dissolve) first. */
  async leave(ctx: GroupContext, body: Body) {
    const by = str(body, "by");
    const me = liveMember(ctx.state, by);
    if (me.role === "owner") {
      throw forbidden("The owner must transfer ownership or dissolve the group before leaving");
    }
    await commitChange(ctx, (s) => {
      delete s.members[by];
    });
    return announce(ctx, by, [...memberList(ctx.state), by], "member.left", { user: by });
  },

  /** Removes a member: admins remove members, the owner removes admins and members. */
  async kick(ctx: GroupContext, body: Body) {
    const by = str(body, "by");
    const user = str(body, "user");
    const me = liveAdmin(ctx.state, by);
    checkOutranks(me, target(ctx.state, by, user, "remove"), "remove");
    await commitChange(ctx, (s) => {
      delete s.members[user];
    });
    return announce(ctx, by, [...memberList(ctx.state), user], "member.kicked", { user });
  },

  /**
   * Ends the group (owner only). Its last members keep reading its history; everything else,
   * sends included, answers `not_found` afterwards.
   */
  async dissolve(ctx: GroupContext, body: Body) {
    const by = str(body, "by");
    liveOwner(ctx.state, by);
    await commitChange(ctx, (s) => {
      s.dissolved = true;
      s.requests = {};
    });
    return announce(ctx, by, memberList(ctx.state), "group.dissolved", {});
  },

  /**
   * Mutes a member for `durationMs` (0 lifts the mute), with the same ranks as `kick`. A mute
   * is a timestamp checked on each send, so it ends by itself without a timer.
   */
  async mute(ctx: GroupContext, body: Body) {
    const by = str(body, "by");
    const user = str(body, "user");
    const duration = body.durationMs;
    if (!Number.isSafeInteger(duration) || duration < 0 || duration > MAX_MUTE_MS) {
      throw new BadRequestError(`"durationMs" must be an integer in 0..${MAX_MUTE_MS}`);
    }
    const me = liveAdmin(ctx.state, by);
    checkOutranks(me, target(ctx.state, by, user, "mute"), "mute");
    const until = duration === 0 ? 0 : ctx.services.now() + duration;
    await commitChange(ctx, (s) => {
      if (until === 0) delete s.members[user].mutedUntil;
      else s.members[user].mutedUntil = until;
    });
    if (until === 0) {
      return announce(ctx, by, memberList(ctx.state), "member.unmuted", { user }, {
        mutedUntil: 0,
      });
    }
    return announce(ctx, by, memberList(ctx.state), "member.muted", {
      user,
      until,
      durationMs: duration,
    }, { mutedUntil: until });
  },

  /** Turns mute-all on or off (admins): while on, only admins and the owner may send. */
  async muteAll(ctx: GroupContext, body: Body) {
    const by = str(body, "by");
    const on = body.on;
    if (typeof on !== "boolean") throw new BadRequestError(`"on" must be a boolean`);
    liveAdmin(ctx.state, by);
    if (ctx.state.muteAll === on) return { muteAll: on };
    await commitChange(ctx, (s) => {
      s.muteAll = on;
    });
    return announce(ctx, by, memberList(ctx.state), "group.muted_all", { on }, { muteAll: on });
  },
};
