import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import { atEndOfTurn, MAX_PER_TURN } from "./turn_flush.ts";

/** Resolves after `n` promise hops. */
async function hops(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await Promise.resolve();
}

/** Lets the event loop turn `n` times. */
async function nextTurns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 0));
}

Deno.test("work deferred to the end of the turn runs after every continuation of the turn", async () => {
  const log: string[] = [];
  atEndOfTurn(() => log.push("flush"));
  // Frames that arrive many promise hops later in the same turn are still before the flush.
  const late = hops(50).then(() => log.push("late frame"));
  await late;
  assert.deepEqual(log, ["late frame"]);
  await nextTurns(2);
  assert.deepEqual(log, ["late frame", "flush"]);
});

Deno.test("deferred callbacks run once each, in order; one deferred while they run waits a turn", async () => {
  const log: number[] = [];
  let again = false;
  atEndOfTurn(() => log.push(1));
  atEndOfTurn(() => {
    log.push(2);
    atEndOfTurn(() => {
      again = true;
      log.push(3);
    });
    assert.equal(again, false, "not within the same run");
  });
  await nextTurns(3);
  assert.deepEqual(log, [1, 2, 3]);
});

Deno.test("at most MAX_PER_TURN deferred callbacks run in one go; timers (and I/O) run before the rest, which follow in order", async () => {
  const ran: number[] = [];
  const total = MAX_PER_TURN * 2 + 5;
  for (let i = 0; i < total; i++) atEndOfTurn(() => ran.push(i));
  // Deferred while the backlog waits: runs after it, not before.
  const late = new Promise<number>((resolve) =>
    setImmediate(() => atEndOfTurn(() => resolve(ran.length)))
  );
  const seenByTimer = await new Promise<number>((r) => setTimeout(() => r(ran.length), 0));
  assert.ok(seenByTimer > 0 && seenByTimer <= MAX_PER_TURN, `a timer saw ${seenByTimer} run`);
  assert.equal(await late, total);
  assert.deepEqual(ran, Array.from({ length: total }, (_, i) => i));
});
