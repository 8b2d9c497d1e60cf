/**
 * The core ops of PROTOCOL-CORE.md: `send`, `sync`, `history`, `group.create`, `ping`.
 * (`auth` and `ack` are connection rules and live in the session.)
 *
 * @module
 */
import { NotMemberError } from "../actors/errors.ts";
import {
  conversationActor,
  directActor,
  groupActor,
  userActor,
} from "../actors/im/conversation_ids.ts";
import type { OpRegistry } from "./op_registry.ts";
import { parseGroupCreate, parseHistory, parseSend, parseSync } from "./ops.ts";

/** Registers the core ops. */
export function registerCoreOps(ops: OpRegistry): void {
  ops.register("ping", () => ({}));

  ops.register("send", (ctx, frame) => {
    const req = parseSend(frame);
    const target = "user" in req.to
      ? directActor(ctx.userId, req.to.user)
      : groupActor(req.to.group);
    return ctx.ask(target, "send", { from: ctx.userId, ...req });
  }, { budget: "message" });

  ops.register("sync", async (ctx, frame) => {
    const req = parseSync(frame);
    const res = await ctx.ask(userActor(ctx.userId), "sync", req) as {
      frames: Record<string, unknown>[];
      seq: number;
      more: boolean;
    };
    for (const f of res.frames) ctx.push(f);
    return { seq: res.seq, more: res.more };
  });

  ops.register("history", (ctx, frame) => {
    const req = parseHistory(frame);
    const target = conversationActor(req.conv);
    if (!target) throw new NotMemberError();
    return ctx.ask(target, "history", { user: ctx.userId, before: req.before, limit: req.limit });
  });

  ops.register("group.create", (ctx, frame) => {
    const req = parseGroupCreate(frame, ctx.settings.groupMaxMembers);
    return ctx.ask(groupActor(ctx.newId("g_")), "create", { owner: ctx.userId, ...req });
  });
}
