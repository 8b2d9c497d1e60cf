/**
 * A bounded FIFO mailbox that runs one turn at a time.
 *
 * Guarantees:
 * - **One turn at a time, never re-entrant.** The next entry starts only after the previous
 *   turn's promise has settled, whatever the turn awaits in between.
 * - **FIFO.** Entries run in the order they were enqueued, so the order of one sender's messages
 *   is kept.
 * - **Bounded.** {@link Mailbox.enqueue} throws {@link MailboxFullError} (code `overloaded`)
 *   when `capacity` entries are waiting; nothing is enqueued then.
 * - **Deadlines.** An entry whose absolute deadline has passed when its turn comes is dropped:
 *   its promise rejects with {@link DeadlineExceededError} and the turn never runs.
 * - **Deferred replies.** A turn that returns a {@link DeferredReply} ends at once; the entry's
 *   promise settles later with the deferred promise's outcome while the next turn runs.
 *
 * @module
 */
import type { Deferred } from "./behavior.ts";
import { DeadlineExceededError, type ImError, MailboxFullError } from "./errors.ts";

/**
 * The reply of a turn that finishes after the turn has ended (what `ctx.defer` returns). The
 * mailbox moves on at once and settles the entry with `deferred` later.
 */
export class DeferredReply<T> implements Deferred<T> {
  /** The eventual reply. */
  readonly deferred: Promise<T>;
  constructor(deferred: Promise<T>) {
    this.deferred = deferred;
  }
}

/**
 * The turn runner as an object (the actor host passes its activation record, so a mailbox needs
 * no closures of its own).
 */
export interface MailboxHandler<T> {
  /** Runs one turn. Its (awaited) value settles the entry, unless it is a DeferredReply. */
  run(item: T): unknown;
  /** Called whenever the mailbox has no running turn and nothing waiting. */
  onIdle?(): void;
}

/** Options of {@link Mailbox}. Give `handler`, or `run` (and optionally `onIdle`). */
export interface MailboxOptions<T> {
  /** Who owns the mailbox (an actor id), for error messages. */
  owner: string;
  /** Maximum number of waiting entries (the running one not counted). */
  capacity: number;
  /** Runs one turn. Its (awaited) value settles the entry, unless it is a DeferredReply. */
  run?: (item: T) => unknown;
  /** Time source for deadlines (default `Date.now`). */
  clock?: () => number;
  /** Called whenever the mailbox has no running turn and nothing waiting. */
  onIdle?: () => void;
  /** Runs turns and hears of idleness (instead of `run` and `onIdle`). */
  handler?: MailboxHandler<T>;
  /** Start paused: nothing runs until {@link Mailbox.start}. */
  paused?: boolean;
}

/** Options of one {@link Mailbox.enqueue}. */
export interface EnqueueOptions {
  /** Absolute deadline (clock ms); an entry still waiting at this time is dropped. */
  deadline?: number;
  /** Bypasses the capacity bound (for the runtime's own entries, e.g. the passivation turn). */
  force?: boolean;
}

/** The queue of every empty mailbox (never written: `enqueue` replaces it first). */
// deno-lint-ignore no-explicit-any
const EMPTY: any[] = Object.freeze([]) as unknown as any[];

interface Entry<T> {
  item: T;
  deadline?: number;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** A bounded FIFO mailbox; see the module doc for its guarantees. */
export class Mailbox<T> {
  readonly #owner: string;
  readonly #capacity: number;
  readonly #handler: MailboxHandler<T>;
  readonly #clock: () => number;
  // A deque as an array plus a head index: shift() on large arrays is O(n). Shared empty until
  // the first entry (most mailboxes are empty most of the time).
  #queue: (Entry<T> | undefined)[] = EMPTY;
  #head = 0;
  #running = false;
  #scheduled = false;
  #paused: boolean;
  #closed: ((item: T) => ImError) | null = null;

  constructor(options: MailboxOptions<T>) {
    if (!(options.capacity >= 1)) throw new RangeError("Mailbox capacity must be at least 1");
    this.#owner = options.owner;
    this.#capacity = options.capacity;
    if (options.handler) this.#handler = options.handler;
    else if (options.run) this.#handler = { run: options.run, onIdle: options.onIdle };
    else throw new TypeError("A mailbox needs a handler or run");
    this.#clock = options.clock ?? Date.now;
    this.#paused = options.paused ?? false;
  }

  /** Entries waiting (the running turn not counted). */
  get depth(): number {
    return this.#queue.length - this.#head;
  }

  /** Whether a turn is running now. */
  get running(): boolean {
    return this.#running;
  }

  /** No turn running and nothing waiting. */
  get idle(): boolean {
    return !this.#running && this.depth === 0;
  }

  /** Whether {@link Mailbox.close} was called. */
  get closed(): boolean {
    return this.#closed !== null;
  }

  /**
   * Appends an entry; the promise settles with the turn's reply. Throws MailboxFullError
   * synchronously when `capacity` entries are waiting, and the close error once closed.
   */
  enqueue(item: T, options: EnqueueOptions = {}): Promise<unknown> {
    if (this.#closed) throw this.#closed(item);
    if (!options.force && this.depth >= this.#capacity) throw new MailboxFullError(this.#owner);
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    if (this.#queue === EMPTY) this.#queue = [];
    this.#queue.push({ item, deadline: options.deadline, resolve, reject });
    this.#schedule();
    return promise;
  }

  /** Starts (or resumes) running turns. */
  start(): void {
    this.#paused = false;
    this.#schedule();
  }

  /**
   * Rejects every waiting entry with `error(item)` and refuses further entries with it. The
   * running turn, if any, still finishes and settles its own entry.
   */
  close(error: (item: T) => ImError): void {
    if (this.#closed) return;
    this.#closed = error;
    for (let e = this.#shift(); e; e = this.#shift()) e.reject(error(e.item));
  }

  #shift(): Entry<T> | undefined {
    if (this.#head >= this.#queue.length) return undefined;
    const e = this.#queue[this.#head];
    this.#queue[this.#head++] = undefined;
    if (this.#head >= this.#queue.length) {
      this.#queue = EMPTY;
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    return e;
  }

  #schedule(): void {
    if (this.#running || this.#scheduled || this.#paused || this.#closed) return;
    this.#scheduled = true;
    // Turns start on a fresh microtask, never inside the caller's stack: a handler that tells
    // another local actor must not run that actor's turn nested inside its own.
    queueMicrotask(() => {
      this.#scheduled = false;
      void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    if (this.#running || this.#paused || this.#closed) return;
    this.#running = true;
    try {
      while (!this.#paused && !this.#closed) {
        const entry = this.#shift();
        if (!entry) break;
        if (entry.deadline !== undefined && this.#clock() >= entry.deadline) {
          entry.reject(new DeadlineExceededError(`Deadline passed before "${this.#owner}" ran it`));
          continue;
        }
        try {
          const out = await this.#handler.run(entry.item);
          entry.resolve(out instanceof DeferredReply ? out.deferred : out);
        } catch (err) {
          entry.reject(err);
        }
      }
    } finally {
      this.#running = false;
    }
    if (this.depth === 0 && !this.#closed) this.#handler.onIdle?.();
  }
}
