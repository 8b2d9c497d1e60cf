/**
 * Ops of the message features (docs/protocol.md, "Message features"): reactions, recall, edit,
 * delete for me, read receipts, the conversation list, pin and mute.
 *
 * Every op names a conversation (`conv`); the request goes to the actor serving it, which
 * authorises the caller against its own state. The caller is always `ctx.userId` (from the
 * token), never a field of the frame; an unknown or malformed `conv` is `not_member`, like
 * `history`, so conversation ids cannot be probed.
 *
 * @module
 */
import { BadRequestError, NotMemberError } from "../actors/errors.ts";
import { conversationActor, userActor } from "../actors/im/conversation_ids.ts";
import { validateBody } from "../actors/im/message_types.ts";
import type { MessageRef } from "../db/store.ts";
import type { OpRegistry } from "./op_registry.ts";
import { type Frame, nonNegativeInt, positiveInt } from "./ops.ts";

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const MID = /^[A-Za-z0-9_.-]{1,64}$/;

/** The actor serving `frame.conv`; throws `not_member` for anything that names none. */
export function convTarget(frame: Frame): { conv: string; actor: string } {
  const conv = frame.conv;
  if (typeof conv !== "string" || conv.length > 200) {
    throw new BadRequestError(`"conv" must be a conversation id`);
  }
  const actor = conversationActor(conv);
  if (!actor) throw new NotMemberError();
  return { conv, actor };
}

/** A server message id field. */
export function parseMid(frame: Frame): string {
  const mid = frame.mid;
  if (typeof mid !== "string" || !MID.test(mid)) {
    throw new BadRequestError(`"mid" must be a message id`);
  }
  return mid;
}

/** A reaction: any short string without control characters (an emoji, or a custom code). */
export function parseEmoji(frame: Frame): string {
  const e = frame.emoji;
  if (typeof e !== "string" || e.length < 1 || e.length > 32 || CONTROL.test(e)) {
    throw new BadRequestError(`"emoji" must be 1-32 characters without control characters`);
  }
  return e;
}

/** A message named by `mid` or by `cseq`. */
export function parseRef(frame: Frame): MessageRef {
  if (frame.mid !== undefined) return { mid: parseMid(frame) };
  const cseq = positiveInt(frame.cseq);
  if (cseq === null) throw new BadRequestError(`Give "mid" or a positive "cseq"`);
  return { cseq };
}

function bool(frame: Frame, field: string): boolean {
  const v = frame[field];
  if (typeof v !== "boolean") throw new BadRequestError(`"${field}" must be a boolean`);
  return v;
}

/** Registers the message-feature ops. */
export function registerMessageOps(ops: OpRegistry): void {
  for (const [op, on] of [["msg.react", true], ["msg.unreact", false]] as const) {
    ops.register(op, (ctx, frame) => {
      const { actor } = convTarget(frame);
      return ctx.ask(actor, "react", {
        user: ctx.userId,
        mid: parseMid(frame),
        emoji: parseEmoji(frame),
        on,
      });
    }, { budget: "message" });
  }

  ops.register("msg.recall", (ctx, frame) => {
    const { actor } = convTarget(frame);
    return ctx.ask(actor, "recall", { user: ctx.userId, mid: parseMid(frame) });
  }, { budget: "message" });

  ops.register("msg.edit", (ctx, frame) => {
    const { actor } = convTarget(frame);
    const mid = parseMid(frame);
    return ctx.ask(actor, "edit", { user: ctx.userId, mid, body: validateBody(frame.body) });
  }, { budget: "message" });

  ops.register("msg.delete", (ctx, frame) => {
    const { actor } = convTarget(frame);
    return ctx.ask(actor, "hide", { user: ctx.userId, mid: parseMid(frame) });
  }, { budget: "message" });

  ops.register("read", (ctx, frame) => {
    const { actor } = convTarget(frame);
    const cseq = positiveInt(frame.cseq);
    if (cseq === null) throw new BadRequestError(`"cseq" must be a positive integer`);
    return ctx.ask(actor, "read", { user: ctx.userId, cseq });
  });

  ops.register("receipts", (ctx, frame) => {
    const { actor } = convTarget(frame);
    return ctx.ask(actor, "receipts", { user: ctx.userId, ref: parseRef(frame) });
  });

  ops.register("conversations", (ctx, frame) => {
    const offset = frame.offset === undefined ? 0 : nonNegativeInt(frame.offset);
    if (offset === null) throw new BadRequestError(`"offset" must be an integer >= 0`);
    let limit = 50;
    if (frame.limit !== undefined) {
      const n = typeof frame.limit === "bigint" ? Number(frame.limit) : frame.limit;
      if (typeof n !== "number" || !Number.isFinite(n)) {
        throw new BadRequestError(`"limit" must be an integer`);
      }
      limit = Math.min(200, Math.max(1, Math.trunc(n)));
    }
    return ctx.ask(userActor(ctx.userId), "conversations", { offset, limit });
  });

  for (const [op, field] of [["conv.pin", "pinned"], ["conv.mute", "muted"]] as const) {
    ops.register(op, async (ctx, frame) => {
      const { conv, actor } = convTarget(frame);
      const value = bool(frame, field);
      const { participant } = await ctx.ask(actor, "access", { user: ctx.userId }) as {
        participant: boolean;
      };
      if (!participant) throw new NotMemberError();
      return ctx.ask(userActor(ctx.userId), "convSettings", { conv, [field]: value });
    });
  }
}
