/**
 * The numbering of one append batch, apart from any database: given the counters a store read
 * (and locked) for the batch, decides fencing and duplicates, gives each new message its cseq and
 * each inbox entry its seq and run, and lists the rows to write back. The Postgres store runs it
 * between locking the counter rows and writing (db/store_postgres.ts); it is the same algorithm
 * the SQLite store runs inside its transaction.
 *
 * Semantics (db/store.ts, `Store.append`): requests are taken in order; a request whose epoch is
 * below the highest epoch its actor has met (stored, or raised by an earlier request of this
 * batch) is fenced and writes nothing; an accepted request raises its actor's epoch; a
 * `(from, cmid)` stored before, or earlier in this batch, is a duplicate (the earlier message);
 * every other request is stored with the conversation's next cseq and the next seq of each of
 * its (de-duplicated) recipients.
 *
 * Inbox runs: a run maps consecutive seqs of one user to consecutive cseqs of one conversation.
 * An entry continues the user's current run when it is that conversation's next cseq, else it
 * starts a run and the one before, now closed, is written to the closed runs. Each touched user's
 * last run is the new open tail, kept with the counter row only.
 *
 * @module
 */
import type { AppendRequest, AppendResult, StoredMessage } from "./store.ts";

/** An inbox run: seqs seqStart.. map to cseqs cseqStart.. of `conv`. */
export interface Run {
  seqStart: number;
  conv: string;
  cseqStart: number;
}

/** A user's counter as stored: last seq and the open tail run (null: nothing to extend). */
export interface InboxCounter {
  lastSeq: number;
  tail: Run | null;
}

/** What the store read for the batch. Missing entries count as new (epoch 0, cseq 0, seq 0). */
export interface BatchState {
  /** Actor id → stored epoch. */
  epochs: Map<string, number>;
  /** Conversation → last cseq. */
  cseqs: Map<string, number>;
  /** User → counter row. */
  inboxes: Map<string, InboxCounter>;
  /** Messages already stored under a (from, cmid) of the batch: from → cmid → message. */
  prior: Map<string, Map<string, StoredMessage>>;
}

/** A new message to insert, with what the store needs beside the request. */
export interface NewMessage {
  request: AppendRequest;
  cseq: number;
  /** The body as stored: its JSON text. */
  bodyText: string;
  toKind: "user" | "group";
  toId: string;
}

/** The batch's outcome and the rows that record it. Row lists are sorted by key. */
export interface NumberedBatch {
  /** One per request, in request order. */
  results: AppendResult[];
  /** In request order. */
  messages: NewMessage[];
  /** Runs this batch closed: [user, seqStart, conv, cseqStart, count]. */
  closedRuns: [string, number, string, number, number][];
  /** New counter rows: [user, lastSeq, tailSeqStart, tailConv, tailCseq (at lastSeq)]. */
  counters: [string, number, number, string, number][];
  /** [conv, lastCseq] of every conversation that got a message. */
  convs: [string, number][];
  /** [actorId, epoch] of every actor whose epoch rose. */
  raisedEpochs: [string, number][];
}

/** A user's position while a batch is numbered. */
interface Cursor {
  /** Last seq given (the stored one until the first entry). */
  last: number;
  /** The run ending at `last`, when there is one. */
  tail: Run | null;
  /** The runs this batch's entries went into, in order (null: none yet). */
  runs: Run[] | null;
  /** Index of the request that gave the last entry (a recipient listed twice gets one). */
  request: number;
}

/** Codepoint order is enough: any consistent order gives neighbouring writes. */
const byKey = (a: [string, ...unknown[]], b: [string, ...unknown[]]) =>
  a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;

/** Numbers `requests` against `state` (which it leaves untouched). */
export function numberBatch(requests: readonly AppendRequest[], state: BatchState): NumberedBatch {
  const epochs = new Map<string, { stored: number; raised: boolean }>();
  const cseqs = new Map<string, number>();
  // One cursor per user touched: a single map lookup per (message, recipient).
  const cursors = new Map<string, Cursor>();
  const seen = new Map<string, Map<string, StoredMessage>>();
  const results: AppendResult[] = [];
  const messages: NewMessage[] = [];

  for (let i = 0; i < requests.length; i++) {
    const req = requests[i];
    let epoch = epochs.get(req.actorId);
    if (!epoch) {
      epoch = { stored: state.epochs.get(req.actorId) ?? 0, raised: false };
      epochs.set(req.actorId, epoch);
    }
    if (req.epoch < epoch.stored) {
      results.push({ status: "fenced", storedEpoch: epoch.stored });
      continue;
    }
    if (req.epoch > epoch.stored) {
      epoch.stored = req.epoch;
      epoch.raised = true;
    }

    const existing = seen.get(req.from)?.get(req.cmid) ??
      state.prior.get(req.from)?.get(req.cmid);
    if (existing) {
      results.push({ status: "duplicate", message: existing });
      continue;
    }

    const cseq = (cseqs.get(req.conv) ?? state.cseqs.get(req.conv) ?? 0) + 1;
    cseqs.set(req.conv, cseq);
    const [toKind, toId] = "user" in req.to
      ? ["user" as const, req.to.user]
      : ["group" as const, req.to.group];
    const bodyText = JSON.stringify(req.body);
    messages.push({ request: req, cseq, bodyText, toKind, toId });

    const assigned: Record<string, number> = {};
    for (const userId of req.recipients) {
      let c = cursors.get(userId);
      if (!c) {
        const stored = state.inboxes.get(userId);
        c = { last: stored?.lastSeq ?? 0, tail: stored?.tail ?? null, runs: null, request: -1 };
        cursors.set(userId, c);
      } else if (c.request === i) continue; // listed twice in this request: one entry
      c.request = i;
      const seq = ++c.last;
      assigned[userId] = seq;
      const tail = c.tail;
      if (tail && tail.conv === req.conv && cseq - tail.cseqStart === seq - tail.seqStart) {
        // Extends the tail: its count is implied by the user's last seq until written.
        if (!c.runs) c.runs = [tail];
        else if (c.runs[c.runs.length - 1] !== tail) c.runs.push(tail);
      } else {
        const run = { seqStart: seq, conv: req.conv, cseqStart: cseq };
        c.tail = run;
        if (c.runs) c.runs.push(run);
        // The stored tail (if any) ends here: it goes first, so it is closed and stored.
        else c.runs = tail ? [tail, run] : [run];
      }
    }

    const message: StoredMessage = {
      mid: req.mid,
      conv: req.conv,
      cseq,
      from: req.from,
      to: toKind === "user" ? { user: toId } : { group: toId },
      ts: req.ts,
      body: JSON.parse(bodyText),
      cmid: req.cmid,
    };
    let bySender = seen.get(req.from);
    if (!bySender) seen.set(req.from, bySender = new Map());
    bySender.set(req.cmid, message);
    results.push({ status: "stored", message, seqs: assigned });
  }

  const closedRuns: NumberedBatch["closedRuns"] = [];
  const counters: NumberedBatch["counters"] = [];
  for (const [userId, c] of cursors) {
    // The runs this batch's entries went into, in seq order and contiguous (the first may be
    // the stored tail, extended); a cursor is made with the user's first entry.
    const runs = c.runs!;
    // Every run but the last was closed by this batch (it ends where the next starts).
    for (let i = 0; i + 1 < runs.length; i++) {
      const r = runs[i];
      closedRuns.push([userId, r.seqStart, r.conv, r.cseqStart, runs[i + 1].seqStart - r.seqStart]);
    }
    const tail = runs[runs.length - 1];
    counters.push([
      userId,
      c.last,
      tail.seqStart,
      tail.conv,
      tail.cseqStart + c.last - tail.seqStart,
    ]);
  }
  closedRuns.sort((a, b) => byKey(a, b) || a[1] - b[1]);
  counters.sort(byKey);
  const convs = [...cseqs].sort(byKey);
  const raisedEpochs: [string, number][] = [];
  for (const [actorId, e] of epochs) if (e.raised) raisedEpochs.push([actorId, e.stored]);
  raisedEpochs.sort(byKey);
  return { results, messages, closedRuns, counters, convs, raisedEpochs };
}
