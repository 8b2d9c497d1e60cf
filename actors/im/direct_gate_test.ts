import assert from "node:assert/strict";
import type { ActorContext, MessageMeta } from "../behavior.ts";
import { ImError } from "../errors.ts";
import {
  checkDirect,
  directSocialHandlers,
  type Gate,
  GATE_TIMING,
  type GatedDirectState,
} from "./direct_gate.ts";
import type { ImServices } from "./services.ts";

/** A direct actor context for `u_a:u_b` whose asks are answered from `gates` and counted. */
function fixture(gates: Record<string, Gate>) {
  let now = 1_000_000;
  const asks: string[] = [];
  const ctx = {
    id: "direct/u_a:u_b",
    kind: "direct",
    key: "u_a:u_b",
    epoch: 1,
    state: { a: "u_a", b: "u_b", valid: true } as GatedDirectState,
    services: { now: () => now } as unknown as ImServices,
    ask: (to: string) => {
      asks.push(to);
      return Promise.resolve({ ...gates[to.slice("user/".length)] });
    },
  } as unknown as ActorContext<GatedDirectState, ImServices>;
  return { ctx, asks, advance: (ms: number) => now += ms };
}

const open: Gate = { blocks: false, friend: false, strangers: "anyone", rev: 1 };

async function code(p: Promise<unknown>): Promise<string | null> {
  try {
    await p;
    return null;
  } catch (err) {
    return (err as ImError).code;
  }
}

Deno.test("gates are read once, used from the cache within the TTL, and read again after it", async () => {
  const { ctx, asks, advance } = fixture({ u_a: open, u_b: open });
  await checkDirect(ctx, "u_a");
  assert.deepEqual(asks.sort(), ["user/u_a", "user/u_b"]);
  await checkDirect(ctx, "u_b");
  assert.equal(asks.length, 2, "no ask within the TTL");
  advance(GATE_TIMING.ttlMs);
  await checkDirect(ctx, "u_a");
  assert.equal(asks.length, 4);
});

Deno.test("a block either way refuses with blocked; a friends-only recipient refuses strangers", async () => {
  const blocking = fixture({ u_a: open, u_b: { ...open, blocks: true } });
  assert.equal(await code(checkDirect(blocking.ctx, "u_a")), "blocked");
  assert.equal(await code(checkDirect(blocking.ctx, "u_b")), "blocked");
  const picky = fixture({ u_a: open, u_b: { ...open, strangers: "friends" } });
  assert.equal(await code(checkDirect(picky.ctx, "u_a")), "not_friend");
  assert.equal(await code(checkDirect(picky.ctx, "u_b")), null, "a may still write to b");
  const friends = fixture({ u_a: open, u_b: { ...open, strangers: "friends", friend: true } });
  assert.equal(await code(checkDirect(friends.ctx, "u_a")), null);
});

Deno.test("pushed updates apply in revision order and only from the participant's own actor", async () => {
  const { ctx, asks } = fixture({ u_a: open, u_b: open });
  const update = directSocialHandlers["social.update"];
  const from = (sender: string) => ({ type: "social.update", sender }) as MessageMeta;
  update(ctx, { user: "u_b", gate: { ...open, blocks: true, rev: 5 } }, from("user/u_b"));
  update(ctx, { user: "u_b", gate: { ...open, rev: 4 } }, from("user/u_b"));
  assert.equal(await code(checkDirect(ctx, "u_a")), "blocked");
  assert.deepEqual(asks, ["user/u_a"], "b's gate came from the push");
  assert.throws(
    () => update(ctx, { user: "u_b", gate: open }, from("c1")),
    (e) => e instanceof ImError && e.code === "forbidden",
  );
  assert.throws(
    () => update(ctx, { user: "u_c", gate: open }, from("user/u_c")),
    (e) => e instanceof ImError && e.code === "not_member",
  );
});
