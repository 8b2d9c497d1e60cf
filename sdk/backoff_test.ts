import assert from "node:assert/strict";
import fc from "fast-check";
import { backoffDelay } from "./backoff.ts";

Deno.test("backoff grows by the factor up to the cap when there is no jitter", () => {
  const opts = { initialDelayMs: 100, maxDelayMs: 1000, factor: 2, jitter: 0 };
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((n) => backoffDelay(n, opts)), [
    100,
    200,
    400,
    800,
    1000,
    1000,
  ]);
});

Deno.test("backoff with jitter stays between (1 - jitter) and 1 times the base delay", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 40 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.double({ min: 0, max: 0.999, noNaN: true }),
      (attempt, jitter, r) => {
        const opts = { initialDelayMs: 250, maxDelayMs: 15_000, jitter };
        const base = Math.min(15_000, 250 * 2 ** attempt);
        const d = backoffDelay(attempt, opts, () => r);
        return d <= Math.round(base) && d >= Math.floor((1 - jitter) * base) - 1;
      },
    ),
  );
});
