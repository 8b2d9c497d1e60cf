import assert from "node:assert/strict";
import { isId, newId, newOrderedId, randomBase32 } from "./ids.ts";

Deno.test("newId is the prefix followed by 20 lowercase base32 characters", () => {
  for (let i = 0; i < 100; i++) {
    const id = newId("u_");
    assert.match(id, /^u_[a-z2-7]{20}$/);
    assert.equal(isId(id, "u_"), true);
  }
});

Deno.test("newId does not repeat", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 10_000; i++) seen.add(newId("g_"));
  assert.equal(seen.size, 10_000);
});

Deno.test("randomBase32 uses the whole alphabet", () => {
  const chars = new Set(randomBase32(5000));
  assert.equal(chars.size, 32);
});

Deno.test("isId rejects other shapes", () => {
  const id = newId("u_");
  assert.equal(isId(id, "g_"), false);
  assert.equal(isId(id + "a", "u_"), false);
  assert.equal(isId(id.slice(0, -1) + "1", "u_"), false);
  assert.equal(isId(id.toUpperCase(), "u_"), false);
  assert.equal(isId(42, "u_"), false);
});

Deno.test("ordered ids have the shape of ids and sort by creation time", () => {
  const t0 = Date.UTC(2026, 10, 27);
  const ids = [0, 1, 31, 32, 1000, 86_400_000, 10 ** 12].map((d) => newOrderedId("m_", t0 + d));
  for (const id of ids) assert.ok(isId(id, "m_"), id);
  assert.deepEqual([...ids].sort(), ids);
  // Ids made in the same millisecond differ.
  assert.notEqual(newOrderedId("m_", t0), newOrderedId("m_", t0));
});
