/**
 * Presence and typing ops (docs/protocol.md, "Presence and typing").
 *
 * `presence.*` ask the caller's own user actor, which authorises every id (friend, or member of
 * the named group) with the watched users' actors and the group actor. `typing` goes to the
 * conversation: the direct actor (which refuses like a send would) or, for a group, the
 * caller's actor, which reads the membership from the group actor.
 *
 * @module
 */
import { BadRequestError } from "../actors/errors.ts";
import { directActor, userActor } from "../actors/im/conversation_ids.ts";
import { PRESENCE_LIMITS } from "../actors/im/presence.ts";
import type { OpRegistry } from "./op_registry.ts";
import type { Frame } from "./ops.ts";
import { boolField, idField, idList, isIdShape } from "./social_fields.ts";

function group(frame: Frame): string | null {
  return frame.group === undefined || frame.group === null ? null : idField(frame, "group");
}

/** Registers the presence and typing ops. */
export function registerPresenceOps(ops: OpRegistry): void {
  ops.register(
    "presence.subscribe",
    (ctx, frame) =>
      ctx.ask(userActor(ctx.userId), "presence.subscribe", {
        userIds: idList(frame, "userIds", PRESENCE_LIMITS.perRequest),
        group: group(frame),
        watch: true,
      }),
  );
  ops.register(
    "presence.get",
    (ctx, frame) =>
      ctx.ask(userActor(ctx.userId), "presence.subscribe", {
        userIds: idList(frame, "userIds", PRESENCE_LIMITS.perRequest),
        group: group(frame),
        watch: false,
      }),
  );
  ops.register(
    "presence.unsubscribe",
    (ctx, frame) =>
      ctx.ask(userActor(ctx.userId), "presence.unsubscribe", {
        userIds: idList(frame, "userIds", PRESENCE_LIMITS.subs),
      }),
  );

  ops.register("typing", (ctx, frame) => {
    const to = frame.to as Record<string, unknown> | undefined;
    const active = boolField(frame, "active", true);
    if (to && typeof to === "object" && !Array.isArray(to) && Object.keys(to).length === 1) {
      if (isIdShape(to.user)) {
        return ctx.ask(directActor(ctx.userId, to.user), "typing", { from: ctx.userId, active });
      }
      if (isIdShape(to.group)) {
        return ctx.ask(userActor(ctx.userId), "typing.group", { groupId: to.group, active });
      }
    }
    throw new BadRequestError(`"to" must be {"user": id} or {"group": id}`);
  }, { budget: "presence" });
}
