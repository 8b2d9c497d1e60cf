/**
 * The contract every {@link Transport} adapter keeps; each adapter's test file runs it once.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Delivery, Envelope, Transport } from "./transport.ts";
import { ImError, NotMemberError } from "../actors/errors.ts";

/** One test's network; every transport opened on it can reach the others. */
export interface TransportHarness {
  /** A transport for `nodeId` on this test's network (not serving yet). */
  open(nodeId: string): Promise<Transport>;
  /** Closes every transport opened and frees the test's resources. */
  cleanup(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const env = (to: string, type: string, body: unknown, ms = 2_000): Envelope => ({
  to,
  type,
  body,
  deadline: Date.now() + ms,
});

async function rejection(p: Promise<unknown>): Promise<ImError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ImError, `expected an ImError, got ${err}`);
    return err;
  }
  assert.fail("expected a rejection");
}

async function until(what: string, check: () => boolean, timeoutMs = 3_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await sleep(5);
  }
}

/** Registers the transport contract's Deno tests for one adapter. */
export function runTransportContract(name: string, factory: () => Promise<TransportHarness>) {
  const test = (title: string, fn: (h: TransportHarness) => Promise<void>) =>
    Deno.test(`${name}: ${title}`, async () => {
      const h = await factory();
      try {
        await fn(h);
      } finally {
        await h.cleanup();
      }
    });

  test("a request reaches the other node's handler and resolves with its value", async (h) => {
    const a = await h.open("a");
    const b = await h.open("b");
    await a.serve(() => Promise.resolve("not me"));
    const seen: Envelope[] = [];
    await b.serve((e) => {
      seen.push(e);
      return Promise.resolve({ echo: e.body, type: e.type, n: [1, 2.5, -3], ok: true });
    });
    const body = { text: "héllo", list: [1, 2, 3], nested: { x: null }, big: 2 ** 40 };
    const reply = await a.request("b", { ...env("user/1", "ping", body), sender: "conn-1" });
    assert.deepEqual(reply, { echo: body, type: "ping", n: [1, 2.5, -3], ok: true });
    assert.equal(seen.length, 1);
    assert.equal(seen[0].to, "user/1");
    assert.equal(seen[0].sender, "conn-1");
    assert.deepEqual(seen[0].body, body);
    // Binary payloads arrive as byte arrays (possibly a Uint8Array subclass such as Buffer).
    const bytes = await a.request("b", env("user/1", "bin", new Uint8Array([0, 1, 255])));
    const echoed = (bytes as { echo: Uint8Array }).echo;
    assert.ok(echoed instanceof Uint8Array);
    assert.deepEqual([...echoed], [0, 1, 255]);
  });

  test("a request to this node itself is handled here", async (h) => {
    const a = await h.open("a");
    await a.serve((e) => Promise.resolve(`local ${e.type}`));
    assert.equal(await a.request("a", env("user/1", "hi", null)), "local hi");
  });

  test("a handler's ImError reaches the caller with its code and message", async (h) => {
    const a = await h.open("a");
    const b = await h.open("b");
    await a.serve(() => Promise.resolve(null));
    await b.serve((e) => {
      if (e.type === "sync-throw") throw new ImError("moved", "moved away");
      if (e.type === "plain") return Promise.reject(new Error("secret detail"));
      return Promise.reject(new NotMemberError());
    });
    for (const target of ["a", "b"]) {
      const t = target === "a" ? a : b;
      const err = await rejection(t.request("b", env("group/1", "send", {})));
      assert.equal(err.code, "not_member");
      assert.equal(err.message, new NotMemberError().message);
    }
    assert.equal((await rejection(a.request("b", env("x/1", "sync-throw", 1)))).code, "moved");
    const plain = await rejection(a.request("b", env("x/1", "plain", 1)));
    assert.equal(plain.code, "internal");
    assert.ok(!plain.message.includes("secret"), "internal details do not cross nodes");
  });

  test("a request whose deadline passes first rejects with code timeout", async (h) => {
    const a = await h.open("a");
    const b = await h.open("b");
    let release = () => {};
    const never = new Promise<unknown>((r) => release = () => r("late"));
    await a.serve(() => never);
    await b.serve(() => never);
    try {
      for (const target of ["a", "b"]) {
        const start = Date.now();
        const err = await rejection(a.request(target, env("user/1", "slow", null, 150)));
        const took = Date.now() - start;
        assert.equal(err.code, "timeout");
        assert.ok(took >= 140 && took < 1_000, `took ${took} ms`);
      }
    } finally {
      release();
    }
  });

  test("an envelope already past its deadline is not run", async (h) => {
    const a = await h.open("a");
    const b = await h.open("b");
    let runs = 0;
    await a.serve(() => Promise.resolve(runs++));
    await b.serve(() => Promise.resolve(runs++));
    for (const target of ["a", "b"]) {
      const e = { ...env("user/1", "late", null), deadline: Date.now() - 1 };
      assert.equal((await rejection(a.request(target, e))).code, "timeout");
    }
    await sleep(50);
    assert.equal(runs, 0);
  });

  test("many concurrent requests each get their own reply", async (h) => {
    const a = await h.open("a");
    const b = await h.open("b");
    await a.serve(() => Promise.resolve(null));
    await b.serve(async (e) => {
      const n = e.body as number;
      if (n % 3 === 0) await sleep(n % 7);
      if (n % 11 === 0) throw new ImError("not_found", `no ${n}`);
      return n * 2;
    });
    const results = await Promise.allSettled(
      Array.from({ length: 2_000 }, (_, i) => a.request("b", env(`user/${i}`, "double", i))),
    );
    results.forEach((r, i) => {
      if (i % 11 === 0) {
        assert.equal(r.status, "rejected");
        assert.equal((r as PromiseRejectedResult).reason.message, `no ${i}`);
      } else {
        assert.deepEqual(r, { status: "fulfilled", value: i * 2 });
      }
    });
  });

  test("tells and requests from one node are handled in send order", async (h) => {
    const a = await h.open("a");
    const b = await h.open("b");
    await a.serve(() => Promise.resolve(null));
    const order: number[] = [];
    await b.serve((e) => {
      order.push(e.body as number);
      return Promise.resolve(null);
    });
    const replies: Promise<unknown>[] = [];
    for (let i = 0; i < 3_000; i++) {
      if (i % 10 === 9) replies.push(a.request("b", env("user/1", "n", i)));
      else a.tell("b", env("user/1", "n", i));
      if (i % 500 === 0) await sleep(1);
    }
    await Promise.all(replies);
    await until("all tells arrived", () => order.length === 3_000);
    assert.deepEqual(order, Array.from({ length: 3_000 }, (_, i) => i));
  });

  test("deliveries are batched per node and all of them arrive in order", async (h) => {
    const a = await h.open("a");
    const b = await h.open("b");
    const c = await h.open("c");
    const got = new Map<string, Delivery[][]>([["a", []], ["b", []], ["c", []]]);
    for (const [id, t] of [["a", a], ["b", b], ["c", c]] as const) {
      await t.serve(() => Promise.resolve(null));
      t.onDeliveries((batch) => got.get(id)!.push(batch));
    }
    const sent = new Map<string, Delivery[]>([["a", []], ["b", []], ["c", []]]);
    for (let i = 0; i < 900; i++) {
      const node = ["a", "b", "c"][i % 3];
      const d: Delivery = {
        frame: { op: "msg", mid: `m${i}`, body: { type: "text", text: `hi ${i}` } },
        users: [`u${i}`, `v${i}`],
        seqs: [i, i + 1],
      };
      if (i % 2 === 0) delete d.seqs;
      sent.get(node)!.push(d);
      a.deliver(node, d);
    }
    const count = (id: string) => got.get(id)!.reduce((s, batch) => s + batch.length, 0);
    await until("every delivery arrived", () => ["a", "b", "c"].every((id) => count(id) === 300));
    for (const id of ["a", "b", "c"]) {
      assert.ok(got.get(id)!.length < 30, `${got.get(id)!.length} batches for 300 deliveries`);
      assert.deepEqual(got.get(id)!.flat(), sent.get(id));
    }
  });

  test("a request to a node nobody serves rejects with unavailable or timeout", async (h) => {
    const a = await h.open("a");
    await a.serve(() => Promise.resolve(null));
    const start = Date.now();
    const err = await rejection(a.request("ghost", env("user/1", "hi", null, 500)));
    assert.ok(["unavailable", "timeout"].includes(err.code), err.code);
    assert.ok(Date.now() - start < 2_000);
    a.tell("ghost", env("user/1", "hi", null));
    a.deliver("ghost", { frame: { op: "x" }, users: ["u"] });
  });

  test("a node that closed is no longer reachable, and a closed transport refuses requests", async (h) => {
    const a = await h.open("a");
    const b = await h.open("b");
    await a.serve(() => Promise.resolve("a"));
    await b.serve(() => Promise.resolve("b"));
    assert.equal(await a.request("b", env("user/1", "hi", null)), "b");
    await b.close();
    const err = await rejection(a.request("b", env("user/1", "hi", null, 500)));
    assert.ok(["unavailable", "timeout"].includes(err.code), err.code);
    await a.close();
    assert.equal((await rejection(a.request("a", env("user/1", "hi", null)))).code, "unavailable");
  });
}
