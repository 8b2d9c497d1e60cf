import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import { AckWriter } from "./ack_writer.ts";
import type { AckWrite, AckWriteResult } from "../../db/store.ts";
import { UnavailableError } from "../errors.ts";

/** A store that records each call and answers as told (default: all ok). */
class FakeStore {
  calls: AckWrite[][] = [];
  fail = false;
  fenced = new Set<string>();
  gate: Promise<void> | null = null;
  async saveAcks(batch: AckWrite[]): Promise<AckWriteResult[]> {
    this.calls.push(batch);
    if (this.gate) await this.gate;
    if (this.fail) throw new UnavailableError("store down");
    return batch.map((w) => (this.fenced.has(`${w.actorId}@${w.epoch}`) ? "fenced" : "ok"));
  }
}

function setup(store: FakeStore) {
  const warnings: string[] = [];
  const fencedSeen: string[] = [];
  const writer = new AckWriter(store, {
    intervalMs: 500,
    retryMs: 2000,
    logger: { warn: (m) => void warnings.push(m) },
    onFenced: (a, e) => void fencedSeen.push(`${a}@${e}`),
  });
  return { writer, warnings, fencedSeen };
}

function fake() {
  return FakeTimers.withGlobal(globalThis).install({
    now: 0,
    toFake: ["setTimeout", "clearTimeout", "Date"],
  });
}

const sortBatch = (b: AckWrite[]) =>
  [...b].sort((x, y) => `${x.actorId}${x.device}`.localeCompare(`${y.actorId}${y.device}`));

Deno.test("the cursors of every actor marked within an interval go out in one store call", async () => {
  const clock = fake();
  try {
    const store = new FakeStore();
    const { writer } = setup(store);
    assert.equal(clock.countTimers(), 0, "no timer while nothing is pending");
    writer.mark("user/a", 1, "a", "phone", 3);
    writer.mark("user/a", 1, "a", "phone", 5);
    writer.mark("user/a", 1, "a", "phone", 4); // behind: ignored
    writer.mark("user/a", 1, "a", "laptop", 1);
    writer.mark("user/b", 7, "b", "phone", 9);
    await clock.tickAsync(499);
    assert.equal(store.calls.length, 0);
    await clock.tickAsync(1);
    assert.equal(store.calls.length, 1);
    assert.deepEqual(sortBatch(store.calls[0]), [
      { actorId: "user/a", epoch: 1, userId: "a", device: "laptop", seq: 1 },
      { actorId: "user/a", epoch: 1, userId: "a", device: "phone", seq: 5 },
      { actorId: "user/b", epoch: 7, userId: "b", device: "phone", seq: 9 },
    ]);
    await clock.tickAsync(5000);
    assert.equal(store.calls.length, 1, "nothing pending: no more writes");
    assert.equal(clock.countTimers(), 0);
  } finally {
    clock.uninstall();
  }
});

Deno.test("a newer epoch of an actor replaces its pending cursors; an older one is ignored", async () => {
  const clock = fake();
  try {
    const store = new FakeStore();
    const { writer } = setup(store);
    writer.mark("user/a", 1, "a", "phone", 8);
    writer.mark("user/a", 2, "a", "tablet", 2);
    writer.mark("user/a", 1, "a", "laptop", 3);
    await writer.flush();
    assert.deepEqual(store.calls, [[
      { actorId: "user/a", epoch: 2, userId: "a", device: "tablet", seq: 2 },
    ]]);
  } finally {
    clock.uninstall();
  }
});

Deno.test("fenced entries are dropped and reported; the others are written", async () => {
  const clock = fake();
  try {
    const store = new FakeStore();
    store.fenced.add("user/z@3");
    const { writer, fencedSeen, warnings } = setup(store);
    writer.mark("user/z", 3, "z", "phone", 1);
    writer.mark("user/z", 3, "z", "laptop", 1);
    writer.mark("user/b", 1, "b", "phone", 1);
    await writer.flush();
    assert.deepEqual(fencedSeen, ["user/z@3"]);
    assert.deepEqual(warnings, ["fenced ack write rejected"]);
    await clock.tickAsync(10_000);
    assert.equal(store.calls.length, 1, "fenced entries are not retried");
  } finally {
    clock.uninstall();
  }
});

Deno.test("a failed write is retried later with what was marked meanwhile, and flushActor reports it", async () => {
  const clock = fake();
  try {
    const store = new FakeStore();
    store.fail = true;
    const { writer, warnings } = setup(store);
    writer.mark("user/a", 1, "a", "phone", 5);
    await assert.rejects(writer.flushActor("user/a"), UnavailableError);
    assert.equal(writer.pending, 1, "kept for a retry");
    assert.deepEqual(warnings, ["ack cursors not written; retrying"]);
    writer.mark("user/a", 1, "a", "phone", 6);
    store.fail = false;
    await clock.tickAsync(1999);
    assert.equal(store.calls.length, 1);
    await clock.tickAsync(1);
    assert.equal(store.calls.length, 2);
    assert.deepEqual(store.calls[1], [
      { actorId: "user/a", epoch: 1, userId: "a", device: "phone", seq: 6 },
    ]);
    assert.equal(writer.pending, 0);
  } finally {
    clock.uninstall();
  }
});

Deno.test("flushActor waits for the write in flight that carries the actor, and writes what is pending", async () => {
  const clock = fake();
  try {
    const store = new FakeStore();
    const { writer } = setup(store);
    await writer.flushActor("user/none"); // nothing pending: at once
    assert.equal(store.calls.length, 0);
    let open!: () => void;
    store.gate = new Promise((r) => open = r);
    writer.mark("user/a", 1, "a", "phone", 1);
    const first = writer.flush();
    writer.mark("user/b", 1, "b", "phone", 1); // pending behind the write in flight
    let aDone = false, bDone = false;
    const a = writer.flushActor("user/a").then(() => aDone = true);
    const b = writer.flushActor("user/b").then(() => bDone = true);
    await clock.tickAsync(0);
    assert.equal(aDone || bDone, false);
    store.gate = null;
    open();
    await Promise.all([first, a, b]);
    assert.deepEqual(store.calls.map((c) => c.map((w) => w.actorId)), [["user/a"], ["user/b"]]);
  } finally {
    clock.uninstall();
  }
});

Deno.test("close writes what is pending and stops the timer", async () => {
  const clock = fake();
  try {
    const store = new FakeStore();
    const { writer } = setup(store);
    writer.mark("user/a", 1, "a", "phone", 1);
    await writer.close();
    assert.equal(store.calls.length, 1);
    assert.equal(clock.countTimers(), 0);
  } finally {
    clock.uninstall();
  }
});
