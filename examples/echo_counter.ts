/**
 * A custom actor kind on the public API: a counter that echoes, counts, ticks on a timer,
 * snapshots its state, answers late with `defer`, and asks another actor.
 *
 * It runs on one node built from the embedded adapters (memory placement, membership and
 * transport, and the SQLite store in a temporary directory) and talks to its actors through
 * the router, exactly as the gateway does.
 *
 *     deno run -A examples/echo_counter.ts
 *
 * @module
 */
import { ActorHost, BadRequestError, defineBehavior, ImError } from "../actors/mod.ts";
import { MemoryMembership, MemoryPlacement, MemoryTransport, Router } from "../cluster/mod.ts";
import { openSqliteStore } from "../db/store_sqlite.ts";

/** What every actor of this node can use (`ctx.services`). */
interface Services {
  now: () => number;
}

/** The counter's state; it is MessagePack-encoded into snapshots as it is. */
interface CounterState {
  count: number;
  ticks: number;
  activatedAt: number;
}

const counter = defineBehavior<CounterState, Services>({
  kind: "counter",
  initialState: (_key) => ({ count: 0, ticks: 0, activatedAt: 0 }),
  // Snapshot after every 10 successful turns, on ctx.snapshot(), and on passivation.
  snapshot: { everyTurns: 10 },
  // Passivate after 2 s without a message (the node default is 5 minutes).
  passivateAfterMs: 2_000,
  onActivate(ctx) {
    ctx.state.activatedAt = ctx.services.now();
  },
  handlers: {
    echo: (_ctx, body: { text?: unknown }) => {
      if (typeof body?.text !== "string") throw new BadRequestError("echo needs a text");
      return body.text;
    },
    add: (ctx, body: { by?: unknown }) => {
      if (!Number.isInteger(body?.by)) throw new BadRequestError("add needs an integer `by`");
      ctx.state.count += body.by as number;
      ctx.emit("changed", { count: ctx.state.count });
      return ctx.state.count;
    },
    get: (ctx) => ({ count: ctx.state.count, ticks: ctx.state.ticks, epoch: ctx.epoch }),
    startTicking: (ctx, body: { everyMs: number }) => {
      // The timer sends `tick` to this actor: it runs as an ordinary turn, never concurrently.
      ctx.setTimer("tick", body.everyMs, "tick", undefined, true);
    },
    tick: (ctx) => {
      ctx.state.ticks++;
      if (ctx.state.ticks >= 3) ctx.cancelTimer("tick");
    },
    save: async (ctx) => {
      await ctx.snapshot();
      return { savedCount: ctx.state.count, epoch: ctx.epoch };
    },
    // Ends the turn at once; the caller gets the answer when the work is done while this actor
    // goes on with its next messages.
    slowDouble: (ctx) => {
      const count = ctx.state.count;
      return ctx.defer(new Promise<number>((r) => setTimeout(() => r(count * 2), 50)));
    },
    // Actor-to-actor: through the router, so it works wherever `to` lives.
    bump: async (ctx, body: { to: string }) => await ctx.ask<number>(body.to, "add", { by: 1 }),
  },
});

const dataDir = await Deno.makeTempDir({ prefix: "echo_counter_" });
const store = openSqliteStore(`${dataDir}/im.sqlite`);
await store.migrate();
const nodeId = `n_${crypto.randomUUID().slice(0, 8)}`;
const membership = new MemoryMembership();
await membership.join({ id: nodeId, address: "http://127.0.0.1:0", startedAt: Date.now() });
const placement = new MemoryPlacement();
const transport = new MemoryTransport({ nodeId });
const router = new Router({ nodeId, transport, placement, membership });
const host = new ActorHost<Services>({
  nodeId,
  store,
  placement,
  membership,
  services: { now: Date.now },
  send: router,
});
host.register(counter);
await transport.serve((envelope) => host.receive(envelope));

// Hooks: a moderation rule before `add`, an observer after `changed`.
host.hooks.beforeAccept("counter", "add", ({ body }) => {
  if ((body as { by?: number })?.by === 13) throw new ImError("forbidden", "13 is unlucky");
});
host.hooks.after("counter", "changed", ({ actorId, payload }) => {
  console.log(`  [after-hook] ${actorId} changed:`, payload);
});

const id = "counter/demo";
try {
  console.log("echo →", await router.ask(id, "echo", { text: "hello, actor" }));
  for (const by of [1, 2, 3]) console.log(`add ${by} →`, await router.ask(id, "add", { by }));
  try {
    await router.ask(id, "add", { by: 13 });
  } catch (err) {
    console.log("add 13 → refused by the hook:", (err as ImError).code);
  }
  try {
    await router.ask(id, "echo", {});
  } catch (err) {
    console.log("echo {} →", (err as ImError).code);
  }

  await router.ask(id, "startTicking", { everyMs: 100 });
  await new Promise((r) => setTimeout(r, 450));
  console.log("after 450 ms of ticking →", await router.ask(id, "get", null));

  console.log("slowDouble (deferred) →", await router.ask(id, "slowDouble", null));
  console.log(
    "counter/other bumps counter/demo →",
    await router.ask("counter/other", "bump", { to: id }),
  );
  console.log("save →", await router.ask(id, "save", null));

  await host.passivate(id);
  console.log("passivated; active here:", host.isActive(id));
  console.log("re-activated from the snapshot →", await router.ask(id, "get", null));
  console.log("activation log:", host.activationLog());
  console.log("stats:", host.stats());
} finally {
  await host.stopAll(); // graceful hand-off: snapshots written, placements released
  await host.close();
  await transport.close();
  await membership.leave();
  await placement.close();
  await store.close();
  await Deno.remove(dataDir, { recursive: true });
}
