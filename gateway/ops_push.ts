/**
 * Offline-push preference ops (docs/protocol.md, "Offline push"): do-not-disturb, quiet hours,
 * muted conversations. They change only the caller's own preferences, in its own user actor.
 *
 * @module
 */
import { BadRequestError, NotMemberError } from "../actors/errors.ts";
import { conversationActor, userActor } from "../actors/im/conversation_ids.ts";
import { isTimeZone } from "../actors/im/push_prefs.ts";
import type { QuietHours } from "../actors/im/social_state.ts";
import type { OpRegistry } from "./op_registry.ts";
import { type Frame, nonNegativeInt } from "./ops.ts";
import { textField } from "./social_fields.ts";

const HHMM = /^([01][0-9]|2[0-3]):([0-5][0-9])$/;

function minutes(v: unknown, field: string): number {
  const m = typeof v === "string" ? HHMM.exec(v) : null;
  if (!m) throw new BadRequestError(`"quietHours.${field}" must be "HH:MM" (00:00-23:59)`);
  return Number(m[1]) * 60 + Number(m[2]);
}

/** `quietHours`: absent → unchanged, null → none, else `{start, end, tz?}`. */
function quietHours(frame: Frame): QuietHours | null | undefined {
  const q = frame.quietHours;
  if (q === undefined) return undefined;
  if (q === null) return null;
  if (typeof q !== "object" || Array.isArray(q)) {
    throw new BadRequestError(`"quietHours" must be {"start", "end", "tz"?} or null`);
  }
  const { start, end, tz } = q as Record<string, unknown>;
  const window = { start: minutes(start, "start"), end: minutes(end, "end") };
  if (window.start === window.end) {
    throw new BadRequestError(`"quietHours.start" and "end" must differ`);
  }
  const zone = tz === undefined || tz === null ? "UTC" : tz;
  if (typeof zone !== "string" || zone.length > 64 || !isTimeZone(zone)) {
    throw new BadRequestError(`"quietHours.tz" must be an IANA time zone such as "Europe/Berlin"`);
  }
  return { ...window, tz: zone };
}

function conv(frame: Frame): string {
  const c = textField(frame, "conv", 200);
  // A malformed id names no conversation the caller is in (as for `history`).
  if (!conversationActor(c)) throw new NotMemberError();
  return c;
}

/** Registers the push preference ops. */
export function registerPushOps(ops: OpRegistry): void {
  ops.register("push.settings", (ctx, frame) => {
    const body: Record<string, unknown> = {};
    if (frame.dnd !== undefined) {
      if (typeof frame.dnd !== "boolean") throw new BadRequestError(`"dnd" must be a boolean`);
      body.dnd = frame.dnd;
    }
    const q = quietHours(frame);
    if (q !== undefined) body.quietHours = q;
    return ctx.ask(userActor(ctx.userId), "push.settings", body);
  });
  ops.register("push.mute", (ctx, frame) => {
    const c = conv(frame);
    let until: number | null = null;
    if (frame.until !== undefined && frame.until !== null) {
      until = nonNegativeInt(frame.until);
      if (until === null || until === 0) {
        throw new BadRequestError(`"until" must be a time in ms since the epoch, or null`);
      }
    }
    return ctx.ask(userActor(ctx.userId), "push.mute", { conv: c, until });
  });
  ops.register(
    "push.unmute",
    (ctx, frame) => ctx.ask(userActor(ctx.userId), "push.unmute", { conv: conv(frame) }),
  );
}
