import assert from "node:assert/strict";
import { ImError, MovedError } from "../actors/errors.ts";
import { MemoryMembership, MemoryRegistry } from "./membership_memory.ts";
import { MemoryPlacement } from "./placement_memory.ts";
import { rendezvousStrategy } from "./placement_strategy.ts";
import { Router } from "./router.ts";
import type { Envelope } from "./transport.ts";
import { MemoryNetwork, MemoryTransport } from "./transport_memory.ts";

interface TestNode {
  id: string;
  transport: MemoryTransport;
  membership: MemoryMembership;
  router: Router;
  seen: Envelope[];
  errors: ImError[];
}

/**
 * An in-process cluster whose nodes run a minimal host: claim placement for the target actor,
 * answer with this node's id, or MovedError when another node holds the actor.
 */
async function cluster(names: string[], opts: { cacheMax?: number } = {}) {
  const network = new MemoryNetwork();
  const registry = new MemoryRegistry();
  const placement = new MemoryPlacement();
  const nodes = new Map<string, TestNode>();
  for (const id of names) {
    const transport = new MemoryTransport({ nodeId: id, network });
    const membership = new MemoryMembership({ registry, heartbeatMs: 50, ttlMs: 200 });
    const errors: ImError[] = [];
    const router = new Router({
      nodeId: id,
      transport,
      placement,
      membership,
      cacheMax: opts.cacheMax,
      onError: (err) => errors.push(err),
    });
    const node: TestNode = { id, transport, membership, router, seen: [], errors };
    await transport.serve(async (e) => {
      node.seen.push(e);
      const live = membership.liveNodes().map((n) => n.id);
      const dead = names.filter((n) => !live.includes(n));
      const r = await placement.claim(e.to, id, { leaseMs: 60_000, minEpoch: 1, deadNodes: dead });
      if (!r.claimed) throw new MovedError(e.to);
      if (e.type === "fail") throw new ImError("not_found", "nothing here");
      return { node: id, body: e.body };
    });
    await membership.join({ id, address: `http://${id}`, startedAt: Date.now() });
    nodes.set(id, node);
  }
  const close = async () => {
    for (const n of nodes.values()) {
      await n.membership.leave();
      await n.transport.close();
    }
    await placement.close();
  };
  return { nodes, placement, close, get: (id: string) => nodes.get(id)! };
}

Deno.test("the router sends a new actor to the node the strategy picks, even from that node", async () => {
  const c = await cluster(["n1", "n2", "n3"]);
  try {
    for (let i = 0; i < 30; i++) {
      const actor = `user/${i}`;
      const expected = rendezvousStrategy(actor, ["n1", "n2", "n3"]);
      const reply = await c.get("n1").router.ask(actor, "hi", i) as { node: string };
      assert.equal(reply.node, expected);
    }
    // Traffic to n1's own actors went through n1's transport handler too.
    assert.ok(c.get("n1").seen.length > 0);
  } finally {
    await c.close();
  }
});

Deno.test("the router follows the placement record of an active actor", async () => {
  const c = await cluster(["n1", "n2", "n3"]);
  try {
    const actor = "group/7";
    const other = ["n1", "n2", "n3"].find((n) =>
      n !== rendezvousStrategy(actor, ["n1", "n2", "n3"])
    )!;
    await c.placement.claim(actor, other, { leaseMs: 60_000, minEpoch: 1 });
    for (const from of ["n1", "n2", "n3"]) {
      assert.deepEqual(await c.get(from).router.ask(actor, "x", 1), { node: other, body: 1 });
    }
    const stats = c.get("n1").router.stats();
    assert.equal(stats.moves, 0);
    await c.get("n1").router.ask(actor, "x", 2);
    assert.equal(c.get("n1").router.stats().cacheHits, 1);
  } finally {
    await c.close();
  }
});

Deno.test("the router re-resolves once when the cached node answers moved, and counts the move", async () => {
  const c = await cluster(["n1", "n2"]);
  try {
    const actor = "user/42";
    const first = rendezvousStrategy(actor, ["n1", "n2"]);
    const second = first === "n1" ? "n2" : "n1";
    const r = c.get("n1").router;
    assert.equal((await r.ask(actor, "x", 1) as { node: string }).node, first);
    // The actor moves: its record now belongs to the other node.
    const rec = await c.placement.lookup(actor);
    await c.placement.release(actor, first, rec!.epoch);
    await c.placement.claim(actor, second, { leaseMs: 60_000, minEpoch: 1 });
    assert.equal((await r.ask(actor, "x", 2) as { node: string }).node, second);
    const s = r.stats();
    assert.equal(s.moves, 1);
    assert.equal(s.retries, 1);
    assert.equal((await r.ask(actor, "x", 3) as { node: string }).node, second);
    assert.equal(r.stats().moves, 1);
  } finally {
    await c.close();
  }
});

Deno.test("the router passes the actor's own errors through without retrying", async () => {
  const c = await cluster(["n1", "n2"]);
  try {
    const r = c.get("n2").router;
    await assert.rejects(r.ask("user/1", "fail", null), (e: ImError) => e.code === "not_found");
    assert.equal(r.stats().retries, 0);
  } finally {
    await c.close();
  }
});

Deno.test("the router re-routes away from a node that died and left the live set", async () => {
  const c = await cluster(["n1", "n2", "n3"]);
  try {
    const r = c.get("n1").router;
    const actor = ["user/a", "user/b", "user/c", "user/d", "user/e", "user/f"].find((a) =>
      rendezvousStrategy(a, ["n1", "n2", "n3"]) === "n3"
    )!;
    assert.equal((await r.ask(actor, "x", 1) as { node: string }).node, "n3");
    // n3 is killed: its transport is gone, its heartbeats stop; its lease is still valid.
    c.get("n3").membership.crash();
    await c.get("n3").transport.close();
    await assert.rejects(r.ask(actor, "x", 2), (e: ImError) => e.code === "unavailable");
    await new Promise((res) => setTimeout(res, 400));
    assert.equal(c.get("n1").membership.isLive("n3"), false);
    const reply = await r.ask(actor, "x", 3) as { node: string };
    assert.equal(reply.node, rendezvousStrategy(actor, ["n1", "n2"]));
  } finally {
    await c.close();
  }
});

Deno.test("the router retries an unavailable node that is not live without waiting for the view", async () => {
  const c = await cluster(["n1", "n2"]);
  try {
    const r = c.get("n1").router;
    const actor = ["user/a", "user/b", "user/c", "user/d", "user/e"].find((a) =>
      rendezvousStrategy(a, ["n1", "n2"]) === "n2"
    )!;
    await r.ask(actor, "x", 1);
    // n2's process is gone; the request fails before n1's view has caught up, then the view
    // drops n2 (leave() updates the in-process views synchronously).
    await c.get("n2").transport.close();
    const pending = r.ask(actor, "x", 2);
    void c.get("n2").membership.leave();
    const reply = await pending as { node: string };
    assert.equal(r.stats().retries, 1);
    assert.equal(r.stats().moves, 0);
    assert.equal(reply.node, "n1");
  } finally {
    await c.close();
  }
});

Deno.test("a tell never throws and its failures reach onError", async () => {
  const c = await cluster(["n1"]);
  try {
    const n = c.get("n1");
    n.router.tell("user/1", "fail", null);
    n.router.tell("user/2", "ok", null);
    await new Promise((res) => setTimeout(res, 20));
    assert.deepEqual(n.errors.map((e) => e.code), ["not_found"]);
    assert.equal(n.router.stats().tellFailures, 1);
    assert.equal(n.seen.length, 2);
  } finally {
    await c.close();
  }
});

Deno.test("an ask whose deadline passes rejects with timeout", async () => {
  const c = await cluster(["n1"]);
  try {
    const err = await c.get("n1").router.ask("user/1", "x", 1, { deadline: Date.now() - 1 })
      .catch((e: ImError) => e);
    assert.equal((err as ImError).code, "timeout");
  } finally {
    await c.close();
  }
});

Deno.test("messages from one sender reach the actor in call order, across a cache miss", async () => {
  const c = await cluster(["n1", "n2"]);
  try {
    const r = c.get("n1").router;
    const replies: Promise<unknown>[] = [];
    for (let i = 0; i < 500; i++) {
      if (i % 5 === 0) replies.push(r.ask("group/1", "x", i, { sender: "conn-1" }));
      else r.tell("group/1", "x", i, { sender: "conn-1" });
      if (i === 250) await replies[0];
    }
    await Promise.all(replies);
    await new Promise((res) => setTimeout(res, 20));
    const seen = [...c.nodes.values()].flatMap((n) => n.seen).map((e) => e.body);
    assert.deepEqual(seen, Array.from({ length: 500 }, (_, i) => i));
    assert.equal(r.stats().lookups, 1);
  } finally {
    await c.close();
  }
});

Deno.test("the router's cache stays within cacheMax", async () => {
  const c = await cluster(["n1", "n2"], { cacheMax: 10 });
  try {
    const r = c.get("n1").router;
    for (let i = 0; i < 50; i++) await r.ask(`user/${i}`, "x", i);
    assert.equal(r.stats().cacheSize, 10);
    await r.ask("user/49", "x", 0);
    assert.equal(r.stats().cacheHits, 1);
  } finally {
    await c.close();
  }
});

Deno.test("the router places new actors only on nodes that are not draining", async () => {
  const c = await cluster(["n1", "n2", "n3"]);
  try {
    await c.get("n2").membership.drain();
    const r = c.get("n1").router;
    for (let i = 0; i < 30; i++) {
      const actor = `user/d${i}`;
      const reply = await r.ask(actor, "hi", i) as { node: string };
      assert.equal(reply.node, rendezvousStrategy(actor, ["n1", "n3"]));
    }
    // An actor the draining node already holds is still sent there.
    const held = "group/held";
    await c.placement.claim(held, "n2", { leaseMs: 60_000, minEpoch: 1 });
    assert.equal((await r.ask(held, "x", 0) as { node: string }).node, "n2");
  } finally {
    await c.close();
  }
});

Deno.test("when every live node is draining, a message to an unplaced actor fails at once with unavailable", async () => {
  const c = await cluster(["n1", "n2"]);
  try {
    await c.get("n1").membership.drain();
    await c.get("n2").membership.drain();
    const r = c.get("n1").router;
    // An actor a draining node holds is still reached.
    await c.placement.claim("group/held", "n2", { leaseMs: 60_000, minEpoch: 1 });
    assert.equal((await r.ask("group/held", "x", 0) as { node: string }).node, "n2");
    const started = Date.now();
    await assert.rejects(
      r.ask("user/new", "x", 1, { deadline: Date.now() + 5_000 }),
      (e: ImError) => e.code === "unavailable",
    );
    // Not after re-sends until the deadline: nowhere to place it, so no re-send at all.
    assert.ok(Date.now() - started < 1_000, `took ${Date.now() - started} ms`);
    assert.equal(r.stats().retries, 0);
  } finally {
    await c.close();
  }
});

Deno.test("the router keeps re-resolving, with backoff, while a handed-off actor is unplaced", async () => {
  const c = await cluster(["n1", "n2"]);
  try {
    const actor = "group/handoff";
    // A node outside the live view still holds the record (as a draining node does until its
    // hand-off completes): every live node's claim fails and answers moved.
    const { record } = await c.placement.claim(actor, "n9", { leaseMs: 60_000, minEpoch: 1 });
    const timer = setTimeout(() => void c.placement.release(actor, "n9", record.epoch), 150);
    const r = c.get("n1").router;
    try {
      const reply = await r.ask(actor, "x", 1, { deadline: Date.now() + 5_000 }) as {
        node: string;
      };
      assert.equal(reply.node, rendezvousStrategy(actor, ["n1", "n2"]));
    } finally {
      clearTimeout(timer);
    }
    assert.ok(r.stats().retries >= 2, `retries ${r.stats().retries}`);
    assert.ok(r.stats().moves >= 2);
  } finally {
    await c.close();
  }
});

Deno.test("a message that keeps meeting moved ends with the router's give-up, within its deadline", async () => {
  const c = await cluster(["n1", "n2"]);
  try {
    await c.placement.claim("group/stuck", "n9", { leaseMs: 60_000, minEpoch: 1 });
    const r = c.get("n1").router;
    const started = Date.now();
    await assert.rejects(
      r.ask("group/stuck", "x", 1, { deadline: Date.now() + 3_000 }),
      (e: ImError) => e.code === "moved" || e.code === "timeout",
    );
    assert.ok(Date.now() - started < 3_500);
  } finally {
    await c.close();
  }
});
