import assert from "node:assert/strict";
import { SATURATION_SEARCH, searchWindow } from "./harness.ts";

/** A measurement that answers the given deliveries/s per window and records the windows asked. */
function measured(rates: Record<number, number>) {
  const asked: number[] = [];
  const measure = (window: number) => {
    asked.push(window);
    return Promise.resolve({ window, deliveriesPerSec: rates[window] });
  };
  return { asked, measure };
}

Deno.test("the window search doubles while each doubling gains 10 % and returns the best phase", async () => {
  const m = measured({ 4: 100, 8: 150, 16: 200, 32: 260 });
  const best = await searchWindow(4, m.measure);
  assert.deepEqual(m.asked, [4, 8, 16, 32], "at most three doublings");
  assert.equal(best.window, 32);
});

Deno.test("one doubling that gains less than 10 % does not end the window search; two in a row do", async () => {
  const noisy = measured({ 2: 100, 4: 104, 8: 180, 16: 170 });
  assert.equal((await searchWindow(2, noisy.measure)).window, 8);
  assert.deepEqual(noisy.asked, [2, 4, 8, 16]);

  const flat = measured({ 4: 100, 8: 95, 16: 105, 32: 300 });
  const best = await searchWindow(4, flat.measure);
  assert.deepEqual(flat.asked, [4, 8, 16], "stops after two doublings without a 10 % gain");
  assert.equal(best.window, 16, "the best phase, even when it gained less than 10 %");
});

Deno.test("the window search measures gains against the best phase so far", async () => {
  // 8 falls, 16 gains 10 % on 8 but not on 4: two misses in a row.
  const m = measured({ 4: 100, 8: 80, 16: 90, 32: 500 });
  const best = await searchWindow(4, m.measure, SATURATION_SEARCH);
  assert.deepEqual(m.asked, [4, 8, 16]);
  assert.equal(best.window, 4);
});
