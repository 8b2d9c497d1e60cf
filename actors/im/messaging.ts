/**
 * The send pipeline shared by the conversation actors (`direct`, `group`).
 *
 * Guarantees (ARCHITECTURE.md, "Delivery guarantees"):
 * - The reply comes only after the group commit has stored the message (commit, not memory).
 * - `(from, cmid)` is stored once: a retry while the first is in flight shares its promise; a
 *   retry later is answered from the store's de-duplication with the original `mid`/`cseq`.
 * - Sends are pipelined: the turn ends once the request is queued for commit, so one hot
 *   conversation fills a commit batch; the commit keeps FIFO order, so `cseq` follows arrival.
 * - After the commit, one delivery carries the frame to every recipient's devices, then the
 *   `stored` hook event fires. A delivery is a hint: clients repair gaps with `sync`.
 *
 * @module
 */
import type { ActorContext } from "../behavior.ts";
import { BadRequestError, FencedError } from "../errors.ts";
import type { Recipient, StoredMessage } from "../../db/store.ts";
import type { ImServices } from "./services.ts";

/** What a conversation actor's `send` handler receives from the gateway. */
export interface SendRequest {
  from: string;
  to: Recipient;
  cmid: string;
  body: Record<string, unknown>;
}

/** The `ok` fields of a send. */
export interface SendOk {
  mid: string;
  conv: string;
  cseq: number;
  ts: number;
}

/** The `msg` frame fields of a stored message, without the per-user `seq`. */
export function msgFrame(m: StoredMessage): Record<string, unknown> {
  return {
    op: "msg",
    mid: m.mid,
    conv: m.conv,
    cseq: m.cseq,
    from: m.from,
    to: m.to,
    ts: m.ts,
    body: m.body,
  };
}

function okOf(m: StoredMessage): SendOk {
  return { mid: m.mid, conv: m.conv, cseq: m.cseq, ts: m.ts };
}

const inFlight = new WeakMap<object, Map<string, Promise<SendOk>>>();

/** Checks the shape of a send request coming from another node (the gateway validated it). */
export function checkSendRequest(body: unknown): SendRequest {
  const b = body as Partial<SendRequest> | null;
  if (
    !b || typeof b.from !== "string" || typeof b.cmid !== "string" || !b.to ||
    typeof b.body !== "object" || b.body === null
  ) {
    throw new BadRequestError("Cannot send: malformed request");
  }
  return b as SendRequest;
}

/**
 * Queues `req` for commit in conversation `conv` with `recipients` (sender included) and
 * returns the deferred reply.
 */
export function commitSend<S extends object>(
  ctx: ActorContext<S, ImServices>,
  req: SendRequest,
  conv: string,
  recipients: string[],
  /**
   * Runs after the commit (stored or duplicate) and before the delivery and the reply, e.g. to
   * record the media a message carries; its failure fails the send (a retry runs it again).
   */
  afterStore?: (message: StoredMessage) => Promise<void>,
) {
  let pending = inFlight.get(ctx.state);
  if (!pending) {
    pending = new Map();
    inFlight.set(ctx.state, pending);
  }
  const key = `${req.from}\u0000${req.cmid}`;
  const existing = pending.get(key);
  if (existing) return ctx.defer(existing);

  const svc = ctx.services;
  let committed = svc.commit({
    actorId: ctx.id,
    epoch: ctx.epoch,
    mid: svc.newMessageId?.() ?? svc.newId("m_"),
    conv,
    from: req.from,
    to: req.to,
    cmid: req.cmid,
    ts: svc.now(),
    body: req.body,
    recipients,
  });
  if (afterStore) {
    committed = committed.then(async (result) => {
      if (result.status !== "fenced") await afterStore(result.message);
      return result;
    });
  }
  const work = committed.then((result): SendOk => {
    if (result.status === "fenced") {
      throw new FencedError(ctx.id, ctx.epoch, result.storedEpoch);
    }
    if (result.status === "stored") {
      const users = Object.keys(result.seqs);
      svc.deliver({
        frame: msgFrame(result.message),
        users,
        seqs: users.map((u) => result.seqs[u]),
      });
      ctx.emit("stored", result.message);
      // Who got it (for offline push: node.ts turns this into per-recipient push decisions).
      ctx.emit("delivered", { message: result.message, users });
    }
    return okOf(result.message);
  }).finally(() => pending.delete(key));
  pending.set(key, work);
  return ctx.defer(work);
}

/**
 * Reads one page of history, newest first, answering `more` when older messages exist. With
 * `user`, the page is what that user sees: without the messages they deleted for themselves,
 * and each message with its `reactions` (when it has any).
 */
export async function historyPage(
  svc: ImServices,
  conv: string,
  before: number | null,
  limit: number,
  user?: string,
): Promise<{ messages: Record<string, unknown>[]; more: boolean }> {
  if (user !== undefined) {
    const rows = await svc.store.historyFor(user, conv, before, limit + 1);
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    return {
      messages: page.map((m) => {
        const frame = msgFrame(m);
        if (m.reactions.length) frame.reactions = m.reactions;
        return frame;
      }),
      more,
    };
  }
  const rows = await svc.store.history(conv, before, limit + 1);
  const more = rows.length > limit;
  const page = more ? rows.slice(0, limit) : rows;
  return {
    messages: page.map(msgFrame),
    more,
  };
}
