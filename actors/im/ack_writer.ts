/**
 * The node-wide ack writer: gathers the dirty ack cursors of every user actor of the node and
 * writes them with one `store.saveAcks` call per interval, instead of one `saveAck` per device
 * per user actor (1,000 reading users were ~2,000 durable writes per second; now they are two).
 *
 * Guarantees:
 * - **At least once.** A cursor is written only with a value its device acknowledged, so a
 *   crash may replay acknowledged messages (the cursors of the last interval are lost), never
 *   skip one. Cursors only move forward in the store (`saveAcks` keeps the highest).
 * - **Fencing.** Each entry carries its actor id and the epoch of the activation that marked
 *   it; the store rejects the entries of a stale epoch without failing the others. A fenced
 *   entry is dropped and reported to `onFenced` (the node drops that activation: a newer one
 *   exists elsewhere). When an actor is marked with a newer epoch, its pending entries of older
 *   epochs are dropped (they would be fenced).
 * - **Passivation.** {@link AckWriter.flushActor} writes an actor's pending cursors now (with
 *   everything else pending) and resolves once they are durable, so a passivating actor hands
 *   its cursors to the store before it releases its placement.
 * - **Failures.** A failed write keeps its entries pending (newer marks win) and is retried
 *   after `retryMs`; the error is logged and reaches `flushActor` callers.
 * - One write in flight at a time; no timer runs while nothing is pending.
 *
 * @module
 */
import type { AckWrite, AckWriteResult } from "../../db/store.ts";

/** How often dirty ack cursors are written, ms. */
export const ACK_FLUSH_MS = 500;

/** What the writer needs of the store. */
export interface AckStore {
  saveAcks(batch: AckWrite[]): Promise<AckWriteResult[]>;
}

/** Options of {@link AckWriter}. */
export interface AckWriterOptions {
  /** Interval between writes, ms (default {@link ACK_FLUSH_MS}). */
  intervalMs?: number;
  /** Delay before retrying a failed write, ms (default four intervals). */
  retryMs?: number;
  /** Where failures are logged. */
  logger: { warn(message: string, fields?: Record<string, unknown>): void };
  /** Told of each activation whose entries the store fenced (after the write). */
  onFenced?: (actorId: string, epoch: number) => void;
}

/** The pending cursors of one actor (one epoch). */
interface Pending {
  epoch: number;
  userId: string;
  /** device → seq */
  devices: Map<string, number>;
}

/** Batches the ack cursors of every user actor of a node. See the module doc. */
export class AckWriter {
  readonly #store: AckStore;
  readonly #intervalMs: number;
  readonly #retryMs: number;
  readonly #logger: AckWriterOptions["logger"];
  readonly #onFenced?: (actorId: string, epoch: number) => void;
  #pending = new Map<string, Pending>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** The write in flight and the actors it carries. */
  #inflight: { done: Promise<void>; actors: Set<string> } | null = null;
  #closed = false;

  constructor(store: AckStore, options: AckWriterOptions) {
    this.#store = store;
    this.#intervalMs = options.intervalMs ?? ACK_FLUSH_MS;
    this.#retryMs = options.retryMs ?? this.#intervalMs * 4;
    this.#logger = options.logger;
    this.#onFenced = options.onFenced;
  }

  /** Actors with cursors waiting to be written. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Records that `device` of `userId` holds everything up to `seq`, as seen by the activation
   * `actorId` at `epoch`. Written within the interval. Ignored when a newer epoch of the actor
   * is pending, or when `seq` is not above the pending one.
   */
  mark(actorId: string, epoch: number, userId: string, device: string, seq: number): void {
    let p = this.#pending.get(actorId);
    if (p && p.epoch > epoch) return;
    if (!p || p.epoch < epoch) {
      p = { epoch, userId, devices: new Map() };
      this.#pending.set(actorId, p);
    }
    if ((p.devices.get(device) ?? -1) < seq) p.devices.set(device, seq);
    this.#schedule(this.#intervalMs);
  }

  /**
   * Writes the pending cursors of `actorId` now (together with everything else pending) and
   * resolves once they are durable; rejects when that write failed (they stay pending).
   * Resolves at once when nothing of the actor is pending or in flight.
   */
  async flushActor(actorId: string): Promise<void> {
    if (this.#inflight?.actors.has(actorId)) {
      // Its outcome is not ours to report: a failure left the entries pending (retried below).
      await this.#inflight.done.catch(() => {});
    }
    if (this.#pending.has(actorId)) await this.#flush();
  }

  /** Writes everything pending now; resolves when written (rejects when the write failed). */
  async flush(): Promise<void> {
    if (this.#inflight) await this.#inflight.done.catch(() => {});
    if (this.#pending.size) await this.#flush();
  }

  /** Writes what is pending, then stops (marks after this are written by `flush` only). */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }

  #schedule(ms: number): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      // Errors are logged in #flush and the entries retried; nothing else to do here.
      this.#flush().catch(() => {});
    }, ms);
  }

  /** One write of everything pending (after the one in flight, if any). */
  async #flush(): Promise<void> {
    while (this.#inflight) await this.#inflight.done.catch(() => {});
    if (this.#pending.size === 0) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const taken = this.#pending;
    this.#pending = new Map();
    const batch: AckWrite[] = [];
    for (const [actorId, p] of taken) {
      for (const [device, seq] of p.devices) {
        batch.push({ actorId, epoch: p.epoch, userId: p.userId, device, seq });
      }
    }
    const done = this.#write(batch, taken);
    this.#inflight = { done, actors: new Set(taken.keys()) };
    try {
      await done;
    } finally {
      this.#inflight = null;
      if (this.#pending.size) this.#schedule(this.#intervalMs);
    }
  }

  async #write(batch: AckWrite[], taken: Map<string, Pending>): Promise<void> {
    let results: AckWriteResult[];
    try {
      results = await this.#store.saveAcks(batch);
    } catch (err) {
      // Put them back under what was marked meanwhile (newer epochs and higher seqs win).
      for (const [actorId, p] of taken) {
        for (const [device, seq] of p.devices) this.mark(actorId, p.epoch, p.userId, device, seq);
      }
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#schedule(this.#retryMs);
      this.#logger.warn("ack cursors not written; retrying", {
        actors: taken.size,
        error: err instanceof Error ? err.message : String(err),
      });
      throw err;
    }
    const fenced = new Map<string, number>();
    results.forEach((r, i) => {
      if (r === "fenced") fenced.set(batch[i].actorId, batch[i].epoch);
    });
    for (const [actorId, epoch] of fenced) {
      this.#logger.warn("fenced ack write rejected", { actorId, epoch });
      this.#onFenced?.(actorId, epoch);
    }
  }
}
