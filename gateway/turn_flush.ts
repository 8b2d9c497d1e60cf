/**
 * Work deferred to the end of the current event-loop turn: after every promise continuation
 * the turn started has run, before the loop waits for I/O again.
 *
 * Why not a microtask: a commit batch's results reach a socket through several promise hops
 * (the sender's `ok` travels back through the actor's reply, the `msg` copies through the
 * delivery path), so a flush queued as a microtask at the first frame runs before the others
 * arrive and the socket gets two or three WebSocket messages per batch instead of one. At the
 * end of the turn everything the batch produced is queued: one write per socket. (Direct
 * messages at their maximum rate: 1.24 → 0.64 `sendto` calls per message.)
 *
 * One `setImmediate` per turn for all callers; callbacks run once each, in the order they were
 * deferred; a callback deferred while they run waits for the next turn.
 *
 * @module
 */
import { setImmediate } from "node:timers";

let queue: Array<() => void> = [];
let scheduled = false;

function runQueued(): void {
  scheduled = false;
  const run = queue;
  queue = [];
  for (const fn of run) fn();
}

/** Runs `fn` at the end of the current event-loop turn (see the module doc). */
export function atEndOfTurn(fn: () => void): void {
  queue.push(fn);
  if (!scheduled) {
    scheduled = true;
    setImmediate(runQueued);
  }
}
