import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  compactArgs,
  decodeAppendBatch,
  decodeAppendResults,
  encodeAppendBatch,
  encodeAppendResults,
} from "./sqlite_thread_wire.ts";
import { openSqliteStore } from "./store_sqlite.ts";
import { openThreadedSqliteStore } from "./store_sqlite_threaded.ts";
import type { AppendRequest, AppendResult } from "./store.ts";

function send(i: number, recipients: string[], extra: Partial<AppendRequest> = {}): AppendRequest {
  return {
    actorId: `direct/u_a${i % 3}:u_b`,
    epoch: 2,
    mid: `m_${i}`,
    conv: `d:u_a${i % 3}:u_b`,
    from: `u_a${i % 3}`,
    to: { user: "u_b" },
    cmid: `c${i}`,
    ts: 1_790_000_000_000 + i,
    body: { type: "text", text: `hi ${i} ✓`, extra: { n: [1, 2.5, -3], ok: true, none: null } },
    recipients,
    ...extra,
  };
}

Deno.test("an append batch and its results round-trip as text; stored messages travel as cseq and seqs", () => {
  const requests = [
    send(1, ["u_a1", "u_b"]),
    send(2, [], { to: { group: "g_1" }, conv: "g:g_1" }),
    send(3, ["u_a0", "u_b"]),
    send(4, ["u_a1", "u_b"]),
  ];
  assert.deepEqual(decodeAppendBatch(encodeAppendBatch(requests)), requests);
  const stored = (r: AppendRequest, cseq: number) => ({
    mid: r.mid,
    conv: r.conv,
    cseq,
    from: r.from,
    to: { ...r.to },
    ts: r.ts,
    body: structuredClone(r.body),
    cmid: r.cmid,
  });
  const results: AppendResult[] = [
    { status: "stored", message: stored(requests[0], 9_007_199_254_740_991), seqs: { u_b: 3 } },
    { status: "stored", message: stored(requests[1], 1), seqs: {} },
    { status: "duplicate", message: { ...stored(requests[0], 4), mid: "m_earlier" } },
    { status: "fenced", storedEpoch: 7 },
  ];
  const text = encodeAppendResults(results);
  assert.equal(text.includes(requests[0].mid), false, "a stored message's fields stay home");
  assert.equal(text.includes("m_earlier"), true, "a duplicate carries the earlier message");
  assert.deepEqual(decodeAppendResults(text, requests), results);
});

Deno.test("threaded SQLite answers append batches as the store itself does", async () => {
  const threaded = openThreadedSqliteStore(":memory:");
  const direct = openSqliteStore(":memory:");
  try {
    await threaded.migrate();
    await direct.migrate();
    const members = Array.from({ length: 40 }, (_, i) => `u_m${i}`);
    const batches: AppendRequest[][] = [
      Array.from({ length: 30 }, (_, i) => send(i, [`u_a${i % 3}`, "u_b"])),
      [send(100, members, { conv: "g:g_1", to: { group: "g_1" }, actorId: "group/g_1" })],
      // Retries of the first batch: duplicates, answered with the stored messages.
      Array.from({ length: 30 }, (_, i) => send(i, [`u_a${i % 3}`, "u_b"], { mid: `m_x${i}` })),
      // A stale epoch: fenced.
      [send(200, ["u_a2", "u_b"], { epoch: 1 })],
    ];
    for (const batch of batches) {
      assert.deepEqual(await threaded.append(batch), await direct.append(batch));
    }
  } finally {
    await threaded.close();
    await direct.close();
  }
});

Deno.test("compactArgs: a byte view of a larger buffer crosses as a copy of its own bytes only", () => {
  const shared = new Uint8Array(64 * 1024);
  shared.set([7, 8, 9], 100);
  const view = shared.subarray(100, 103);
  const whole = new Uint8Array([1, 2, 3]);
  const other = { data: view };
  const [a, b, c, d] = compactArgs(["actor", view, whole, other]);
  assert.equal(a, "actor");
  const copy = b as Uint8Array;
  assert.deepEqual([...copy], [7, 8, 9]);
  // The structured clone copies the backing buffer: it must hold the three bytes alone.
  assert.equal(copy.buffer.byteLength, 3);
  assert.notEqual(copy.buffer, shared.buffer);
  // A tight array and anything else go through untouched (no needless copy).
  assert.equal(c, whole);
  assert.equal(d, other);
  // msgpackr returns Node Buffers where `Buffer` exists, and their slice() is a view.
  const buf = Buffer.alloc(64 * 1024, 1).subarray(10, 14);
  const [fromBuffer] = compactArgs([buf]) as Uint8Array[];
  assert.deepEqual([...fromBuffer], [1, 1, 1, 1]);
  assert.equal(fromBuffer.buffer.byteLength, 4);
});
