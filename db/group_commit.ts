/**
 * Group commit in front of {@link Store.append}: many concurrent appends, few transactions.
 *
 * One fsync costs about as much as a whole batch of rows, so appends are queued and written as
 * one `store.append(batch)` per flush. Batching is natural, never timed: the first request after
 * an idle period is flushed at once (after the current synchronous burst, a microtask later);
 * requests arriving while a flush is in flight wait for it and go together in the next one.
 *
 * Guarantees:
 * - One flush in flight at a time; batches hold at most `maxBatch` requests; requests are
 *   written in arrival order (FIFO within and across batches).
 * - Each promise resolves with its own request's result once the batch has committed.
 * - A failed batch rejects every request in it with the store's error, unchanged (so an
 *   UnavailableError stays one); later batches are still attempted.
 * - `close()` flushes everything queued, then rejects further appends with UnavailableError.
 *
 * @module
 */
import { ImError, UnavailableError } from "../actors/errors.ts";
import type { AppendRequest, AppendResult, Store } from "./store.ts";

/** Options of {@link GroupCommit}. */
export interface GroupCommitOptions {
  /** Most requests per `store.append` call (default 256). */
  maxBatch?: number;
}

interface Pending {
  request: AppendRequest;
  resolve: (result: AppendResult) => void;
  reject: (err: unknown) => void;
}

/** Queues appends and writes them to the store in batches. See the module doc. */
export class GroupCommit {
  readonly #store: Pick<Store, "append">;
  readonly #maxBatch: number;
  #queue: Pending[] = [];
  #flushing: Promise<void> | null = null;
  #closed = false;

  constructor(store: Pick<Store, "append">, options: GroupCommitOptions = {}) {
    const maxBatch = options.maxBatch ?? 256;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) {
      throw new RangeError(`maxBatch must be a positive integer, got ${maxBatch}`);
    }
    this.#store = store;
    this.#maxBatch = maxBatch;
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
      this.#flushing ??= this.#drain();
    });
  }

  /** Flushes every queued request; afterwards `append` rejects with UnavailableError. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#flushing;
  }

  async #drain(): Promise<void> {
    // Let the synchronous burst that started this drain finish queueing: it joins the batch.
    await Promise.resolve();
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxBatch);
      await this.#flush(batch);
    }
    // Same synchronous step as the final empty-queue check: a later append starts a new drain.
    this.#flushing = null;
  }

  async #flush(batch: Pending[]): Promise<void> {
    let results: AppendResult[];
    try {
      results = await this.#store.append(batch.map((p) => p.request));
      if (results.length !== batch.length) {
        throw new ImError(
          "internal",
          `Store returned ${results.length} results for a batch of ${batch.length}`,
        );
      }
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    for (const [i, p] of batch.entries()) p.resolve(results[i]);
  }
}
