import assert from "node:assert/strict";
import { LatencyHistogram, mergeEncoded } from "./histogram.ts";

Deno.test("histogram percentiles of 1..1000 ms are within 0.1 % of the exact ones", () => {
  const h = new LatencyHistogram();
  for (let i = 1; i <= 1000; i++) h.recordMs(i);
  const s = h.summary();
  assert.equal(s.count, 1000);
  for (
    const [got, want] of [[s.p50, 500], [s.p90, 900], [s.p99, 990], [s.p999, 999], [s.max, 1000]]
  ) {
    assert.ok(Math.abs(got - want) <= want * 0.001, `${got} vs ${want}`);
  }
});

Deno.test("histograms merged from their encodings equal one histogram of all values", () => {
  const a = new LatencyHistogram();
  const b = new LatencyHistogram();
  const all = new LatencyHistogram();
  for (let i = 0; i < 500; i++) {
    const v = 0.05 + i * 0.731;
    (i % 2 ? a : b).recordMs(v);
    all.recordMs(v);
  }
  assert.deepEqual(mergeEncoded([a.encode(), b.encode()]).summary(), all.summary());
});

Deno.test("histogram clamps negative, NaN and huge values instead of throwing", () => {
  const h = new LatencyHistogram();
  h.recordMs(-5);
  h.recordMs(Number.NaN);
  h.recordMs(1e12);
  const s = h.summary();
  assert.equal(s.count, 3);
  assert.equal(s.p50, 0.001);
  assert.ok(s.max >= 599_000);
});
