import assert from "node:assert/strict";
import { DeadlineExceededError } from "../actors/errors.ts";
import { pendingDeadlines, watchDeadline, withDeadline } from "./deadline.ts";

const never = () => new Promise<never>(() => {});

Deno.test("withDeadline rejects with DeadlineExceededError once the deadline has passed, not before", async () => {
  const start = Date.now();
  await assert.rejects(withDeadline(never(), start + 40), DeadlineExceededError);
  assert.ok(Date.now() >= start + 40, `rejected after ${Date.now() - start} ms`);
  assert.equal(pendingDeadlines(), 0);
});

Deno.test("withDeadline settles like the work when it finishes first, and drops its watch", async () => {
  assert.equal(await withDeadline(Promise.resolve(7), Date.now() + 1000), 7);
  await assert.rejects(withDeadline(Promise.reject(new Error("boom")), Date.now() + 1000), /boom/);
  assert.equal(pendingDeadlines(), 0);
});

Deno.test("a passed deadline rejects at once", async () => {
  await assert.rejects(withDeadline(never(), Date.now() - 1), DeadlineExceededError);
  assert.equal(pendingDeadlines(), 0);
});

Deno.test("many deadlines share one timer and fire in deadline order; cancelled ones never fire", async () => {
  const now = Date.now();
  const fired: number[] = [];
  const done = Promise.withResolvers<void>();
  // Out of order on purpose, some in the same slot.
  const offsets = [60, 20, 40, 20, 80, 30];
  const watches = offsets.map((ms, i) =>
    watchDeadline(now + ms, () => {
      fired.push(i);
      if (fired.length === offsets.length - 1) done.resolve();
    })
  );
  watches[4].cancel(); // the 80 ms one
  watches[4].cancel(); // idempotent
  assert.equal(pendingDeadlines(), offsets.length - 1);
  await done.promise;
  assert.deepEqual(fired.map((i) => offsets[i]), [20, 20, 30, 40, 60]);
  assert.equal(pendingDeadlines(), 0);
});
