/**
 * Many timers on one native timer: a binary min-heap of due times with a single `setTimeout`
 * armed for the earliest.
 *
 * Why: a native timer costs several hundred bytes of heap (the timer object, its callback
 * closure and the runtime's bookkeeping). The actor host keeps a few timers per activation
 * (idle passivation, behaviour timers such as the presence tick), so with tens of thousands of
 * idle activations the native timers were a large share of the memory per connection. An entry
 * here is one small object.
 *
 * Guarantees:
 * - An entry fires once its due time (by `clock`, monotonic `performance.now()` by default, so
 *   a change of the wall clock moves no timer) has come, never before; entries due at the same
 *   time fire in the order they were scheduled. Firing is a plain call of `onFire` from the
 *   native timer's callback (no extra task per entry).
 * - `remove` is O(log n) and idempotent; an entry is in at most one heap at a time.
 * - No native timer is pending while the heap is empty (a process with nothing scheduled can
 *   exit, and fake-timer tests see no leftover timers).
 *
 * @module
 */

const MAX_TIMER_MS = 2 ** 31 - 1;

/** What the heap needs of an entry; the heap owns these fields while the entry is scheduled. */
export class HeapTimer {
  /** Clock time at which it is due. */
  due = 0;
  /** Tie-breaker: scheduling order. */
  seq = 0;
  /** Position in the heap, -1 when not scheduled. */
  index = -1;
}

/** A min-heap of timers sharing one native timer. See the module doc. */
export class TimerHeap<T extends HeapTimer> {
  readonly #heap: T[] = [];
  readonly #clock: () => number;
  readonly #onFire: (entry: T) => void;
  #seq = 0;
  #native: ReturnType<typeof setTimeout> | undefined;
  /** Due time the native timer is armed for (Infinity when none). */
  #armedFor = Infinity;
  readonly #run = () => this.#fire();

  constructor(onFire: (entry: T) => void, clock: () => number = () => performance.now()) {
    this.#clock = clock;
    this.#onFire = onFire;
  }

  /** The heap's time (what `schedule` takes due times in). */
  now(): number {
    return this.#clock();
  }

  /** Schedules `entry` `delayMs` from now (see {@link TimerHeap.schedule}). */
  scheduleIn(entry: T, delayMs: number): void {
    this.schedule(entry, this.#clock() + Math.max(0, delayMs));
  }

  /** Entries scheduled. */
  get size(): number {
    return this.#heap.length;
  }

  /** Schedules `entry` at clock time `due` (rescheduling it when it is scheduled already). */
  schedule(entry: T, due: number): void {
    if (entry.index >= 0) this.remove(entry);
    entry.due = due;
    entry.seq = ++this.#seq;
    entry.index = this.#heap.length;
    this.#heap.push(entry);
    this.#up(entry.index);
    if (due < this.#armedFor) this.#arm();
  }

  /** Unschedules `entry` (no-op when it is not scheduled). */
  remove(entry: T): void {
    const i = entry.index;
    if (i < 0) return;
    entry.index = -1;
    const last = this.#heap.pop()!;
    if (last !== entry) {
      this.#heap[i] = last;
      last.index = i;
      this.#down(i);
      this.#up(last.index);
    }
    if (this.#heap.length === 0) this.#disarm();
    // Otherwise the native timer may now be early: it finds nothing due and re-arms.
  }

  /** Unschedules everything and stops the native timer. */
  clear(): void {
    for (const e of this.#heap) e.index = -1;
    this.#heap.length = 0;
    this.#disarm();
  }

  #fire(): void {
    this.#native = undefined;
    this.#armedFor = Infinity;
    const now = this.#clock();
    // Entries that onFire schedules wait for the next round, even when already due (no live
    // lock).
    const last = this.#seq;
    try {
      for (;;) {
        const top = this.#heap[0];
        if (!top || top.due > now || top.seq > last) break;
        this.remove(top);
        this.#onFire(top);
      }
    } finally {
      // Also after an onFire that threw (the error still propagates): the others stay on time.
      if (this.#heap.length && this.#native === undefined) this.#arm();
    }
  }

  #arm(): void {
    const top = this.#heap[0];
    if (!top) return;
    if (this.#native !== undefined) clearTimeout(this.#native);
    this.#armedFor = top.due;
    const wait = Math.min(Math.max(0, top.due - this.#clock()), MAX_TIMER_MS);
    this.#native = setTimeout(this.#run, wait);
  }

  #disarm(): void {
    if (this.#native !== undefined) clearTimeout(this.#native);
    this.#native = undefined;
    this.#armedFor = Infinity;
  }

  #less(a: T, b: T): boolean {
    return a.due < b.due || (a.due === b.due && a.seq < b.seq);
  }

  #up(i: number): void {
    const h = this.#heap;
    const e = h[i];
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(e, h[p])) break;
      h[i] = h[p];
      h[i].index = i;
      i = p;
    }
    h[i] = e;
    e.index = i;
  }

  #down(i: number): void {
    const h = this.#heap;
    const n = h.length;
    const e = h[i];
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.#less(h[r], h[l]) ? r : l;
      if (!this.#less(h[c], e)) break;
      h[i] = h[c];
      h[i].index = i;
      i = c;
    }
    h[i] = e;
    e.index = i;
  }
}
