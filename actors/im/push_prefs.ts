/**
 * Offline push in the user actor: the decision whether a stored message becomes a push
 * notification for this user, and the preferences it respects (muted conversations,
 * do-not-disturb, quiet hours). `user.ts` spreads {@link pushHandlers}.
 *
 * A message is pushed to a recipient (through the node's {@link Notifier}) only when all hold:
 * the recipient is not its sender; no device of the recipient is connected anywhere in the
 * cluster (see `presence.ts`); the recipient does not block the sender; the conversation is not
 * muted (`push.mute` here, or the conversation list's `conv.mute` flag); do-not-disturb is off
 * and the recipient's local time is outside its quiet hours.
 * The notice never carries message text (see `push/notifier.ts`).
 *
 * @module
 */
import type { MessageMeta } from "../behavior.ts";
import { ImError, NotMemberError } from "../errors.ts";
import { conversationActor, directParticipants, groupActor } from "./conversation_ids.ts";
import type { PushNotice } from "../../push/notifier.ts";
import type { ConvListState } from "./conversations.ts";
import { connectedAnywhere } from "./presence.ts";
import {
  has,
  type PushPrefs,
  pushPrefsOf,
  type QuietHours,
  requireSelf,
  SOCIAL_LIMITS,
  socialOf,
  type UserCtx,
} from "./social_state.ts";

type Ctx = UserCtx;

const formatters = new Map<string, Intl.DateTimeFormat>();

/** A formatter of hours and minutes in `tz`; throws RangeError for an unknown zone. */
function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: tz,
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    });
    // Zones are validated before they are stored; the cache stays small.
    if (formatters.size < 1000) formatters.set(tz, f);
  }
  return f;
}

/** Whether `tz` names a time zone this runtime knows. */
export function isTimeZone(tz: string): boolean {
  try {
    formatter(tz);
    return true;
  } catch {
    return false;
  }
}

/** Minutes after local midnight in `tz` at `now`. */
export function localMinutes(now: number, tz: string): number {
  let h = 0, m = 0;
  for (const part of formatter(tz).formatToParts(now)) {
    if (part.type === "hour") h = Number(part.value) % 24;
    if (part.type === "minute") m = Number(part.value);
  }
  return h * 60 + m;
}

/** Whether `now` falls inside the daily window `q` (the end is exclusive; may wrap midnight). */
export function inQuietHours(q: QuietHours, now: number): boolean {
  const t = localMinutes(now, q.tz);
  return q.start < q.end ? t >= q.start && t < q.end : t >= q.start || t < q.end;
}

/** Whether conversation `conv` is muted at `now` (by `push.mute`, or by `conv.mute`). */
function isMuted(ctx: Ctx, prefs: PushPrefs, conv: string, now: number): boolean {
  if (has(prefs.muted, conv)) {
    const until = prefs.muted[conv];
    if (until === 0 || until > now) return true;
  }
  // The conversation list's mute flag (conversations.ts) silences the devices: pushes too.
  const list = (ctx.state.convs as ConvListState | undefined)?.list;
  return !!list && has(list, conv) && list[conv].muted === true;
}

/** The answer of every push settings request. */
function settingsOf(ctx: Ctx) {
  const prefs = pushPrefsOf(ctx.state);
  const now = ctx.services.now();
  return {
    dnd: prefs.dnd,
    quietHours: prefs.quiet,
    muted: Object.entries(prefs.muted)
      .filter(([, until]) => until === 0 || until > now)
      .map(([conv, until]) => ({ conv, until: until === 0 ? null : until }))
      .sort((a, b) => (a.conv < b.conv ? -1 : 1)),
  };
}

/** The message facts an offline push decision needs (what the node's `delivered` hook sends). */
export interface OfflineCandidate {
  mid: string;
  conv: string;
  cseq: number;
  from: string;
  ts: number;
  bodyType: string;
}

/** Handlers `user.ts` adds to the user actor. */
export const pushHandlers = {
  /** A message entered this user's inbox: push it when the user is offline and wants it. */
  "push.offline"(ctx: Ctx, body: OfflineCandidate) {
    const notifier = ctx.services.notifier;
    if (!notifier || typeof body?.conv !== "string" || body.from === ctx.key) return {};
    const now = ctx.services.now();
    const prefs = pushPrefsOf(ctx.state);
    const skip = connectedAnywhere(ctx) ||
      has(socialOf(ctx.state).blocked, body.from) ||
      isMuted(ctx, prefs, body.conv, now) ||
      prefs.dnd ||
      (prefs.quiet !== null && inQuietHours(prefs.quiet, now));
    if (skip) return { pushed: false };
    const notice: PushNotice = {
      userId: ctx.key,
      mid: body.mid,
      conv: body.conv,
      cseq: body.cseq,
      from: body.from,
      ts: body.ts,
      bodyType: body.bodyType,
    };
    return { pushed: notifier.notify(notice) };
  },

  /** Reads, and with `dnd` / `quietHours`, sets do-not-disturb. */
  async "push.settings"(ctx: Ctx, body: { dnd?: boolean; quietHours?: QuietHours | null }) {
    const prefs = pushPrefsOf(ctx.state);
    let changed = false;
    if (body?.dnd !== undefined) {
      prefs.dnd = body.dnd;
      changed = true;
    }
    if (body?.quietHours !== undefined) {
      prefs.quiet = body.quietHours;
      changed = true;
    }
    if (changed) await ctx.snapshot();
    return settingsOf(ctx);
  },

  /**
   * Mutes offline pushes of a conversation this user takes part in, until `until` (ms) or, with
   * null, until unmuted. Group membership is confirmed by the group actor.
   */
  "push.mute"(ctx: Ctx, body: { conv: string; until: number | null }) {
    const actor = conversationActor(body.conv);
    if (!actor) throw new NotMemberError();
    const prefs = pushPrefsOf(ctx.state);
    if (!has(prefs.muted, body.conv) && Object.keys(prefs.muted).length >= SOCIAL_LIMITS.mutes) {
      // Expired mutes make room first.
      const now = ctx.services.now();
      for (const [c, until] of Object.entries(prefs.muted)) {
        if (until !== 0 && until <= now) delete prefs.muted[c];
      }
      if (Object.keys(prefs.muted).length >= SOCIAL_LIMITS.mutes) {
        throw new ImError("limit_exceeded", `At most ${SOCIAL_LIMITS.mutes} muted conversations`);
      }
    }
    return ctx.defer((async () => {
      if (body.conv.startsWith("d:")) {
        if (!directParticipants(body.conv.slice(2)).includes(ctx.key)) throw new NotMemberError();
      } else {
        // `info` answers only members; an unknown group is as unknown as any other (no probing).
        await ctx.ask(groupActor(body.conv.slice(2)), "info", { user: ctx.key }).catch((err) => {
          throw err instanceof ImError && err.code === "not_found" ? new NotMemberError() : err;
        });
      }
      return await ctx.ask(ctx.id, "push.muteCommit", { conv: body.conv, until: body.until });
    })());
  },

  async "push.muteCommit"(
    ctx: Ctx,
    body: { conv: string; until: number | null },
    meta: MessageMeta,
  ) {
    requireSelf(ctx, meta);
    pushPrefsOf(ctx.state).muted[body.conv] = body.until ?? 0;
    await ctx.snapshot();
    return settingsOf(ctx);
  },

  /** Unmutes a conversation (`not_found` when it was not muted). */
  async "push.unmute"(ctx: Ctx, body: { conv: string }) {
    const prefs = pushPrefsOf(ctx.state);
    if (!has(prefs.muted, body.conv)) {
      throw new ImError("not_found", "This conversation is not muted");
    }
    delete prefs.muted[body.conv];
    await ctx.snapshot();
    return settingsOf(ctx);
  },
};
