import assert from "node:assert/strict";
import { IpBudget } from "./ip_budget.ts";

Deno.test("an address gets at most its budget of unauthenticated places", () => {
  const budget = new IpBudget(2);
  const r1 = budget.acquire("1.2.3.4");
  const r2 = budget.acquire("1.2.3.4");
  assert.ok(r1 && r2);
  assert.equal(budget.acquire("1.2.3.4"), null);
  assert.ok(budget.acquire("5.6.7.8"), "other addresses are not affected");
  r1();
  r1(); // idempotent: frees one place only
  assert.equal(budget.pending("1.2.3.4"), 1);
  assert.ok(budget.acquire("1.2.3.4"));
});

Deno.test("released addresses leave no entry behind", () => {
  const budget = new IpBudget(3);
  const releases = [budget.acquire("a"), budget.acquire("a"), budget.acquire("b")];
  for (const r of releases) r!();
  assert.equal(budget.size, 0);
});
