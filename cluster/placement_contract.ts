/**
 * The contract every {@link Placement} adapter keeps; each adapter's test file runs it once.
 *
 * Lease expiry is tested with real time and short leases, because the Redis adapter uses the
 * server's clock.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Placement } from "./placement.ts";

/** A fresh, empty directory for one test; `open` may be called several times. */
export interface PlacementHarness {
  /** A client of this test's directory (every call sees the same records). */
  open(): Promise<Placement>;
  /** Closes every client opened and removes the test's data. */
  cleanup(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LONG = 60_000;

/** Registers the placement contract's Deno tests for one adapter. */
export function runPlacementContract(name: string, factory: () => Promise<PlacementHarness>) {
  const test = (title: string, fn: (p: Placement, h: PlacementHarness) => Promise<void>) =>
    Deno.test(`${name}: ${title}`, async () => {
      const h = await factory();
      try {
        await fn(await h.open(), h);
      } finally {
        await h.cleanup();
      }
    });

  test("a lookup of an unknown actor finds nothing", async (p) => {
    assert.equal(await p.lookup("user/nobody"), null);
  });

  test("a claim on an empty directory succeeds with the minimum epoch", async (p) => {
    const before = Date.now();
    const r = await p.claim("user/1", "n1", { leaseMs: LONG, minEpoch: 7 });
    assert.equal(r.claimed, true);
    assert.equal(r.record.actorId, "user/1");
    assert.equal(r.record.node, "n1");
    assert.equal(r.record.epoch, 7);
    // The directory clock may be another machine's; allow a generous skew.
    assert.ok(Math.abs(r.record.leaseUntil - (before + LONG)) < 5_000);
    assert.deepEqual(await p.lookup("user/1"), r.record);
  });

  test("a claim of an actor another node holds fails and returns the current record", async (p) => {
    const first = await p.claim("user/1", "n1", { leaseMs: LONG, minEpoch: 1 });
    const second = await p.claim("user/1", "n2", { leaseMs: LONG, minEpoch: 5 });
    assert.equal(second.claimed, false);
    assert.deepEqual(second.record, first.record);
    assert.deepEqual(await p.lookup("user/1"), first.record);
  });

  test("a re-claim by the owner renews the lease and keeps the epoch", async (p) => {
    const first = await p.claim("user/1", "n1", { leaseMs: 2_000, minEpoch: 3 });
    await sleep(5);
    const again = await p.claim("user/1", "n1", { leaseMs: LONG, minEpoch: 1 });
    assert.equal(again.claimed, true);
    assert.equal(again.record.epoch, first.record.epoch);
    assert.ok(again.record.leaseUntil > first.record.leaseUntil);
  });

  test("a re-claim by the owner with a higher minimum epoch is granted that epoch", async (p) => {
    await p.claim("user/1", "n1", { leaseMs: LONG, minEpoch: 3 });
    const again = await p.claim("user/1", "n1", { leaseMs: LONG, minEpoch: 9 });
    assert.equal(again.claimed, true);
    assert.equal(again.record.epoch, 9);
  });

  test("a takeover after the lease expired grows the epoch", async (p) => {
    const first = await p.claim("user/1", "n1", { leaseMs: 60, minEpoch: 4 });
    await sleep(120);
    assert.equal(await p.lookup("user/1"), null);
    const taken = await p.claim("user/1", "n2", { leaseMs: LONG, minEpoch: 1 });
    assert.equal(taken.claimed, true);
    assert.equal(taken.record.node, "n2");
    assert.equal(taken.record.epoch, first.record.epoch + 1);
  });

  test("an owner whose lease expired re-claims under a new epoch", async (p) => {
    const first = await p.claim("user/1", "n1", { leaseMs: 60, minEpoch: 1 });
    await sleep(120);
    const again = await p.claim("user/1", "n1", { leaseMs: LONG, minEpoch: 1 });
    assert.equal(again.claimed, true);
    assert.equal(again.record.epoch, first.record.epoch + 1);
  });

  test("a takeover of a node listed as dead succeeds before its lease ends", async (p) => {
    const first = await p.claim("user/1", "n1", { leaseMs: LONG, minEpoch: 2 });
    const notDead = await p.claim("user/1", "n2", {
      leaseMs: LONG,
      minEpoch: 1,
      deadNodes: ["n3"],
    });
    assert.equal(notDead.claimed, false);
    const taken = await p.claim("user/1", "n2", {
      leaseMs: LONG,
      minEpoch: 1,
      deadNodes: ["n3", "n1"],
    });
    assert.equal(taken.claimed, true);
    assert.equal(taken.record.node, "n2");
    assert.equal(taken.record.epoch, first.record.epoch + 1);
  });

  test("a takeover honours the minimum epoch when it is above previous + 1", async (p) => {
    await p.claim("user/1", "n1", { leaseMs: LONG, minEpoch: 2 });
    const taken = await p.claim("user/1", "n2", {
      leaseMs: LONG,
      minEpoch: 40,
      deadNodes: ["n1"],
    });
    assert.equal(taken.record.epoch, 40);
  });

  test("epochs never decrease across claims, takeovers and releases", async (p) => {
    let last = 0;
    const nodes = ["n1", "n2", "n3"];
    for (let i = 0; i < 12; i++) {
      const node = nodes[i % 3];
      const r = await p.claim("group/9", node, {
        leaseMs: LONG,
        minEpoch: i % 4,
        deadNodes: nodes.filter((n) => n !== node),
      });
      assert.equal(r.claimed, true);
      assert.ok(r.record.epoch > last, `epoch ${r.record.epoch} after ${last}`);
      last = r.record.epoch;
      if (i % 2 === 1) await p.release("group/9", node, r.record.epoch);
    }
  });

  test("release removes the record only for the owner with that epoch", async (p) => {
    const r = await p.claim("user/1", "n1", { leaseMs: LONG, minEpoch: 5 });
    await p.release("user/1", "n2", 5);
    await p.release("user/1", "n1", 4);
    assert.deepEqual(await p.lookup("user/1"), r.record);
    await p.release("user/1", "n1", 5);
    assert.equal(await p.lookup("user/1"), null);
    const next = await p.claim("user/1", "n2", { leaseMs: LONG, minEpoch: 1 });
    assert.equal(next.claimed, true);
    assert.equal(next.record.epoch, 6);
  });

  test("renew extends held leases and reports the ones the node lost", async (p) => {
    const a = await p.claim("user/a", "n1", { leaseMs: 2_000, minEpoch: 1 });
    const b = await p.claim("user/b", "n1", { leaseMs: 2_000, minEpoch: 1 });
    await p.claim("user/c", "n2", { leaseMs: LONG, minEpoch: 1 });
    const d = await p.claim("user/d", "n1", { leaseMs: 2_000, minEpoch: 1 });
    await p.release("user/d", "n1", d.record.epoch);
    const lost = await p.renew("n1", [
      { actorId: "user/a", epoch: a.record.epoch },
      { actorId: "user/b", epoch: b.record.epoch + 1 },
      { actorId: "user/c", epoch: 1 },
      { actorId: "user/d", epoch: d.record.epoch },
      { actorId: "user/never", epoch: 1 },
    ], LONG);
    assert.deepEqual([...lost].sort(), ["user/b", "user/c", "user/d", "user/never"]);
    const renewed = await p.lookup("user/a");
    assert.ok(renewed && renewed.leaseUntil > a.record.leaseUntil + 10_000);
    assert.equal(renewed.epoch, a.record.epoch);
    assert.deepEqual(await p.renew("n1", [], LONG), []);
  });

  test("renew handles a thousand actors in one call", async (p) => {
    const held = [];
    for (let i = 0; i < 1_000; i++) {
      const r = await p.claim(`user/${i}`, "n1", { leaseMs: 2_000, minEpoch: 1 });
      held.push({ actorId: r.record.actorId, epoch: r.record.epoch });
    }
    held.push({ actorId: "user/unknown", epoch: 1 });
    assert.deepEqual(await p.renew("n1", held, LONG), ["user/unknown"]);
    const r = await p.lookup("user/999");
    assert.ok(r && r.leaseUntil > Date.now() + 30_000);
  });

  test("a renew after the lease expired reports the actor lost", async (p) => {
    const r = await p.claim("user/1", "n1", { leaseMs: 60, minEpoch: 1 });
    await sleep(120);
    assert.deepEqual(await p.renew("n1", [{ actorId: "user/1", epoch: r.record.epoch }], LONG), [
      "user/1",
    ]);
  });

  test("50 concurrent claims of one actor by different nodes have exactly one winner", async (
    _p,
    h,
  ) => {
    const clients = await Promise.all([h.open(), h.open(), h.open(), h.open(), h.open()]);
    const results = await Promise.all(
      Array.from(
        { length: 50 },
        (_, i) =>
          clients[i % clients.length].claim("group/hot", `n${i}`, { leaseMs: LONG, minEpoch: 1 }),
      ),
    );
    const winners = results.filter((r) => r.claimed);
    assert.equal(winners.length, 1);
    const winner = winners[0].record;
    for (const r of results) assert.deepEqual(r.record, winner);
    assert.deepEqual(await clients[0].lookup("group/hot"), winner);
  });

  test("actor ids with unusual characters are kept apart", async (p) => {
    const ids = ["user/a:b", "user/a b", "user/ä{x}", "group/*", "user/a"];
    for (const [i, id] of ids.entries()) {
      await p.claim(id, `n${i}`, { leaseMs: LONG, minEpoch: i + 1 });
    }
    for (const [i, id] of ids.entries()) {
      const r = await p.lookup(id);
      assert.equal(r?.node, `n${i}`);
      assert.equal(r?.epoch, i + 1);
    }
  });
}
