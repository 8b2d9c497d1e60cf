import assert from "node:assert/strict";
import fc from "fast-check";
import { DeferredReply, Mailbox } from "./mailbox.ts";
import { DeadlineExceededError, ImError, MailboxFullError, MovedError } from "./errors.ts";

/** Yields to the event loop `n` times (lets other turns try to interleave). */
async function yieldTimes(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setTimeout(r, 0));
}

Deno.test("a mailbox runs one turn at a time, in enqueue order, under many concurrent enqueues", async () => {
  let inTurn = 0;
  let maxInTurn = 0;
  const order: number[] = [];
  const mb = new Mailbox<number>({
    owner: "t/1",
    capacity: 1000,
    run: async (n) => {
      inTurn++;
      maxInTurn = Math.max(maxInTurn, inTurn);
      await yieldTimes(n % 3);
      order.push(n);
      inTurn--;
      return n * 2;
    },
  });
  const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => mb.enqueue(i)));
  assert.equal(maxInTurn, 1);
  assert.deepEqual(order, Array.from({ length: 200 }, (_, i) => i));
  assert.deepEqual(replies, Array.from({ length: 200 }, (_, i) => i * 2));
});

Deno.test("a mailbox keeps every sender's order whatever the interleaving of senders", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 60 }),
      async (senders) => {
        const seen: { sender: number; seq: number }[] = [];
        const mb = new Mailbox<{ sender: number; seq: number }>({
          owner: "t/order",
          capacity: 100,
          run: async (m) => {
            if (m.seq % 2 === 0) await Promise.resolve();
            seen.push(m);
          },
        });
        const next = new Map<number, number>();
        const all: Promise<unknown>[] = [];
        for (const sender of senders) {
          const seq = next.get(sender) ?? 0;
          next.set(sender, seq + 1);
          all.push(mb.enqueue({ sender, seq }));
        }
        await Promise.all(all);
        for (const [sender, count] of next) {
          const mine = seen.filter((m) => m.sender === sender).map((m) => m.seq);
          assert.deepEqual(mine, Array.from({ length: count }, (_, i) => i));
        }
      },
    ),
    { numRuns: 50 },
  );
});

Deno.test("an entry whose deadline passed before its turn is dropped and its turn never runs", async () => {
  let now = 1_000;
  const ran: string[] = [];
  const gate = Promise.withResolvers<void>();
  const mb = new Mailbox<string>({
    owner: "t/deadline",
    capacity: 10,
    clock: () => now,
    run: async (item) => {
      ran.push(item);
      if (item === "slow") await gate.promise;
      return item;
    },
  });
  const slow = mb.enqueue("slow");
  const late = mb.enqueue("late", { deadline: 1_050 });
  const inTime = mb.enqueue("in-time", { deadline: 2_000 });
  const noDeadline = mb.enqueue("none");
  await yieldTimes(1);
  now = 1_100; // the slow turn outlived "late"'s deadline
  gate.resolve();
  assert.equal(await slow, "slow");
  await assert.rejects(late, (err: unknown) => {
    assert.ok(err instanceof DeadlineExceededError);
    assert.equal(err.code, "timeout");
    return true;
  });
  assert.equal(await inTime, "in-time");
  assert.equal(await noDeadline, "none");
  assert.deepEqual(ran, ["slow", "in-time", "none"]);
});

Deno.test("a full mailbox refuses with code overloaded and enqueues nothing", async () => {
  const ran: number[] = [];
  const mb = new Mailbox<number>({
    owner: "t/full",
    capacity: 2,
    paused: true,
    run: (n) => ran.push(n),
  });
  const a = mb.enqueue(1);
  const b = mb.enqueue(2);
  assert.throws(() => mb.enqueue(3), (err: unknown) => {
    assert.ok(err instanceof MailboxFullError);
    assert.equal(err.code, "overloaded");
    return true;
  });
  assert.equal(mb.depth, 2);
  // The runtime's own entries (e.g. the passivation turn) are never refused.
  const forced = mb.enqueue(4, { force: true });
  mb.start();
  await Promise.all([a, b, forced]);
  assert.deepEqual(ran, [1, 2, 4]);
  assert.equal(mb.depth, 0);
  assert.throws(() => new Mailbox<number>({ owner: "x", capacity: 0, run: () => {} }), RangeError);
});

Deno.test("a deferred reply ends the turn at once and settles the entry later", async () => {
  const work = Promise.withResolvers<string>();
  const failing = Promise.withResolvers<string>();
  const order: string[] = [];
  const mb = new Mailbox<string>({
    owner: "t/defer",
    capacity: 10,
    run: (item) => {
      order.push(item);
      if (item === "deferred") return new DeferredReply(work.promise);
      if (item === "deferred-fail") return new DeferredReply(failing.promise);
      return item;
    },
  });
  const first = mb.enqueue("deferred");
  const second = mb.enqueue("deferred-fail");
  const third = mb.enqueue("plain");
  // The later turns finish while the first reply is still pending (pipelining).
  assert.equal(await third, "plain");
  assert.deepEqual(order, ["deferred", "deferred-fail", "plain"]);
  failing.reject(new ImError("unavailable", "store down"));
  await assert.rejects(second, { code: "unavailable" });
  work.resolve("done");
  assert.equal(await first, "done");
});

Deno.test("a throwing turn rejects only its own entry and the next turn still runs", async () => {
  const mb = new Mailbox<number>({
    owner: "t/throw",
    capacity: 10,
    run: (n) => {
      if (n === 1) throw new ImError("bad_request", "no");
      return n;
    },
  });
  const results = await Promise.allSettled([mb.enqueue(0), mb.enqueue(1), mb.enqueue(2)]);
  assert.equal(results[0].status, "fulfilled");
  assert.equal(results[1].status, "rejected");
  assert.deepEqual(results[2], { status: "fulfilled", value: 2 });
});

Deno.test("closing a mailbox rejects the waiting entries, lets the running turn finish, refuses new ones", async () => {
  const gate = Promise.withResolvers<void>();
  let idle = 0;
  const mb = new Mailbox<string>({
    owner: "t/close",
    capacity: 10,
    run: async (item) => {
      if (item === "running") await gate.promise;
      return item;
    },
    onIdle: () => idle++,
  });
  const running = mb.enqueue("running");
  const waiting = mb.enqueue("waiting");
  await yieldTimes(1);
  assert.equal(mb.running, true);
  mb.close(() => new MovedError("t/close"));
  await assert.rejects(waiting, { code: "moved" });
  assert.throws(() => mb.enqueue("late"), { code: "moved" });
  gate.resolve();
  assert.equal(await running, "running");
  assert.equal(mb.closed, true);
  assert.equal(idle, 0);
});

Deno.test("a mailbox reports idle once its last turn has finished", async () => {
  let idle = 0;
  const mb = new Mailbox<number>({ owner: "t/idle", capacity: 10, run: (n) => n });
  const mb2 = new Mailbox<number>({
    owner: "t/idle2",
    capacity: 10,
    run: (n) => n,
    onIdle: () => idle++,
  });
  assert.equal(mb.idle, true);
  const p = mb2.enqueue(1);
  const q = mb2.enqueue(2);
  assert.equal(mb2.idle, false);
  await Promise.all([p, q]);
  await Promise.resolve();
  assert.equal(mb2.idle, true);
  assert.equal(idle, 1);
});
