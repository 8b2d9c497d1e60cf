import assert from "node:assert/strict";
import { packValue, shouldPack, unpackValue } from "./sqlite_thread_wire.ts";
import { openSqliteStore } from "./store_sqlite.ts";
import { openThreadedSqliteStore } from "./store_sqlite_threaded.ts";
import type { AppendRequest } from "./store.ts";

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

Deno.test("batches of small requests travel packed, batches of group messages cloned", () => {
  assert.equal(shouldPack([send(1, ["u_a1", "u_b"]), send(2, ["u_a2", "u_b"])]), true);
  const members = Array.from({ length: 1000 }, (_, i) => `u_m${i}`);
  assert.equal(shouldPack([send(1, members)]), false);
  // The rule is the average: one big group message among 99 direct ones still goes packed.
  const mixed = [
    send(0, members),
    ...Array.from({ length: 99 }, (_, i) => send(i + 1, ["a", "b"])),
  ];
  assert.equal(shouldPack(mixed), true);
  assert.equal(shouldPack(mixed.slice(0, 50)), false);
  assert.equal(shouldPack([]), true);
});

Deno.test("what append exchanges round-trips packed unchanged", () => {
  const requests = [send(1, ["u_a1", "u_b"]), send(2, [], { to: { group: "g_1" } })];
  assert.deepEqual(unpackValue(packValue(requests)), requests);
  const results = [
    {
      status: "stored",
      message: { ...requests[0], cseq: 9_007_199_254_740_991 },
      seqs: { u_b: 3 },
    },
    { status: "stored", message: { ...requests[1], cseq: 1 }, seqs: {} },
    { status: "duplicate", message: { ...requests[0], cseq: 4 } },
    { status: "fenced", storedEpoch: 7 },
  ];
  assert.deepEqual(unpackValue(packValue(results)), results);
  // Its own buffer, so it can be transferred without taking the packer's.
  const bytes = packValue(requests);
  assert.equal(bytes.byteOffset, 0);
  assert.equal(bytes.buffer.byteLength, bytes.byteLength);
});

Deno.test("threaded SQLite answers packed and cloned append batches as the store itself does", async () => {
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
