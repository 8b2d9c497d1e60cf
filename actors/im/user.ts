/**
 * The `user` actor kind: one per account, key = user id.
 *
 * It knows the user's devices and their cumulative ack cursors and serves the inbox (`sync`).
 * Inbox sequences are assigned by the store inside each message's commit (so they are gapless
 * even when several conversation actors on several nodes write to one inbox at once); this actor
 * reads them. Ack cursors only move forward; they are written in the background (at most one
 * write per device per flush interval), so a crash may replay a few acked messages to a device
 * (at-least-once), never skip one.
 *
 * @module
 */
import { defineBehavior } from "../behavior.ts";
import { BadRequestError } from "../errors.ts";
import { msgFrame } from "./messaging.ts";
import { conversationHandlers } from "./conversations.ts";
import type { ImServices } from "./services.ts";
import { presenceActivated, presenceConnected, presenceHandlers } from "./presence.ts";
import { pushHandlers } from "./push_prefs.ts";
import { socialHandlers } from "./social.ts";

/** How often dirty ack cursors are written, ms. */
export const ACK_FLUSH_MS = 500;

/**
 * State of a user actor. Feature modules add their own optional sub-state fields (e.g.
 * `social`); everything except `devices` and `dirty` goes into the snapshot.
 */
export interface UserState {
  /** Ack cursor per device (stored in the acks table, not the snapshot). */
  devices: Record<string, number>;
  /** Devices whose cursor moved since the last flush. */
  dirty: string[];
  [feature: string]: unknown;
}

/** The behaviour of users. */
export const userBehavior = defineBehavior<UserState, ImServices>({
  kind: "user",
  initialState: () => ({ devices: {}, dirty: [] }),
  // Cursors are stored in their own table (saveAck); the snapshot holds the feature sub-states.
  encode: ({ devices: _d, dirty: _x, ...features }) => features,
  decode: (raw) => ({ ...(raw as Record<string, unknown> ?? {}), devices: {}, dirty: [] }),
  async onActivate(ctx) {
    for (const c of await ctx.services.store.loadAcks(ctx.key)) ctx.state.devices[c.device] = c.seq;
    presenceActivated(ctx);
  },
  async onPassivate(ctx) {
    await flush(ctx.services, ctx.id, ctx.epoch, ctx.key, ctx.state);
  },
  handlers: {
    ...socialHandlers,
    ...presenceHandlers,
    ...pushHandlers,
    ...conversationHandlers,
    /** A device connected: registers it and answers the latest inbox seq. */
    async connect(ctx, body: { device: string; conn?: string }) {
      if (typeof body?.device !== "string") throw new BadRequestError("Missing device");
      if (!(body.device in ctx.state.devices)) ctx.state.devices[body.device] = 0;
      presenceConnected(ctx, body);
      return { seq: await ctx.services.store.latestSeq(ctx.key) };
    },
    /** A device holds every inbox message up to `seq`. */
    ack(ctx, body: { device: string; seq: number }) {
      const { device, seq } = body;
      if (typeof device !== "string" || !Number.isSafeInteger(seq) || seq < 0) {
        throw new BadRequestError("Malformed ack");
      }
      if (seq <= (ctx.state.devices[device] ?? 0)) return { seq: ctx.state.devices[device] };
      ctx.state.devices[device] = seq;
      if (!ctx.state.dirty.includes(device)) ctx.state.dirty.push(device);
      ctx.setTimer("flush", ACK_FLUSH_MS, "flushAcks");
      return { seq };
    },
    async flushAcks(ctx) {
      try {
        await flush(ctx.services, ctx.id, ctx.epoch, ctx.key, ctx.state);
      } catch (err) {
        // Try again later (e.g. the store is briefly down); cursors stay dirty meanwhile.
        ctx.setTimer("flush", ACK_FLUSH_MS * 4, "flushAcks");
        throw err;
      }
    },
    /** Inbox entries after `after` (msg frames with `seq`), the latest seq and `more`. */
    sync(ctx, body: { after: number; limit: number }) {
      const svc = ctx.services;
      const user = ctx.key;
      return ctx.defer((async () => {
        const [rows, latest] = await Promise.all([
          svc.store.readInbox(user, body.after, body.limit + 1),
          svc.store.latestSeq(user),
        ]);
        const more = rows.length > body.limit;
        const page = more ? rows.slice(0, body.limit) : rows;
        const frames = page.map((e) => ({ ...msgFrame(e.message), seq: e.seq }));
        return { frames, seq: Math.max(latest, page.at(-1)?.seq ?? 0), more };
      })());
    },
    /** The devices and their cursors (admin, tests). */
    devices(ctx) {
      return { ...ctx.state.devices };
    },
  },
});

async function flush(
  svc: ImServices,
  id: string,
  epoch: number,
  user: string,
  state: UserState,
): Promise<void> {
  const dirty = state.dirty;
  state.dirty = [];
  for (let i = 0; i < dirty.length; i++) {
    try {
      await svc.store.saveAck(id, epoch, user, dirty[i], state.devices[dirty[i]]);
    } catch (err) {
      // Keep the unwritten cursors for the next flush; the error still reaches the caller.
      for (const d of dirty.slice(i)) if (!state.dirty.includes(d)) state.dirty.push(d);
      throw err;
    }
  }
}
