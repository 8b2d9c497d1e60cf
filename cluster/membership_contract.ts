/**
 * The contract every {@link Membership} adapter keeps; each adapter's test file runs it once.
 *
 * Uses real time with a short heartbeat and TTL so that every adapter is tested the same way.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Membership, NodeInfo } from "./membership.ts";

/** Heartbeat settings the contract asks members for. */
export interface MembershipTiming {
  heartbeatMs: number;
  ttlMs: number;
}

/** One test's registry; every member opened shares it. */
export interface MembershipHarness {
  /** A new member of this test's registry (not joined yet). */
  open(timing: MembershipTiming): Promise<Membership>;
  /** Stops `member`'s heartbeats without leaving, as a killed process would. */
  crash(member: Membership): Promise<void>;
  /** Stops every member opened and removes the test's data. */
  cleanup(): Promise<void>;
}

const TIMING: MembershipTiming = { heartbeatMs: 100, ttlMs: 500 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ids = (nodes: NodeInfo[]) => nodes.map((n) => n.id).sort();
let counter = 0;
const info = (name: string): NodeInfo => ({
  id: `${name}-${Date.now().toString(36)}-${++counter}`,
  address: `http://127.0.0.1:${8000 + counter}`,
  startedAt: Date.now(),
});

async function until(what: string, check: () => boolean, timeoutMs = 3_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

/** Registers the membership contract's Deno tests for one adapter. */
export function runMembershipContract(name: string, factory: () => Promise<MembershipHarness>) {
  const test = (title: string, fn: (h: MembershipHarness) => Promise<void>) =>
    Deno.test(`${name}: ${title}`, async () => {
      const h = await factory();
      try {
        await fn(h);
      } finally {
        await h.cleanup();
      }
    });

  test("a member that has not joined sees no live node", async (h) => {
    const m = await h.open(TIMING);
    assert.deepEqual(m.liveNodes(), []);
    assert.equal(m.isLive("someone"), false);
  });

  test("a joined member sees itself live with the info it announced", async (h) => {
    const m = await h.open(TIMING);
    const self = info("a");
    await m.join(self);
    assert.deepEqual(m.liveNodes(), [self]);
    assert.equal(m.isLive(self.id), true);
    assert.deepEqual(await m.refresh(), [self]);
  });

  test("members of one registry see each other and get a change event on a join", async (h) => {
    const a = await h.open(TIMING);
    const b = await h.open(TIMING);
    const seenByA: string[][] = [];
    a.onChange((nodes) => seenByA.push(ids(nodes)));
    const ia = info("a");
    const ib = info("b");
    await a.join(ia);
    await b.join(ib);
    await until("a sees b", () => a.isLive(ib.id));
    assert.deepEqual(ids(a.liveNodes()), [ia.id, ib.id].sort());
    assert.deepEqual(ids(await b.refresh()), [ia.id, ib.id].sort());
    assert.deepEqual(seenByA.at(-1), [ia.id, ib.id].sort());
  });

  test("a member that leaves is gone from the others' view at their next refresh", async (h) => {
    const a = await h.open(TIMING);
    const b = await h.open(TIMING);
    const ia = info("a");
    const ib = info("b");
    await a.join(ia);
    await b.join(ib);
    await until("a sees b", () => a.isLive(ib.id));
    let changes = 0;
    a.onChange(() => changes++);
    await b.leave();
    assert.deepEqual(ids(await a.refresh()), [ia.id]);
    assert.equal(a.isLive(ib.id), false);
    assert.ok(changes >= 1);
    assert.deepEqual(b.liveNodes(), []);
  });

  test("a member whose heartbeats stop drops out of the live view after its TTL", async (h) => {
    const a = await h.open(TIMING);
    const b = await h.open(TIMING);
    const ia = info("a");
    const ib = info("b");
    await a.join(ia);
    await b.join(ib);
    await until("a sees b", () => a.isLive(ib.id));
    const changes: string[][] = [];
    a.onChange((nodes) => changes.push(ids(nodes)));
    const crashedAt = Date.now();
    await h.crash(b);
    // Still live during most of the TTL: one missed heartbeat is not death.
    await sleep(TIMING.heartbeatMs * 2);
    assert.equal(a.isLive(ib.id), true);
    // Without calling refresh(): the local view is refreshed by the heartbeat loop.
    await until("a drops b", () => !a.isLive(ib.id), TIMING.ttlMs * 8);
    // The last heartbeat may have been up to one interval before the crash.
    assert.ok(Date.now() - crashedAt >= TIMING.ttlMs - TIMING.heartbeatMs - 20);
    assert.deepEqual(changes.at(-1), [ia.id]);
    assert.deepEqual(ids(a.liveNodes()), [ia.id]);
  });

  test("a draining member stays live and the others see it draining", async (h) => {
    const a = await h.open(TIMING);
    const b = await h.open(TIMING);
    const ia = info("a");
    const ib = info("b");
    await a.join(ia);
    await b.join(ib);
    await until("a sees b", () => a.isLive(ib.id));
    let changed = 0;
    a.onChange(() => changed++);
    await b.drain();
    await until("a sees b draining", () => a.liveNodes().some((n) => n.id === ib.id && n.draining));
    assert.ok(changed >= 1, "starting to drain is a change of the view");
    assert.equal(b.liveNodes().find((n) => n.id === ib.id)?.draining, true);
    await sleep(TIMING.ttlMs * 2);
    assert.equal(a.isLive(ib.id), true, "still heartbeating while draining");
    assert.equal(a.liveNodes().find((n) => n.id === ib.id)?.draining, true);
    assert.equal(a.liveNodes().find((n) => n.id === ia.id)?.draining, undefined);
  });

  test("a live member stays live across many heartbeats", async (h) => {
    const a = await h.open(TIMING);
    const b = await h.open(TIMING);
    const ib = info("b");
    await a.join(info("a"));
    await b.join(ib);
    await until("a sees b", () => a.isLive(ib.id));
    let dropped = false;
    a.onChange((nodes) => {
      if (!nodes.some((n) => n.id === ib.id)) dropped = true;
    });
    await sleep(TIMING.ttlMs * 3);
    assert.equal(dropped, false);
    assert.equal(a.isLive(ib.id), true);
  });
}
