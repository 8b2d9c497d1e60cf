/**
 * Read receipts inside the conversation actors: each participant's cumulative read position
 * (`cseq`) in the conversation, and who has read a given message.
 *
 * Guarantees:
 * - A read cursor only moves forward and never past the conversation's latest `cseq`; it is
 *   written (fenced by the actor's epoch) before the answer.
 * - When it moves, every participant gets an ephemeral `read` frame `{conv, user, cseq, ts}`
 *   (only the reader's devices in conversations of more than {@link READ_FANOUT_LIMIT}
 *   participants), and the reader's own devices also get `conv.updated` with the new `read`
 *   and `unread` (so every device's conversation list stays in step).
 * - A repeated `read` at or below the cursor this activation already wrote costs no store
 *   write and sends no frame.
 * - `receipts` counts only current participants other than the message's sender.
 *
 * @module
 */
import type { Handler } from "../behavior.ts";
import { BadRequestError, NotFoundError, NotMemberError } from "../errors.ts";
import type { MessageRef } from "../../db/store.ts";
import type { ConvAccess } from "./conv_access.ts";
import type { ImServices } from "./services.ts";

/** Unread counts stop at this number (clients show "999+"). */
export const UNREAD_CAP = 999;

/**
 * Conversations with more participants than this push `read` frames only to the reader's own
 * devices: in a big group every read would otherwise fan out to every member (the `receipts`
 * query answers "read by N and who" there).
 */
export const READ_FANOUT_LIMIT = 200;

/** Read cursors this activation has written, per state object (a lower bound of the store's). */
const written = new WeakMap<object, Map<string, number>>();

function cache(state: object): Map<string, number> {
  let m = written.get(state);
  if (!m) written.set(state, m = new Map());
  return m;
}

/**
 * The read-receipt handlers of a conversation actor kind; spread them into its `handlers`.
 *
 * - `read {user, cseq}` → `{cseq, unread}` (the cursor after the call).
 * - `receipts {user, mid | cseq}` → `{mid, cseq, count, readers: [{user, ts}], of}`.
 */
export function receiptHandlers<S extends object>(
  access: ConvAccess<S>,
): Record<string, Handler<S, ImServices>> {
  return {
    async read(ctx, body: { user: string; cseq: number }) {
      const user = body?.user;
      if (typeof user !== "string" || !access.isParticipant(ctx.state, user)) {
        throw new NotMemberError();
      }
      if (!Number.isSafeInteger(body.cseq) || body.cseq < 1) {
        throw new BadRequestError(`"cseq" must be a positive integer`);
      }
      const svc = ctx.services;
      const conv = access.conv(ctx);
      const known = cache(ctx.state);
      const seen = known.get(user) ?? 0;
      if (body.cseq <= seen) {
        const latest = await svc.store.latestCseq(conv);
        const unread = await svc.store.unreadCounts(
          user,
          [{ conv, after: seen, upTo: latest }],
          UNREAD_CAP,
        );
        return { cseq: seen, unread: unread[conv] ?? 0 };
      }
      const latest = await svc.store.latestCseq(conv);
      const want = Math.min(body.cseq, latest);
      const ts = svc.now();
      const cseq = want < 1 ? 0 : await svc.store.saveReadCursor(
        ctx.id,
        ctx.epoch,
        conv,
        user,
        want,
        ts,
      );
      const unread = (await svc.store.unreadCounts(
        user,
        [{ conv, after: cseq, upTo: latest }],
        UNREAD_CAP,
      ))[conv] ?? 0;
      if (cseq > seen) {
        known.set(user, cseq);
        const everyone = access.participants(ctx.state);
        svc.deliver({
          frame: { op: "read", conv, user, cseq, ts },
          users: everyone.length <= READ_FANOUT_LIMIT ? everyone : [user],
        });
        svc.deliver({ frame: { op: "conv.updated", conv, read: cseq, unread }, users: [user] });
      }
      return { cseq, unread };
    },

    async receipts(ctx, body: { user: string; ref: MessageRef }) {
      const user = body?.user;
      if (typeof user !== "string" || !access.isParticipant(ctx.state, user)) {
        throw new NotMemberError();
      }
      const conv = access.conv(ctx);
      const svc = ctx.services;
      const [message, cursors] = await Promise.all([
        svc.store.getMessage(conv, body.ref),
        svc.store.readCursors(conv),
      ]);
      if (!message) throw new NotFoundError("Unknown message");
      const readers = cursors
        .filter((c) =>
          c.cseq >= message.cseq && c.userId !== message.from &&
          access.isParticipant(ctx.state, c.userId)
        )
        .map((c) => ({ user: c.userId, ts: c.ts }));
      const others = access.participants(ctx.state).filter((u) => u !== message.from).length;
      return { mid: message.mid, cseq: message.cseq, count: readers.length, readers, of: others };
    },
  };
}
