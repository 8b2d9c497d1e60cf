import assert from "node:assert/strict";
import fc from "fast-check";
import { rendezvousStrategy } from "./placement_strategy.ts";

const nodes = ["node-a", "node-b", "node-c", "node-d", "node-e"];

Deno.test("rendezvous strategy gives the same node whatever the order of the live list", () => {
  fc.assert(
    fc.property(fc.string(), fc.shuffledSubarray(nodes, { minLength: 1 }), (actor, live) => {
      const sorted = [...live].sort();
      assert.equal(rendezvousStrategy(actor, live), rendezvousStrategy(actor, sorted));
      assert.ok(live.includes(rendezvousStrategy(actor, live)));
    }),
  );
});

Deno.test("rendezvous strategy spreads 20,000 actors evenly over five nodes", () => {
  const counts = new Map<string, number>();
  for (let i = 0; i < 20_000; i++) {
    const n = rendezvousStrategy(`user/${i}`, nodes);
    counts.set(n, (counts.get(n) ?? 0) + 1);
  }
  assert.equal(counts.size, nodes.length);
  for (const c of counts.values()) {
    assert.ok(c > 3_600 && c < 4_400, `uneven spread: ${[...counts.values()]}`);
  }
});

Deno.test("rendezvous strategy moves only the actors of a node that leaves", () => {
  const fewer = nodes.filter((n) => n !== "node-c");
  for (let i = 0; i < 5_000; i++) {
    const actor = `group/${i}`;
    const before = rendezvousStrategy(actor, nodes);
    const after = rendezvousStrategy(actor, fewer);
    if (before !== "node-c") assert.equal(after, before);
    else assert.notEqual(after, "node-c");
  }
});

Deno.test("rendezvous strategy refuses an empty live list", () => {
  assert.throws(() => rendezvousStrategy("user/1", []), RangeError);
});
