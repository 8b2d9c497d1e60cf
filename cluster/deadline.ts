/**
 * Deadline helpers shared by the transport adapters (no driver imports).
 *
 * @module
 */

import { DeadlineExceededError, errorFromWire, ImError, toImError } from "../actors/errors.ts";

/** Deadline used by transports when an envelope carries none, so nothing waits forever. */
export const FALLBACK_TIMEOUT_MS = 30_000;

/**
 * Resolves or rejects like `work`, or rejects with DeadlineExceededError once `deadline`
 * (milliseconds since the epoch) passes first — never earlier, at most one slot (10 ms) later.
 * Its watch is always dropped when `work` settles, so nothing outlives the call.
 *
 * Every pending deadline of the process shares one timer ({@link pendingDeadlines}): a request
 * costs a set insertion instead of creating and clearing a timer of its own.
 */
export function withDeadline<T>(work: Promise<T>, deadline: number): Promise<T> {
  const remaining = deadline - Date.now();
  if (remaining <= 0) {
    // The work may still settle later; observe it so a late rejection is not unhandled.
    work.catch(() => {});
    return Promise.reject(new DeadlineExceededError());
  }
  return new Promise<T>((resolve, reject) => {
    const watch = watchDeadline(deadline, () => reject(new DeadlineExceededError()));
    work.then(
      (value) => {
        watch.cancel();
        resolve(value);
      },
      (err) => {
        watch.cancel();
        reject(err);
      },
    );
  });
}

/** Width of a deadline slot, ms: deadlines in one slot fire together. */
const SLOT_MS = 10;

/** Watches by slot (`ceil(deadline / SLOT_MS)`), and the slots in ascending order. */
const slots = new Map<number, Set<() => void>>();
const order: number[] = [];
let watching = 0;
let timer: ReturnType<typeof setTimeout> | undefined;
let timerSlot = Infinity;

/** A deadline being watched. */
export interface DeadlineWatch {
  /** Stops watching (idempotent); `fire` will not run after this. */
  cancel(): void;
}

/**
 * Runs `fire` once `deadline` (ms since the epoch) has passed, unless cancelled first. All
 * watches share one timer, armed for the earliest slot and cleared when nothing is watched (so
 * an idle process, or a test, holds no timer).
 */
export function watchDeadline(deadline: number, fire: () => void): DeadlineWatch {
  const slot = Math.ceil(deadline / SLOT_MS);
  let set = slots.get(slot);
  if (!set) {
    set = new Set();
    slots.set(slot, set);
    // Deadlines mostly grow (now + a fixed timeout): search from the end.
    let i = order.length;
    while (i > 0 && order[i - 1] > slot) i--;
    order.splice(i, 0, slot);
  }
  // A fresh function per watch: the same `fire` may be watched twice.
  const entry = () => fire();
  set.add(entry);
  watching++;
  if (slot < timerSlot) arm(slot);
  return {
    cancel() {
      const s = slots.get(slot);
      if (!s?.delete(entry)) return;
      watching--;
      if (s.size === 0) {
        slots.delete(slot);
        const i = order.indexOf(slot);
        if (i >= 0) order.splice(i, 1);
      }
      if (watching === 0) disarm();
    },
  };
}

/** How many deadlines are watched (tests, metrics). */
export function pendingDeadlines(): number {
  return watching;
}

function arm(slot: number): void {
  if (timer !== undefined) clearTimeout(timer);
  timerSlot = slot;
  timer = setTimeout(expire, Math.max(0, slot * SLOT_MS - Date.now()));
}

function disarm(): void {
  if (timer !== undefined) clearTimeout(timer);
  timer = undefined;
  timerSlot = Infinity;
}

function expire(): void {
  timer = undefined;
  timerSlot = Infinity;
  const now = Date.now();
  const due: (() => void)[] = [];
  while (order.length > 0 && order[0] * SLOT_MS <= now) {
    const slot = order.shift()!;
    const set = slots.get(slot);
    if (!set) continue;
    slots.delete(slot);
    watching -= set.size;
    due.push(...set);
  }
  if (order.length > 0) arm(order[0]);
  for (const fire of due) fire();
}

/** The wire form of an error: only the stable code and the human message cross nodes. */
export interface WireError {
  code: string;
  message: string;
}

/** Turns any thrown value into its wire form (non-ImErrors become `internal`). */
export function errorToWire(err: unknown): WireError {
  const e = toImError(err);
  return { code: e.code, message: e.message };
}

/** Rebuilds an ImError as a remote caller sees it. */
export function errorFromRemote(err: unknown): ImError {
  const w = errorToWire(err);
  return errorFromWire(w);
}

/** Invokes a handler so that a synchronous throw becomes a rejected promise. */
export function invoke<A, R>(fn: (arg: A) => Promise<R>, arg: A): Promise<R> {
  try {
    return Promise.resolve(fn(arg));
  } catch (err) {
    return Promise.reject(err);
  }
}

/** Rejection handler that keeps ImErrors as they are and turns anything else into `internal`. */
export function rethrowAsImError(err: unknown): never {
  throw toImError(err);
}
