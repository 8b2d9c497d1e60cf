import assert from "node:assert/strict";
import { CounterCache } from "./sqlite_counter_cache.ts";

Deno.test("the counter cache forgets everything when data_version moves, and only then", () => {
  const cache = new CounterCache();
  cache.validate(1);
  cache.setEpoch("conv/a", 3);
  cache.setCseq("a", 9);
  cache.setInbox("u_1", { lastSeq: 4, tail: null });
  cache.validate(1);
  assert.equal(cache.epochs.get("conv/a"), 3);
  assert.equal(cache.cseqs.get("a"), 9);
  assert.equal(cache.inboxes.get("u_1")?.lastSeq, 4);
  cache.validate(2);
  assert.equal(cache.epochs.size + cache.cseqs.size + cache.inboxes.size, 0);
});

Deno.test("the counter cache records a committed batch's conversations, raised epochs and tails", () => {
  const cache = new CounterCache();
  cache.remember({
    results: [],
    messages: [],
    closedRuns: [],
    counters: [["u_1", 12, 10, "d:u_1:u_2", 7]],
    convs: [["d:u_1:u_2", 7]],
    raisedEpochs: [["conv/d:u_1:u_2", 2]],
  });
  assert.equal(cache.cseqs.get("d:u_1:u_2"), 7);
  assert.equal(cache.epochs.get("conv/d:u_1:u_2"), 2);
  // Seqs 10..12 are cseqs 5..7 of the conversation.
  assert.deepEqual(cache.inboxes.get("u_1"), {
    lastSeq: 12,
    tail: { seqStart: 10, conv: "d:u_1:u_2", cseqStart: 5 },
  });
  cache.forgetEpoch("conv/d:u_1:u_2");
  cache.forgetInbox("u_1");
  assert.equal(cache.epochs.has("conv/d:u_1:u_2"), false);
  assert.equal(cache.inboxes.has("u_1"), false);
});

Deno.test("a counter cache map that reaches its bound starts over instead of growing", () => {
  const cache = new CounterCache(3);
  for (const k of ["a", "b", "c"]) cache.setCseq(k, 1);
  cache.setCseq("b", 2); // an existing key: no eviction
  assert.equal(cache.cseqs.size, 3);
  cache.setCseq("d", 1);
  assert.deepEqual([...cache.cseqs.keys()], ["d"]);
});
