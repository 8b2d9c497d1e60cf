/**
 * Group administration ops (docs/protocol.md, "Group administration"): `group.info`,
 * `group.update`, `group.members`, `group.set_role`, `group.transfer`, `group.invite`,
 * `group.join`, `group.requests`, `group.approve`, `group.reject`, `group.leave`, `group.kick`,
 * `group.dissolve`, `group.mute`, `group.mute_all`.
 *
 * Each handler only validates the frame and asks the group actor; the actor authorises the
 * request against its own state. The acting user is always the connection's `ctx.userId`
 * (sent as `by`/`user`), so a frame cannot act for someone else.
 *
 * @module
 */
import { BadRequestError } from "../actors/errors.ts";
import { groupActor } from "../actors/im/conversation_ids.ts";
import type { OpContext, OpRegistry } from "./op_registry.ts";
import type { Frame } from "./ops.ts";
import { nonNegativeInt } from "./ops.ts";

/** User and group ids accepted in frames (the same shape the core ops accept). */
const ID = /^[A-Za-z0-9_.-]{1,64}$/;

/** Longest profile fields, in characters (code points). */
export const GROUP_FIELD_LIMITS = {
  name: [1, 100],
  description: [0, 1000],
  avatar: [0, 1024],
  announcement: [0, 4000],
} as const;

/** Longest join-request message, in characters. */
export const JOIN_MESSAGE_MAX = 500;

function id(frame: Frame, field: string): string {
  const v = frame[field];
  if (typeof v !== "string" || !ID.test(v)) throw new BadRequestError(`"${field}" must be an id`);
  return v;
}

function text(frame: Frame, field: string, min: number, max: number): string | undefined {
  const v = frame[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new BadRequestError(`"${field}" must be a string`);
  const len = [...v].length;
  if (len < min || len > max) {
    throw new BadRequestError(`"${field}" must be ${min}-${max} characters`);
  }
  return v;
}

function cursor(frame: Frame): string | null {
  const v = frame.after;
  if (v === undefined || v === null) return null;
  if (typeof v !== "string" || v.length > 64) throw new BadRequestError(`"after" must be an id`);
  return v;
}

function pageLimit(frame: Frame): number | null {
  const v = frame.limit;
  if (v === undefined || v === null) return null;
  const n = typeof v === "bigint" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isFinite(n)) {
    throw new BadRequestError(`"limit" must be an integer`);
  }
  return Math.trunc(n);
}

function oneOf<T extends string>(frame: Frame, field: string, values: readonly T[]): T | null {
  const v = frame[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== "string" || !(values as readonly string[]).includes(v)) {
    throw new BadRequestError(`"${field}" must be one of ${values.join(", ")}`);
  }
  return v as T;
}

/** Asks the group named by the frame's `group`, acting as the connection's user. */
function askGroup(ctx: OpContext, frame: Frame, type: string, body: Record<string, unknown>) {
  return ctx.ask(groupActor(id(frame, "group")), type, { ...body, by: ctx.userId });
}

/** Registers the group administration ops. */
export function registerGroupOps(ops: OpRegistry): void {
  ops.register("group.info", (ctx, frame) => {
    return ctx.ask(groupActor(id(frame, "group")), "info", { user: ctx.userId });
  });

  ops.register("group.members", (ctx, frame) => {
    return ctx.ask(groupActor(id(frame, "group")), "members", {
      user: ctx.userId,
      after: cursor(frame),
      limit: pageLimit(frame),
    });
  });

  ops.register("group.update", (ctx, frame) => {
    const body: Record<string, unknown> = {};
    for (const [field, [min, max]] of Object.entries(GROUP_FIELD_LIMITS)) {
      const v = text(frame, field, min, max);
      if (v !== undefined) body[field] = v;
    }
    const invitePolicy = oneOf(frame, "invitePolicy", ["anyone", "admins"] as const);
    if (invitePolicy) body.invitePolicy = invitePolicy;
    const joinPolicy = oneOf(frame, "joinPolicy", ["approval", "open", "closed"] as const);
    if (joinPolicy) body.joinPolicy = joinPolicy;
    if (Object.keys(body).length === 0) {
      throw new BadRequestError(
        "Give at least one of name, description, avatar, announcement, invitePolicy, joinPolicy",
      );
    }
    return askGroup(ctx, frame, "update", body);
  });

  ops.register("group.set_role", (ctx, frame) => {
    const role = oneOf(frame, "role", ["admin", "member"] as const);
    if (!role) throw new BadRequestError(`"role" must be one of admin, member`);
    return askGroup(ctx, frame, "setRole", { user: id(frame, "user"), role });
  });

  ops.register("group.transfer", (ctx, frame) => {
    return askGroup(ctx, frame, "transfer", { user: id(frame, "user") });
  });

  ops.register("group.invite", (ctx, frame) => {
    const users = frame.users;
    const max = ctx.settings.groupMaxMembers;
    if (!Array.isArray(users) || users.length === 0 || users.length > max) {
      throw new BadRequestError(`"users" must be an array of 1-${max} user ids`);
    }
    for (const u of users) {
      if (typeof u !== "string" || !ID.test(u)) {
        throw new BadRequestError(`"users" must hold user id strings`);
      }
    }
    return askGroup(ctx, frame, "invite", { users });
  });

  ops.register("group.join", (ctx, frame) => {
    const message = text(frame, "message", 0, JOIN_MESSAGE_MAX) ?? "";
    return askGroup(ctx, frame, "join", { message });
  });

  ops.register("group.requests", (ctx, frame) => {
    return askGroup(ctx, frame, "requests", { after: cursor(frame), limit: pageLimit(frame) });
  });

  ops.register("group.approve", (ctx, frame) => {
    return askGroup(ctx, frame, "approve", { user: id(frame, "user") });
  });

  ops.register("group.reject", (ctx, frame) => {
    return askGroup(ctx, frame, "reject", { user: id(frame, "user") });
  });

  ops.register("group.leave", (ctx, frame) => {
    return askGroup(ctx, frame, "leave", {});
  });

  ops.register("group.kick", (ctx, frame) => {
    return askGroup(ctx, frame, "kick", { user: id(frame, "user") });
  });

  ops.register("group.dissolve", (ctx, frame) => {
    return askGroup(ctx, frame, "dissolve", {});
  });

  ops.register("group.mute", (ctx, frame) => {
    const durationMs = nonNegativeInt(frame.durationMs);
    if (durationMs === null) throw new BadRequestError(`"durationMs" must be an integer >= 0`);
    return askGroup(ctx, frame, "mute", { user: id(frame, "user"), durationMs });
  });

  ops.register("group.mute_all", (ctx, frame) => {
    if (typeof frame.on !== "boolean") throw new BadRequestError(`"on" must be a boolean`);
    return askGroup(ctx, frame, "muteAll", { on: frame.on });
  });
}
