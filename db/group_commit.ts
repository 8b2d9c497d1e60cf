/**
 * Group commit in front of {@link Store.append}: many concurrent appends, few transactions.
 *
 * One fsync costs about as much as a whole batch of rows, so appends are queued and written as
 * one `store.append(batch)` per flush. Batching is natural: the first request after an idle
 * period is flushed at once (after the current synchronous burst, a microtask later); requests
 * arriving while a flush is in flight wait for it and go together in the next one.
 *
 * Guarantees:
 * - One flush in flight at a time; for a store that runs its calls one at a time in call order,
 *   a second only while a full batch is waiting (see `maxInFlight`). Batches hold at most
 *   `maxBatch` requests and `maxRows` recipients (a single larger request goes alone); requests
 *   are written in arrival order (FIFO within and across batches).
 * - Each promise resolves with its own request's result once the batch has committed. When
 *   requests queued meanwhile, the next batch is handed to the store first (a store that does
 *   not block the thread then writes it while the callers of the finished one go on).
 * - A failed batch rejects every request in it with the store's error, unchanged (so an
 *   UnavailableError stays one); later batches are still attempted.
 * - `close()` flushes everything queued, then rejects further appends with UnavailableError.
 *
 * A store whose commit blocks the thread (SQLite: `node:sqlite` is synchronous, and the commit
 * includes the fsync) gets no natural batching: nothing can arrive while it commits, so every
 * request would pay its own fsync. For such a store (`blocking`, default: the store's
 * `blocksThread`), after a commit that left the queue empty the next flush waits as long as that
 * commit took (at most `maxLingerMs`), so requests arriving meanwhile join it — the batching an
 * asynchronous store gets while its commit is in flight. The first request after an idle period
 * is still flushed at once.
 *
 * @module
 */
import { ImError, UnavailableError } from "../actors/errors.ts";
import type { AppendRequest, AppendResult, Store } from "./store.ts";

/** Options of {@link GroupCommit}. */
export interface GroupCommitOptions {
  /** Most requests per `store.append` call (default 256). */
  maxBatch?: number;
  /**
   * Most inbox rows (recipients, summed over the requests) per `store.append` call (default
   * 4096 for a blocking store, 16,384 otherwise); a single request with more recipients still
   * goes alone. Bounds how long one commit takes (and, for a blocking store, holds the thread):
   * a batch of 16 sends to 1,000-member groups is 16,000 rows. Bigger batches are cheaper per
   * row: the inbox pages a group's members share are written once per commit.
   */
  maxRows?: number;
  /**
   * Whether the store's commit blocks the thread (default: `store.blocksThread`, true for the
   * in-thread SQLite store; the threaded one and Postgres do not); see the module doc.
   */
  blocking?: boolean;
  /** Longest wait for more requests after a blocking commit, ms (default 2). */
  maxLingerMs?: number;
  /**
   * Batches handed to the store before the first has answered (default 2 for a store whose
   * calls run one at a time in call order, `serialCalls`, else 1). Past the first, a batch is
   * handed over early only when a full one (`maxBatch` requests or `maxRows` recipients) is
   * waiting: then the threaded SQLite store starts it the moment it has committed the previous
   * one instead of idling until the event loop has read the answer. A partial batch waits and
   * grows instead: a commit costs about as much for a few requests as for many (the fsync, and
   * for a group message one row per member), so splitting what is queued only adds commits.
   * Batches still commit in arrival order.
   */
  maxInFlight?: number;
}

/** What one `store.append` call came to. */
type Outcome = { results: AppendResult[] } | { error: unknown };

interface Pending {
  request: AppendRequest;
  resolve: (result: AppendResult) => void;
  reject: (err: unknown) => void;
}

/** Queues appends and writes them to the store in batches. See the module doc. */
export class GroupCommit {
  readonly #store: Pick<Store, "append">;
  readonly #maxBatch: number;
  readonly #maxRows: number;
  #queue: Pending[] = [];
  /** Recipients summed over the queued requests. */
  #queuedRows = 0;
  /** Drain loops running (each has at most one batch in flight), and their promises. */
  readonly #lanes = new Set<object>();
  readonly #draining = new Set<Promise<void>>();
  #closed = false;
  readonly #blocking: boolean;
  readonly #maxLingerMs: number;
  readonly #maxInFlight: number;

  constructor(
    store: Pick<Store, "append" | "blocksThread" | "serialCalls">,
    options: GroupCommitOptions = {},
  ) {
    const maxBatch = options.maxBatch ?? 256;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) {
      throw new RangeError(`maxBatch must be a positive integer, got ${maxBatch}`);
    }
    const blocking = options.blocking ?? store.blocksThread === true;
    const maxRows = options.maxRows ?? (blocking ? 4096 : 16_384);
    if (!Number.isInteger(maxRows) || maxRows < 1) {
      throw new RangeError(`maxRows must be a positive integer, got ${maxRows}`);
    }
    this.#store = store;
    this.#maxBatch = maxBatch;
    this.#maxRows = maxRows;
    this.#blocking = blocking;
    this.#maxLingerMs = options.maxLingerMs ?? 2;
    // A blocking store finishes each call before the next can be made: nothing to overlap.
    const maxInFlight = blocking ? 1 : options.maxInFlight ?? (store.serialCalls ? 2 : 1);
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
      throw new RangeError(`maxInFlight must be a positive integer, got ${maxInFlight}`);
    }
    this.#maxInFlight = maxInFlight;
  }

  /** Requests queued and not yet handed to the store. */
  get pending(): number {
    return this.#queue.length;
  }

  /** Queues one request; resolves with its result once its batch has committed. */
  append(request: AppendRequest): Promise<AppendResult> {
    if (this.#closed) {
      return Promise.reject(new UnavailableError("The message store is shutting down"));
    }
    return new Promise<AppendResult>((resolve, reject) => {
      this.#queue.push({ request, resolve, reject });
      this.#queuedRows += request.recipients.length;
      const lanes = this.#lanes.size;
      if (lanes === 0 || (lanes < this.#maxInFlight && this.#fullBatchWaiting())) {
        this.#startLane();
      }
    });
  }

  /** Flushes every queued request; afterwards `append` rejects with UnavailableError. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#draining.size > 0) await Promise.all([...this.#draining]);
  }

  #startLane(): void {
    const lane = {};
    this.#lanes.add(lane);
    const done = this.#drain(lane);
    this.#draining.add(done);
    done.finally(() => this.#draining.delete(done));
  }

  async #drain(lane: object): Promise<void> {
    // Let the synchronous burst that started this drain finish queueing: it joins the batch.
    await Promise.resolve();
    let batch = this.#take();
    // Taken before the call: a blocking store commits inside it.
    let started = performance.now();
    let written = this.#write(batch);
    for (;;) {
      const outcome = await written;
      // Hand the store what queued during this commit before handing out this batch's results:
      // their continuations (the `ok`s and deliveries) then run while the store writes the next
      // batch, instead of the store idling until they are done. Not for a blocking store (the
      // next commit would hold back this batch's results), and not while another lane is in
      // flight unless a full batch is waiting (see maxInFlight).
      const overlap = !this.#blocking && this.#queue.length > 0 &&
        (this.#lanes.size === 1 || this.#fullBatchWaiting());
      const next = overlap ? this.#take() : null;
      if (next) {
        started = performance.now();
        written = this.#write(next);
      }
      this.#settle(batch, outcome);
      if (next) {
        batch = next;
        continue;
      }
      if (this.#lanes.size > 1 && !this.#fullBatchWaiting()) break;
      if (this.#blocking && !this.#closed) {
        // With requests queued: let this batch's callers go on (their `ok`s) before the next
        // commit holds the thread. Without: the commit held the thread, so let the requests
        // that are waiting to be read come in.
        const linger = this.#queue.length > 0
          ? 0
          : Math.min(performance.now() - started, this.#maxLingerMs);
        await new Promise((r) => setTimeout(r, linger));
      }
      if (this.#queue.length === 0) break;
      batch = this.#take();
      started = performance.now();
      written = this.#write(batch);
    }
    // Same synchronous step as the final empty-queue check: a later append starts a new drain.
    this.#lanes.delete(lane);
  }

  /** Takes the next batch off the queue (FIFO, within maxBatch and maxRows). */
  #take(): Pending[] {
    const batch = this.#queue.splice(0, this.#batchLength());
    for (const p of batch) this.#queuedRows -= p.request.recipients.length;
    return batch;
  }

  #fullBatchWaiting(): boolean {
    return this.#queue.length >= this.#maxBatch || this.#queuedRows >= this.#maxRows;
  }

  /** How many queued requests the next batch takes (FIFO, within maxBatch and maxRows). */
  #batchLength(): number {
    const q = this.#queue;
    let rows = q[0].request.recipients.length;
    let n = 1;
    while (n < q.length && n < this.#maxBatch) {
      rows += q[n].request.recipients.length;
      if (rows > this.#maxRows) break;
      n++;
    }
    return n;
  }

  /** Writes `batch`; never rejects (the outcome carries the store's error). */
  async #write(batch: Pending[]): Promise<Outcome> {
    try {
      const results = await this.#store.append(batch.map((p) => p.request));
      if (results.length !== batch.length) {
        throw new ImError(
          "internal",
          `Store returned ${results.length} results for a batch of ${batch.length}`,
        );
      }
      return { results };
    } catch (error) {
      return { error };
    }
  }

  /** Resolves each request of `batch` with its result, or rejects them all with the error. */
  #settle(batch: Pending[], outcome: Outcome): void {
    if ("error" in outcome) {
      for (const p of batch) p.reject(outcome.error);
      return;
    }
    for (const [i, p] of batch.entries()) p.resolve(outcome.results[i]);
  }
}
