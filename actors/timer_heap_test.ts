import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import { HeapTimer, TimerHeap } from "./timer_heap.ts";

class Named extends HeapTimer {
  constructor(readonly name: string) {
    super();
  }
}

function fake() {
  return FakeTimers.withGlobal(globalThis).install({
    now: 1_000,
    toFake: ["setTimeout", "clearTimeout", "Date", "performance"],
  });
}

Deno.test("timers fire at their due time, in due order, equal dues in scheduling order", async () => {
  const clock = fake();
  try {
    const fired: string[] = [];
    const heap = new TimerHeap<Named>((t) => fired.push(`${t.name}@${Date.now()}`), Date.now);
    const at = (name: string, delay: number) => heap.schedule(new Named(name), Date.now() + delay);
    at("c", 300);
    at("a", 100);
    at("b1", 200);
    at("b2", 200);
    at("d", 1000);
    assert.equal(clock.countTimers(), 1, "one native timer for all of them");
    await clock.tickAsync(99);
    assert.deepEqual(fired, []);
    await clock.tickAsync(1);
    assert.deepEqual(fired, ["a@1100"]);
    await clock.tickAsync(200);
    assert.deepEqual(fired, ["a@1100", "b1@1200", "b2@1200", "c@1300"]);
    await clock.tickAsync(700);
    assert.equal(fired.at(-1), "d@2000");
    assert.equal(heap.size, 0);
    assert.equal(clock.countTimers(), 0, "no native timer left when empty");
  } finally {
    clock.uninstall();
  }
});

Deno.test("a removed timer never fires; rescheduling moves it; an earlier one re-arms", async () => {
  const clock = fake();
  try {
    const fired: string[] = [];
    const heap = new TimerHeap<Named>((t) => fired.push(t.name), Date.now);
    const a = new Named("a");
    const b = new Named("b");
    const c = new Named("c");
    heap.schedule(a, Date.now() + 500);
    heap.schedule(b, Date.now() + 600);
    heap.remove(a);
    heap.remove(a); // idempotent
    heap.schedule(b, Date.now() + 50); // moved earlier
    heap.schedule(c, Date.now() + 10); // earlier than the armed one
    await clock.tickAsync(10);
    assert.deepEqual(fired, ["c"]);
    await clock.tickAsync(40);
    assert.deepEqual(fired, ["c", "b"]);
    await clock.tickAsync(1000);
    assert.deepEqual(fired, ["c", "b"]);
    assert.equal(a.index, -1);
    heap.schedule(a, Date.now() + 5);
    heap.clear();
    await clock.tickAsync(100);
    assert.deepEqual(fired, ["c", "b"]);
    assert.equal(clock.countTimers(), 0);
  } finally {
    clock.uninstall();
  }
});

Deno.test("an entry scheduled from onFire waits for the next round, even when already due", async () => {
  const clock = fake();
  try {
    let n = 0;
    const t = new Named("again");
    const heap: TimerHeap<Named> = new TimerHeap<Named>((e) => {
      n++;
      if (n < 3) heap.schedule(e, heap.now()); // due at once: must not loop in this round
    });
    heap.scheduleIn(t, 10); // on the default clock, performance.now()
    await clock.tickAsync(10);
    assert.equal(n, 1);
    for (let i = 0; i < 5; i++) await clock.tickAsync(1);
    assert.equal(n, 3);
    assert.equal(heap.size, 0);
  } finally {
    clock.uninstall();
  }
});

Deno.test("random schedules and removals fire exactly the live entries, each at or after its due", async () => {
  const clock = fake();
  try {
    const fired = new Map<string, number>();
    const heap = new TimerHeap<Named & { want: number }>((t) => {
      assert.ok(Date.now() >= t.want, `${t.name} fired early`);
      fired.set(t.name, Date.now());
    }, Date.now);
    const live = new Map<string, Named & { want: number }>();
    let seed = 7;
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let i = 0; i < 500; i++) {
      const e = Object.assign(new Named(`t${i}`), { want: 0 });
      e.want = Date.now() + rnd(1000);
      heap.schedule(e, e.want);
      live.set(e.name, e);
      if (rnd(3) === 0) {
        const victim = `t${rnd(i + 1)}`;
        const v = live.get(victim);
        if (v && !fired.has(victim)) {
          heap.remove(v);
          live.delete(victim);
        }
      }
      if (rnd(10) === 0) await clock.tickAsync(rnd(50));
    }
    await clock.tickAsync(2000);
    for (const name of fired.keys()) assert.ok(live.has(name), `${name} was removed but fired`);
    for (const name of live.keys()) if (!fired.has(name)) assert.fail(`${name} never fired`);
  } finally {
    clock.uninstall();
  }
});
