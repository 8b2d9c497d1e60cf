/**
 * What the SQLite store's appends last read or wrote of the counter rows (actor epochs,
 * conversations' last cseq, users' inbox counters), so the next batch reads from the database
 * only the keys it has not seen. On a direct-message batch the per-key reads were about a fifth
 * of the transaction's time (bench/sqlite_inbox_append.ts).
 *
 * Correctness rests on three rules, kept by the store:
 * - Entries are stored values: set from rows read inside a write transaction, or from a batch's
 *   rows after its COMMIT succeeded (never before: a rolled-back batch must leave no trace).
 * - Writes to these tables other than `append`'s on the same connection forget the keys they
 *   touch ({@link CounterCache.forgetEpoch}, {@link CounterCache.forgetInbox}).
 * - Commits by other connections (another process on the same file) are detected with SQLite's
 *   `PRAGMA data_version`, read inside each append transaction: when it moved, everything is
 *   forgotten ({@link CounterCache.validate}).
 *
 * Each map holds at most `maxEntries` keys; one that grows past it starts over (the next batches
 * read their keys again), so memory stays bounded whatever the number of users.
 *
 * @module
 */
import type { InboxCounter, NumberedBatch } from "./append_numbering.ts";

/** Default bound of each map (three maps; an inbox entry is a few hundred bytes at most). */
export const COUNTER_CACHE_MAX_ENTRIES = 65_536;

/** Cached counters of one SQLite connection. See the module doc for when entries are valid. */
export class CounterCache {
  readonly epochs = new Map<string, number>();
  readonly cseqs = new Map<string, number>();
  readonly inboxes = new Map<string, InboxCounter>();
  #dataVersion: number | null = null;

  constructor(readonly maxEntries = COUNTER_CACHE_MAX_ENTRIES) {}

  /** Forgets everything unless `dataVersion` (PRAGMA data_version) is the one last seen. */
  validate(dataVersion: number): void {
    if (dataVersion !== this.#dataVersion) {
      this.clear();
      this.#dataVersion = dataVersion;
    }
  }

  /** Forgets everything (after a failed commit: what is stored is no longer known). */
  clear(): void {
    this.epochs.clear();
    this.cseqs.clear();
    this.inboxes.clear();
  }

  /** Records a value read from the database inside the current write transaction. */
  setEpoch(actorId: string, epoch: number): void {
    put(this.epochs, actorId, epoch, this.maxEntries);
  }

  /** Records a conversation's last cseq read inside the current write transaction. */
  setCseq(conv: string, cseq: number): void {
    put(this.cseqs, conv, cseq, this.maxEntries);
  }

  /** Records a user's counter row read inside the current write transaction. */
  setInbox(userId: string, counter: InboxCounter): void {
    put(this.inboxes, userId, counter, this.maxEntries);
  }

  /** Another write touched the actor's epoch row (fencing, snapshots). */
  forgetEpoch(actorId: string): void {
    this.epochs.delete(actorId);
  }

  /** Another write touched the user's counter row (account deletion). */
  forgetInbox(userId: string): void {
    this.inboxes.delete(userId);
  }

  /** Records what a committed batch wrote: its conversations, raised epochs and counters. */
  remember(batch: NumberedBatch): void {
    for (const [conv, cseq] of batch.convs) this.setCseq(conv, cseq);
    for (const [actorId, epoch] of batch.raisedEpochs) this.setEpoch(actorId, epoch);
    for (const [userId, lastSeq, seqStart, conv, tailCseq] of batch.counters) {
      // Within a run cseq - seq is constant, so the tail's first cseq follows from its last.
      this.setInbox(userId, {
        lastSeq,
        tail: { seqStart, conv, cseqStart: tailCseq - (lastSeq - seqStart) },
      });
    }
  }
}

function put<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  if (map.size >= max && !map.has(key)) map.clear();
  map.set(key, value);
}
