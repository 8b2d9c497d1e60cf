/**
 * Contract steps of the batched ack cursors (`saveAcks`): forward only, fenced per entry by its
 * user actor's epoch, results in request order, several nodes at once without deadlock.
 * `store_contract.ts` runs them with its other steps against every adapter.
 *
 * Steps share one database with every other step, so each names its users and actors with the
 * step's random prefix `p`.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { AckCursor, AckWrite } from "./store.ts";
import type { StoreUnderTest } from "./store_contract.ts";

type Step = (subject: StoreUnderTest, p: string) => Promise<void>;

function ack(p: string, user: string, epoch: number, device: string, seq: number): AckWrite {
  return { actorId: `user/${p}${user}`, epoch, userId: `${p}${user}`, device, seq };
}

function sorted(xs: AckCursor[]): AckCursor[] {
  return [...xs].sort((a, b) => a.device.localeCompare(b.device));
}

/** The steps (name, body) of the saveAcks contract. */
export const ACK_STEPS: [string, Step][] = [
  [
    "saveAcks of an empty batch resolves to an empty list",
    async ({ store }) => {
      assert.deepEqual(await store.saveAcks([]), []);
    },
  ],
  [
    "saveAcks writes the cursors of many users in one call, forward only",
    async ({ store }, p) => {
      await store.saveAck(`user/${p}a`, 1, `${p}a`, "phone", 7);
      const results = await store.saveAcks([
        ack(p, "a", 1, "phone", 5), // behind the stored 7: stays 7
        ack(p, "a", 1, "laptop", 2),
        ack(p, "b", 1, "phone", 3),
        ack(p, "b", 1, "phone", 9), // the same device twice: the highest wins
        ack(p, "b", 1, "phone", 4),
      ]);
      assert.deepEqual(results, ["ok", "ok", "ok", "ok", "ok"]);
      assert.deepEqual(sorted(await store.loadAcks(`${p}a`)), [
        { device: "laptop", seq: 2 },
        { device: "phone", seq: 7 },
      ]);
      assert.deepEqual(await store.loadAcks(`${p}b`), [{ device: "phone", seq: 9 }]);
      assert.equal(await store.storedEpoch(`user/${p}b`), 1);
    },
  ],
  [
    "saveAcks skips the entries of a stale epoch without failing the others; accepted ones raise the epoch",
    async ({ store }, p) => {
      await store.saveAck(`user/${p}a`, 5, `${p}a`, "phone", 4);
      await store.fence(`user/${p}c`, 2);
      const results = await store.saveAcks([
        ack(p, "b", 3, "phone", 1),
        ack(p, "a", 4, "phone", 8), // stale: a is at epoch 5
        ack(p, "c", 6, "tablet", 2), // newer than c's 2: raises it
        ack(p, "a", 4, "laptop", 1),
      ]);
      assert.deepEqual(results, ["ok", "fenced", "ok", "fenced"]);
      assert.deepEqual(await store.loadAcks(`${p}a`), [{ device: "phone", seq: 4 }]);
      assert.equal(await store.storedEpoch(`user/${p}a`), 5);
      assert.deepEqual(await store.loadAcks(`${p}b`), [{ device: "phone", seq: 1 }]);
      assert.equal(await store.storedEpoch(`user/${p}b`), 3);
      assert.deepEqual(await store.loadAcks(`${p}c`), [{ device: "tablet", seq: 2 }]);
      assert.equal(await store.storedEpoch(`user/${p}c`), 6);
      // A single saveAck of the stale epoch is fenced too: the batch raised nothing for a.
      await assert.rejects(store.saveAck(`user/${p}a`, 4, `${p}a`, "phone", 9));
    },
  ],
  [
    "saveAcks with two epochs of one actor in a batch writes only the newest epoch's entries",
    async ({ store }, p) => {
      const results = await store.saveAcks([
        ack(p, "a", 2, "phone", 9), // an older activation, still pending on this node
        ack(p, "a", 3, "phone", 4),
        ack(p, "a", 3, "laptop", 1),
      ]);
      assert.deepEqual(results, ["fenced", "ok", "ok"]);
      assert.deepEqual(sorted(await store.loadAcks(`${p}a`)), [
        { device: "laptop", seq: 1 },
        { device: "phone", seq: 4 },
      ]);
      assert.equal(await store.storedEpoch(`user/${p}a`), 3);
    },
  ],
  [
    "saveAcks from several nodes at once over the same users completes without deadlock",
    async (subject, p) => {
      assert.ok(subject.reopen, "this step needs StoreUnderTest.reopen");
      const others = await Promise.all([subject.reopen(), subject.reopen()]);
      try {
        const users = Array.from({ length: 12 }, (_, i) => `u${i}`);
        for (let round = 1; round <= 5; round++) {
          const forward = users.map((u) => ack(p, u, 1, "phone", round * 10));
          const backward = [...users].reverse().map((u) => ack(p, u, 1, "phone", round * 10 + 1));
          const [a, b] = await Promise.all([
            others[0].saveAcks(forward),
            others[1].saveAcks(backward),
          ]);
          assert.ok(a.every((r) => r === "ok") && b.every((r) => r === "ok"));
        }
        for (const u of users) {
          assert.deepEqual(await subject.store.loadAcks(`${p}${u}`), [{
            device: "phone",
            seq: 51,
          }]);
        }
      } finally {
        for (const o of others) await o.close();
      }
    },
  ],
];
