/**
 * The `group` actor kind: one per group, key = group id.
 *
 * It owns the membership (owner, admins, members), the group's profile and settings, and
 * authorises every send, history read and administration request against that state; it
 * serialises the group's sends (one `cseq` order) and fans each stored message out to every
 * member's inbox. Every state change is snapshotted before it is answered, and every membership
 * change is also stored as a system message in the conversation (see `group_admin.ts`).
 *
 * @module
 */
import { defineBehavior } from "../behavior.ts";
import { BadRequestError, ImError, NotFoundError, NotMemberError } from "../errors.ts";
import { groupConvId } from "./conversation_ids.ts";
import { checkSendRequest, historyPage } from "./messaging.ts";
import type { ImServices } from "./services.ts";
import { groupAdminHandlers } from "./group_admin.ts";
import { groupAccess } from "./conv_access.ts";
import { messageActionHandlers, sendChecked } from "./message_actions.ts";
import { receiptHandlers } from "./receipts.ts";
import {
  announce,
  checkCanSpeak,
  groupInfo,
  liveMember,
  memberList,
  pageMembers,
} from "./group_rules.ts";

/** A member's role: one owner; admins moderate members; the owner moderates everyone. */
export type GroupRole = "owner" | "admin" | "member";

/** Who may invite: any member, or only admins and the owner. */
export type InvitePolicy = "anyone" | "admins";

/** How non-members get in: by request that an admin approves, directly, or not at all. */
export type JoinPolicy = "approval" | "open" | "closed";

/** One member. */
export interface GroupMember {
  role: GroupRole;
  joinedAt: number;
  /** Sends are refused with `muted` while `now < mutedUntil` (absent when not muted). */
  mutedUntil?: number;
}

/** A pending join request. */
export interface JoinRequest {
  /** What the requester wrote (may be empty). */
  message: string;
  ts: number;
}

/** State of a group actor (what its snapshot holds). */
export interface GroupState {
  /** False until `create` has been committed; an unknown group id stays false. */
  exists: boolean;
  /** True once the owner dissolved the group: only history stays readable (by its last members). */
  dissolved: boolean;
  name: string;
  description: string;
  /** An avatar reference (URL or media id), opaque to the server. */
  avatar: string;
  announcement: string;
  owner: string;
  createdAt: number;
  /** Members by user id. */
  members: Record<string, GroupMember>;
  invitePolicy: InvitePolicy;
  joinPolicy: JoinPolicy;
  /** While true only admins and the owner may send. */
  muteAll: boolean;
  /** Pending join requests by user id. */
  requests: Record<string, JoinRequest>;
}

/** What `create` receives from the gateway. */
export interface CreateGroupRequest {
  owner: string;
  name: string;
  members: string[];
  /**
   * Also store a `group.created` system message. Off by default: PROTOCOL-CORE clients expect
   * a new group's first message to have `cseq` 1 and to be the first thing in its inboxes.
   */
  announce?: boolean;
}

function initialGroupState(): GroupState {
  return {
    exists: false,
    dissolved: false,
    name: "",
    description: "",
    avatar: "",
    announcement: "",
    owner: "",
    createdAt: 0,
    members: {},
    invitePolicy: "anyone",
    joinPolicy: "approval",
    muteAll: false,
    requests: {},
  };
}

/** The behaviour of groups. */
export const groupBehavior = defineBehavior<GroupState, ImServices>({
  kind: "group",
  initialState: initialGroupState,
  // Snapshots written before group administration existed lack its fields: fill the defaults.
  decode: (raw) => ({ ...initialGroupState(), ...(raw as Partial<GroupState>) }),
  snapshot: "manual",
  handlers: {
    async create(ctx, body: CreateGroupRequest) {
      if (ctx.state.exists) throw new ImError("bad_request", "Group already exists");
      if (
        typeof body?.owner !== "string" || typeof body.name !== "string" ||
        !Array.isArray(body.members)
      ) {
        throw new BadRequestError("Cannot create group: malformed request");
      }
      const ids = [...new Set([body.owner, ...body.members])];
      if (ids.length > ctx.services.limits.groupMaxMembers) {
        throw new BadRequestError(
          `Cannot create group: more than ${ctx.services.limits.groupMaxMembers} members`,
        );
      }
      const found = new Set(await ctx.services.store.existingUsers(ids));
      const missing = ids.filter((id) => !found.has(id));
      if (missing.length) throw new NotFoundError(`Unknown user "${missing[0]}"`);
      const now = ctx.services.now();
      const members: GroupState["members"] = {};
      for (const id of ids) {
        members[id] = { role: id === body.owner ? "owner" : "member", joinedAt: now };
      }
      ctx.state = {
        ...initialGroupState(),
        exists: true,
        name: body.name,
        owner: body.owner,
        createdAt: now,
        members,
      };
      try {
        await ctx.snapshot();
      } catch (err) {
        // Not committed: the group must not exist in memory either.
        ctx.state = initialGroupState();
        throw err;
      }
      const ok = { groupId: ctx.key, conv: groupConvId(ctx.key) };
      if (body.announce !== true) return ok;
      return announce(ctx, body.owner, memberList(ctx.state), "group.created", {
        name: body.name,
        memberCount: ids.length,
      }, ok);
    },
    send(ctx, body) {
      const req = checkSendRequest(body);
      if (!ctx.state.exists || ctx.state.dissolved) throw new NotFoundError("Unknown group");
      const member = ctx.state.members[req.from];
      if (!member) throw new NotMemberError();
      // System messages are written by the group itself; a client must not forge one.
      if (req.body.type === "system") {
        throw new BadRequestError(`"body.type" "system" is reserved for the server`);
      }
      checkCanSpeak(ctx.state, member, ctx.services.now());
      return sendChecked(ctx, req, groupAccess, memberList(ctx.state));
    },
    history(ctx, body: { user: string; before: number | null; limit: number }) {
      // A dissolved group keeps its last members, who may still read what was said.
      if (!ctx.state.exists || !ctx.state.members[body.user]) throw new NotMemberError();
      return ctx.defer(
        historyPage(ctx.services, groupConvId(ctx.key), body.before, body.limit, body.user),
      );
    },
    /** One page of members sorted by user id: `{owner, members, more, count}`. */
    members(ctx, body: { user: string; after?: string | null; limit?: number }) {
      liveMember(ctx.state, body?.user);
      return {
        owner: ctx.state.owner,
        ...pageMembers(ctx.state, body.after, body.limit, ctx.services.now()),
      };
    },
    /** The group's profile and settings, and the caller's own role and mute. */
    info(ctx, body: { user: string }) {
      const member = liveMember(ctx.state, body?.user);
      return {
        ...groupInfo(ctx.key, ctx.state, ctx.services.limits.groupMaxMembers),
        role: member.role,
        ...(member.mutedUntil && member.mutedUntil > ctx.services.now()
          ? { mutedUntil: member.mutedUntil }
          : {}),
      };
    },
    ...groupAdminHandlers,
    ...messageActionHandlers(groupAccess),
    ...receiptHandlers(groupAccess),
  },
});
