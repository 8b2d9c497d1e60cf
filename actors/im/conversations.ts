/**
 * The conversation list inside the `user` actor: every conversation the user has messages in
 * (or pinned or muted), with its last message, unread count, read position, pin and mute.
 *
 * How it stays cheap: the send path does nothing for it. The list is discovered from the user's
 * own inbox, incrementally: the actor keeps a watermark (`scanned`, an inbox `seq`) in its
 * snapshotted sub-state `convs` and, on each `conversations` request, reads only the inbox
 * entries after it (grouped by conversation in the store), so each inbox entry is read once.
 * Read positions come from the read cursors the conversation actors write (`receipts.ts`);
 * last messages and unread counts are read for the requested page only.
 *
 * Guarantees:
 * - Pin and mute are per user and per conversation; a change is snapshotted before it is
 *   answered and pushed to every device of the user as `conv.updated`.
 * - The gateway checks that the user participates in a conversation before pinning or muting
 *   it (by asking the conversation actor), so the list never names a conversation the user
 *   could not read at that moment.
 *
 * @module
 */
import type { ActorContext, Handler } from "../behavior.ts";
import { BadRequestError } from "../errors.ts";
import { msgFrame } from "./messaging.ts";
import { UNREAD_CAP } from "./receipts.ts";
import type { ImServices } from "./services.ts";
import type { UserState } from "./user.ts";

/** Inbox entries read per store call while discovering conversations. */
export const SCAN_PAGE = 2_000;
/** Store calls per `conversations` request at most (the rest waits for the next request). */
export const MAX_SCAN_PAGES = 50;

/** One conversation of the list, as the user actor keeps it. */
export interface ConvEntry {
  /** Lowest and highest `cseq` of the conversation seen in the user's inbox (0: none yet). */
  first: number;
  last: number;
  /** Inbox `seq` of the latest message seen (orders the list). */
  lastSeq: number;
  /** When pinned (ms since the epoch), absent when not. */
  pinned?: number;
  muted?: boolean;
}

/** The `convs` sub-state of a user actor. */
export interface ConvListState {
  /** Inbox entries up to this `seq` have been read into `list`. */
  scanned: number;
  list: Record<string, ConvEntry>;
}

type Ctx = ActorContext<UserState, ImServices>;

/** The user's conversation-list sub-state (created on first use). */
export function convList(state: UserState): ConvListState {
  let s = state.convs as ConvListState | undefined;
  if (!s || typeof s !== "object" || typeof s.scanned !== "number" || !s.list) {
    s = { scanned: 0, list: {} };
    state.convs = s;
  }
  return s;
}

/** Reads new inbox entries into the list (inside the user actor's turn). */
async function discover(ctx: Ctx, s: ConvListState): Promise<void> {
  for (let i = 0; i < MAX_SCAN_PAGES; i++) {
    const scan = await ctx.services.store.scanInboxConversations(ctx.key, s.scanned, SCAN_PAGE);
    for (const c of scan.convs) {
      const e = s.list[c.conv];
      if (!e) {
        s.list[c.conv] = { first: c.firstCseq, last: c.lastCseq, lastSeq: c.lastSeq };
        continue;
      }
      if (e.first === 0 || c.firstCseq < e.first) e.first = c.firstCseq;
      e.last = Math.max(e.last, c.lastCseq);
      e.lastSeq = Math.max(e.lastSeq, c.lastSeq);
    }
    s.scanned = scan.lastSeq;
    if (scan.scanned < SCAN_PAGE) return;
  }
}

/** The other user of a direct conversation id seen by `me`, or the group id. */
function peerOf(conv: string, me: string): Record<string, string> {
  if (conv.startsWith("g:")) return { group: conv.slice(2) };
  const [, a, b] = conv.split(":");
  return { user: a === me ? b : a };
}

/**
 * The conversation-list handlers of the user actor; spread them into its `handlers`.
 *
 * - `conversations {offset, limit}` → `{convs: [...], total, more}`, pinned first (latest pin
 *   first), then by latest message.
 * - `convSettings {conv, pinned?, muted?}` → `{conv, pinned, muted}`.
 */
export const conversationHandlers: Record<string, Handler<UserState, ImServices>> = {
  async conversations(ctx: Ctx, body: { offset: number; limit: number }) {
    const s = convList(ctx.state);
    await discover(ctx, s);
    const all = Object.entries(s.list).sort(([ca, a], [cb, b]) =>
      (b.pinned ?? 0) - (a.pinned ?? 0) || b.lastSeq - a.lastSeq || (ca < cb ? -1 : 1)
    );
    const offset = body?.offset ?? 0;
    const limit = body?.limit ?? 50;
    // Copied: the list may change while the page is read after this turn.
    const page = all.slice(offset, offset + limit).map(([conv, e]) => ({ conv, ...e }));
    const user = ctx.key;
    const store = ctx.services.store;
    return ctx.defer((async () => {
      const convs = page.map((e) => e.conv);
      const [cursors, lasts] = await Promise.all([
        store.userReadCursors(user, convs),
        store.messagesAt(
          page.filter((e) => e.last > 0).map((e) => ({ conv: e.conv, cseq: e.last })),
        ),
      ]);
      const reads = page.map((e) => Math.max(cursors[e.conv] ?? 0, e.first - 1, 0));
      const unread = await store.unreadCounts(
        user,
        page.map((e, i) => ({ conv: e.conv, after: reads[i], upTo: e.last })),
        UNREAD_CAP,
      );
      const lastBy = new Map(lasts.map((m) => [m.conv, m]));
      return {
        convs: page.map((e) => {
          const last = lastBy.get(e.conv);
          return {
            conv: e.conv,
            ...peerOf(e.conv, user),
            last: last ? msgFrame(last) : null,
            unread: unread[e.conv] ?? 0,
            read: cursors[e.conv] ?? 0,
            pinned: e.pinned !== undefined,
            muted: e.muted === true,
          };
        }),
        total: all.length,
        more: offset + page.length < all.length,
      };
    })());
  },

  async convSettings(ctx: Ctx, body: { conv: string; pinned?: boolean; muted?: boolean }) {
    if (typeof body?.conv !== "string") throw new BadRequestError(`"conv" must be a string`);
    if (body.pinned === undefined && body.muted === undefined) {
      throw new BadRequestError(`Give "pinned" or "muted"`);
    }
    const s = convList(ctx.state);
    const before = s.list[body.conv];
    const entry: ConvEntry = before ? { ...before } : { first: 0, last: 0, lastSeq: 0 };
    const now = ctx.services.now();
    if (body.pinned === true && entry.pinned === undefined) entry.pinned = now;
    if (body.pinned === false) delete entry.pinned;
    if (body.muted === true) entry.muted = true;
    if (body.muted === false) delete entry.muted;
    s.list[body.conv] = entry;
    try {
      await ctx.snapshot();
    } catch (err) {
      // Not durable: not changed either.
      if (before) s.list[body.conv] = before;
      else delete s.list[body.conv];
      throw err;
    }
    const view = {
      conv: body.conv,
      pinned: entry.pinned !== undefined,
      muted: entry.muted === true,
    };
    ctx.services.deliver({ frame: { op: "conv.updated", ...view }, users: [ctx.key] });
    return view;
  },
};
