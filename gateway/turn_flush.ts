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
 * deferred; a callback deferred while they run waits for the next turn. At most
 * {@link MAX_PER_TURN} run in one go: a message to a 10,000-member group queues a flush on
 * 10,000 sockets, and running them all at once held the event loop for 100-400 ms, with no
 * incoming frame read and the SQLite thread left idle meanwhile. The rest run after a
 * `setTimeout(0)`, in order, with callbacks deferred meanwhile queued behind them: in Deno a
 * chain of `setImmediate`s (or of MessageChannel messages) runs before any I/O is polled, and a
 * timer is what lets the loop read its sockets in between.
 *
 * @module
 */
import { setImmediate } from "node:timers";

/** Most deferred callbacks run in one turn (one socket flush each, in the gateway). */
export const MAX_PER_TURN = 1000;

let queue: Array<() => void> = [];
let scheduled = false;

function runQueued(): void {
  let run = queue;
  if (run.length > MAX_PER_TURN) {
    queue = run.slice(MAX_PER_TURN);
    run = run.slice(0, MAX_PER_TURN);
    // `scheduled` stays set: what is deferred meanwhile waits behind the rest.
    setTimeout(runQueued, 0);
  } else {
    queue = [];
    scheduled = false;
  }
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
