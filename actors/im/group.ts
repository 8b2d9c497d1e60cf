/**
 * The `group` actor kind: one per group, key = group id.
 *
 * It owns the membership (owner, members with roles), authorises every send and history read
 * against it, serialises the group's sends (one `cseq` order) and fans each stored message out
 * to every member's inbox. Membership changes are snapshotted before they are answered.
 *
 * @module
 */
import { defineBehavior } from "../behavior.ts";
import { BadRequestError, ImError, NotFoundError, NotMemberError } from "../errors.ts";
import { groupConvId } from "./conversation_ids.ts";
import { checkSendRequest, commitSend, historyPage } from "./messaging.ts";
import type { ImServices } from "./services.ts";

/** A member's role. */
export type GroupRole = "owner" | "admin" | "member";

/** State of a group actor (what its snapshot holds). */
export interface GroupState {
  /** False until `create` has been committed; an unknown group id stays false. */
  exists: boolean;
  name: string;
  owner: string;
  createdAt: number;
  /** Members by user id. */
  members: Record<string, { role: GroupRole; joinedAt: number }>;
}

/** What `create` receives from the gateway. */
export interface CreateGroupRequest {
  owner: string;
  name: string;
  members: string[];
}

const memberLists = new WeakMap<GroupState, string[]>();

/** Member ids, cached per state object and rebuilt after membership changes. */
function memberList(state: GroupState): string[] {
  let list = memberLists.get(state);
  if (!list) {
    list = Object.keys(state.members);
    memberLists.set(state, list);
  }
  return list;
}

/** The behaviour of groups. */
export const groupBehavior = defineBehavior<GroupState, ImServices>({
  kind: "group",
  initialState: () => ({ exists: false, name: "", owner: "", createdAt: 0, members: {} }),
  snapshot: "manual",
  handlers: {
    async create(ctx, body: CreateGroupRequest) {
      if (ctx.state.exists) throw new ImError("bad_request", "Group already exists");
      if (typeof body?.owner !== "string" || typeof body.name !== "string") {
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
      ctx.state = { exists: true, name: body.name, owner: body.owner, createdAt: now, members };
      try {
        await ctx.snapshot();
      } catch (err) {
        // Not committed: the group must not exist in memory either.
        ctx.state = groupBehavior.initialState(ctx.key);
        throw err;
      }
      return { groupId: ctx.key, conv: groupConvId(ctx.key) };
    },
    send(ctx, body) {
      const req = checkSendRequest(body);
      if (!ctx.state.exists) throw new NotFoundError("Unknown group");
      if (!ctx.state.members[req.from]) throw new NotMemberError();
      return commitSend(ctx, req, groupConvId(ctx.key), memberList(ctx.state));
    },
    history(ctx, body: { user: string; before: number | null; limit: number }) {
      if (!ctx.state.exists || !ctx.state.members[body.user]) throw new NotMemberError();
      return ctx.defer(historyPage(ctx.services, groupConvId(ctx.key), body.before, body.limit));
    },
    members(ctx, body: { user: string }) {
      if (!ctx.state.exists || !ctx.state.members[body.user]) throw new NotMemberError();
      return {
        owner: ctx.state.owner,
        members: Object.entries(ctx.state.members).map(([userId, m]) => ({ userId, ...m })),
      };
    },
  },
});
