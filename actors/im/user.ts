/**
 * The `user` actor kind: one per account, key = user id.
 *
 * It knows the user's devices and their cumulative ack cursors and serves the inbox (`sync`).
 * Inbox sequences are assigned by the store inside each message's commit (so they are gapless
 * even when several conversation actors on several nodes write to one inbox at once); this actor
 * reads them. Ack cursors only move forward; they are handed to the node's ack writer
 * (`ack_writer.ts`), which writes the cursors of every user actor of the node in one store call
 * per interval, fenced by each actor's epoch. So a crash may replay the acked messages of the
 * last interval to a device (at-least-once), never skip one; passivation waits until this
 * actor's cursors are written.
 *
 * @module
 */
import { defineBehavior } from "../behavior.ts";
import { BadRequestError } from "../errors.ts";
import { msgFrame } from "./messaging.ts";
import { conversationHandlers } from "./conversations.ts";
import type { ImServices } from "./services.ts";
import {
  FRESH_HANDOFF,
  presenceActivated,
  presenceConnected,
  presenceHandlers,
  presenceHandoff,
} from "./presence.ts";
import { pushHandlers } from "./push_prefs.ts";
import { socialHandlers } from "./social.ts";

export { ACK_FLUSH_MS } from "./ack_writer.ts";

/**
 * State of a user actor. Feature modules add their own optional sub-state fields (e.g.
 * `social`); everything except `devices` goes into the snapshot.
 */
export interface UserState {
  /** Ack cursor per device (stored in the acks table, not the snapshot). */
  devices: Record<string, number>;
  [feature: string]: unknown;
}

/** The behaviour of users. */
export const userBehavior = defineBehavior<UserState, ImServices>({
  kind: "user",
  initialState: () => ({ devices: {}, ...FRESH_HANDOFF }),
  // Cursors are stored in their own table (saveAcks); the snapshot holds the feature sub-states.
  encode: ({ devices: _d, ...features }) => features,
  decode: (raw) => {
    // `dirty` was a field of this state before the ack writer; a snapshot never held it.
    const { dirty: _x, ...features } = raw as Record<string, unknown> ?? {};
    return { ...features, devices: {} };
  },
  async onActivate(ctx) {
    for (const c of await ctx.services.store.loadAcks(ctx.key)) ctx.state.devices[c.device] = c.seq;
    presenceActivated(ctx);
  },
  async onPassivate(ctx) {
    presenceHandoff(ctx);
    // The next activation (maybe on another node) loads the cursors: they must be stored first.
    await ctx.services.acks.flushActor(ctx.id);
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
      ctx.services.acks.mark(ctx.id, ctx.epoch, ctx.key, device, seq);
      return { seq };
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
