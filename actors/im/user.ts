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
import type { UserCtx } from "./social_state.ts";
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
  /**
   * Ack cursor per device (stored in the acks table, not the snapshot). Loaded on first need
   * (an ack, a `devices` query), not on activation: most activations (a connect, an offline
   * push decision) never need them. Absent until loaded.
   */
  devices?: Record<string, number>;
  [feature: string]: unknown;
}

/** The ack cursors of this user, loaded from the store on first use in this activation. */
async function cursorsOf(ctx: UserCtx): Promise<Record<string, number>> {
  if (ctx.state.devices) return ctx.state.devices;
  const loaded: Record<string, number> = {};
  for (const c of await ctx.services.store.loadAcks(ctx.key)) loaded[c.device] = c.seq;
  // Turns run one at a time: nothing else loaded them meanwhile.
  ctx.state.devices = loaded;
  return loaded;
}

/** Records an ack in loaded cursors; the cursor after the call. */
function applyAck(
  ctx: UserCtx,
  cursors: Record<string, number>,
  device: string,
  seq: number,
): { seq: number } {
  const current = cursors[device];
  if (current !== undefined && seq <= current) return { seq: current };
  cursors[device] = seq;
  ctx.services.acks.mark(ctx.id, ctx.epoch, ctx.key, device, seq);
  return { seq };
}

/** The behaviour of users. */
export const userBehavior = defineBehavior<UserState, ImServices>({
  kind: "user",
  initialState: () => ({ ...FRESH_HANDOFF }),
  // Cursors are stored in their own table (saveAcks); the snapshot holds the feature sub-states.
  encode: ({ devices: _d, ...features }) => features,
  decode: (raw) => {
    // Neither was ever in a snapshot; `dirty` was a field of this state before the ack writer.
    const { devices: _d, dirty: _x, ...features } = raw as Record<string, unknown> ?? {};
    return features;
  },
  onActivate(ctx) {
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
    /** A device connected (counted in presence); answers the latest inbox seq. */
    async connect(ctx, body: { device: string; conn?: string }) {
      if (typeof body?.device !== "string") throw new BadRequestError("Missing device");
      presenceConnected(ctx, body);
      return { seq: await ctx.services.store.latestSeq(ctx.key) };
    },
    /** A device holds every inbox message up to `seq`; answers the cursor after the call. */
    ack(ctx, body: { device: string; seq: number }) {
      const { device, seq } = body;
      if (typeof device !== "string" || !Number.isSafeInteger(seq) || seq < 0) {
        throw new BadRequestError("Malformed ack");
      }
      const cursors = ctx.state.devices;
      if (cursors) return applyAck(ctx, cursors, device, seq);
      // The first ack of this activation loads the cursors, within the turn (acks stay ordered).
      return cursorsOf(ctx).then((c) => applyAck(ctx, c, device, seq));
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
    /** The devices that have a cursor, and their cursors (admin, tests). */
    async devices(ctx) {
      return { ...await cursorsOf(ctx) };
    },
  },
});
