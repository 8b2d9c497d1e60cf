import assert from "node:assert/strict";
import { UnavailableError } from "../actors/errors.ts";
import { GroupCommit } from "./group_commit.ts";
import { openSqliteStore } from "./store_sqlite.ts";
import type { AppendRequest, AppendResult, Store } from "./store.ts";

function request(n: number, conv = "g:g_1"): AppendRequest {
  return {
    actorId: `group/${conv.slice(2)}`,
    epoch: 1,
    mid: `m_${conv}_${n}`,
    conv,
    from: "u_1",
    to: { group: conv.slice(2) },
    cmid: `c_${conv}_${n}`,
    ts: n,
    body: { type: "text", text: `${n}` },
    recipients: ["u_1", "u_2"],
  };
}

/**
 * A store double whose append calls stay open until the test settles them, recording every
 * batch: it makes the flush timing observable. (The real stores are tested in the contract.)
 */
class ControlledStore implements Pick<Store, "append"> {
  readonly batches: AppendRequest[][] = [];
  readonly #calls: {
    batch: AppendRequest[];
    resolve: (r: AppendResult[]) => void;
    reject: (e: unknown) => void;
  }[] = [];

  append(batch: AppendRequest[]): Promise<AppendResult[]> {
    this.batches.push(batch);
    return new Promise((resolve, reject) => this.#calls.push({ batch, resolve, reject }));
  }

  get inFlight(): number {
    return this.#calls.length;
  }

  /** Commits the oldest open call: every request stored with cseq = its ts. */
  commitNext(): void {
    const call = this.#calls.shift();
    assert.ok(call, "no append call in flight");
    call.resolve(call.batch.map((r) => ({
      status: "stored",
      message: { ...r, cseq: r.ts },
      seqs: {},
    })));
  }

  failNext(err: unknown): void {
    const call = this.#calls.shift();
    assert.ok(call, "no append call in flight");
    call.reject(err);
  }
}

/**
 * A store that commits synchronously (like node:sqlite), holding the thread for `holdMs`, and
 * records each batch's size in `batches`.
 */
function blockingStore(batches: number[], holdMs: number): Pick<Store, "append" | "blocksThread"> {
  return {
    blocksThread: true,
    append(batch) {
      batches.push(batch.length);
      const end = performance.now() + holdMs;
      while (performance.now() < end) { /* the commit holds the thread */ }
      return Promise.resolve(batch.map((r) => ({
        status: "stored" as const,
        message: { ...r, cseq: r.ts },
        seqs: {},
      })));
    },
  };
}

/** Lets queued microtasks and promise callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

Deno.test("a lone append is flushed at once, without waiting for a timer", async () => {
  const store = new ControlledStore();
  const commits = new GroupCommit(store);
  const pending = commits.append(request(1));
  await settle();
  assert.equal(store.batches.length, 1);
  store.commitNext();
  const result = await pending;
  assert.equal(result.status === "stored" && result.message.mid, "m_g:g_1_1");
  await commits.close();
});

Deno.test("appends made in one synchronous burst go into one batch", async () => {
  const store = new ControlledStore();
  const commits = new GroupCommit(store);
  const pending = [1, 2, 3, 4].map((n) => commits.append(request(n)));
  await settle();
  assert.deepEqual(store.batches.map((b) => b.length), [4]);
  store.commitNext();
  const results = await Promise.all(pending);
  assert.deepEqual(results.map((r) => r.status === "stored" && r.message.cseq), [1, 2, 3, 4]);
  await commits.close();
});

Deno.test("appends made while a flush is in flight wait for it and go together in the next batch", async () => {
  const store = new ControlledStore();
  const commits = new GroupCommit(store);
  const first = commits.append(request(1));
  await settle();
  const later: Promise<AppendResult>[] = [];
  for (let n = 2; n <= 6; n++) {
    later.push(commits.append(request(n)));
    await settle();
  }
  assert.equal(store.inFlight, 1, "one flush at a time");
  assert.equal(commits.pending, 5);
  store.commitNext();
  await first;
  await settle();
  assert.deepEqual(store.batches.map((b) => b.map((r) => r.ts)), [[1], [2, 3, 4, 5, 6]]);
  store.commitNext();
  const results = await Promise.all(later);
  assert.deepEqual(results.map((r) => r.status === "stored" && r.message.ts), [2, 3, 4, 5, 6]);
  await commits.close();
});

Deno.test("the next batch is handed to the store before the finished batch's results are handed out", async () => {
  const store = new ControlledStore();
  const commits = new GroupCommit(store);
  // What the store had been handed when each request's caller got its result.
  const handedWhenSettled: number[] = [];
  const track = (p: Promise<AppendResult>) =>
    p.then(() => handedWhenSettled.push(store.batches.length));
  const first = track(commits.append(request(1)));
  await settle();
  const second = track(commits.append(request(2)));
  await settle();
  store.commitNext();
  await first;
  // The store was already writing batch 2 while the caller of request 1 went on (its `ok`).
  assert.deepEqual(handedWhenSettled, [2]);
  assert.equal(store.inFlight, 1);
  store.commitNext();
  await second;
  assert.deepEqual(handedWhenSettled, [2, 2]);
  await commits.close();
});

Deno.test("a blocking store hands out a batch's results before it commits the next", async () => {
  const batches: number[] = [];
  const blocking = blockingStore(batches, 0);
  const commits = new GroupCommit(blocking, { maxLingerMs: 0 });
  const committedWhenSettled: number[] = [];
  const first = commits.append(request(1)).then(() => committedWhenSettled.push(batches.length));
  await Promise.resolve();
  await Promise.resolve();
  // Queued while the first batch is being written (its commit has run, its result not out yet).
  const second = commits.append(request(2)).then(() => committedWhenSettled.push(batches.length));
  await Promise.all([first, second]);
  assert.deepEqual(committedWhenSettled, [1, 2]);
  await commits.close();
});

Deno.test("batches hold at most maxBatch requests and keep arrival order across batches", async () => {
  const store = new ControlledStore();
  const commits = new GroupCommit(store, { maxBatch: 4 });
  const pending = Array.from({ length: 10 }, (_, i) => commits.append(request(i + 1)));
  await settle();
  store.commitNext();
  await settle();
  store.commitNext();
  await settle();
  store.commitNext();
  const results = await Promise.all(pending);
  assert.deepEqual(store.batches.map((b) => b.map((r) => r.ts)), [
    [1, 2, 3, 4],
    [5, 6, 7, 8],
    [9, 10],
  ]);
  assert.deepEqual(results.map((r) => r.status === "stored" && r.message.ts), [
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
  ]);
  await commits.close();
});

Deno.test("a failed batch rejects every request in it with the store's error, and later batches still run", async () => {
  const store = new ControlledStore();
  const commits = new GroupCommit(store);
  const failing = [1, 2, 3].map((n) => commits.append(request(n)));
  await settle();
  const next = commits.append(request(4));
  const outage = new UnavailableError("Postgres unavailable: ECONNREFUSED");
  store.failNext(outage);
  const outcomes = await Promise.allSettled(failing);
  for (const outcome of outcomes) {
    assert.equal(outcome.status, "rejected");
    assert.equal(outcome.reason, outage);
  }
  await settle();
  store.commitNext();
  assert.equal((await next).status, "stored");
  await commits.close();
});

Deno.test("a store answering with the wrong number of results fails the whole batch", async () => {
  const commits = new GroupCommit({ append: () => Promise.resolve([]) });
  await assert.rejects(commits.append(request(1)), /0 results for a batch of 1/);
  await commits.close();
});

Deno.test("close flushes every queued request, then appends reject with UnavailableError", async () => {
  const store = new ControlledStore();
  const commits = new GroupCommit(store, { maxBatch: 2 });
  const pending = [1, 2, 3].map((n) => commits.append(request(n)));
  const closing = commits.close();
  await assert.rejects(commits.append(request(4)), UnavailableError);
  let closed = false;
  closing.then(() => closed = true);
  await settle();
  store.commitNext();
  await settle();
  assert.equal(closed, false, "close waits for the queued batch");
  store.commitNext();
  await closing;
  assert.equal((await Promise.all(pending)).length, 3);
  assert.deepEqual(store.batches.map((b) => b.length), [2, 1]);
});

Deno.test("maxBatch must be a positive integer", () => {
  const store = new ControlledStore();
  assert.throws(() => new GroupCommit(store, { maxBatch: 0 }), RangeError);
  assert.throws(() => new GroupCommit(store, { maxBatch: 1.5 }), RangeError);
});

Deno.test("many concurrent appends through group commit on SQLite stay gapless in few transactions", async () => {
  const store = openSqliteStore(":memory:");
  await store.migrate();
  let calls = 0;
  const counting: Pick<Store, "append"> = {
    append: (batch) => {
      calls++;
      return store.append(batch);
    },
  };
  const commits = new GroupCommit(counting, { maxBatch: 64 });
  try {
    // Writers that each wait for their previous append, like actors, interleaved.
    const writer = async (conv: string) => {
      const cseqs: number[] = [];
      for (let n = 1; n <= 25; n++) {
        const result = await commits.append(request(n, conv));
        assert.equal(result.status, "stored");
        if (result.status === "stored") cseqs.push(result.message.cseq);
      }
      return cseqs;
    };
    const convs = Array.from({ length: 20 }, (_, i) => `g:g_${i}`);
    const perConv = await Promise.all(convs.map(writer));
    for (const cseqs of perConv) {
      assert.deepEqual(cseqs, Array.from({ length: 25 }, (_, i) => i + 1));
    }
    assert.equal(await store.latestSeq("u_2"), 500);
    const inbox = await store.readInbox("u_2", 0, 1000);
    assert.deepEqual(inbox.map((e) => e.seq), Array.from({ length: 500 }, (_, i) => i + 1));
    assert.ok(calls <= 50, `expected batching, got ${calls} store calls for 500 appends`);
  } finally {
    await commits.close();
    await store.close();
  }
});

Deno.test("batches also hold at most maxRows recipients, and a larger request goes alone", async () => {
  const store = new ControlledStore();
  const commits = new GroupCommit(store, { maxRows: 5 });
  const withRecipients = (n: number, count: number) => ({
    ...request(n),
    recipients: Array.from({ length: count }, (_, i) => `u_${i}`),
  });
  const pending = [
    commits.append(withRecipients(1, 2)),
    commits.append(withRecipients(2, 3)),
    commits.append(withRecipients(3, 9)),
    commits.append(withRecipients(4, 1)),
  ];
  for (let i = 0; i < 3; i++) {
    await settle();
    store.commitNext();
  }
  await Promise.all(pending);
  assert.deepEqual(store.batches.map((b) => b.map((r) => r.ts)), [[1, 2], [3], [4]]);
  assert.throws(() => new GroupCommit(store, { maxRows: 0 }), RangeError);
  await commits.close();
});

Deno.test("after a blocking commit, requests arriving within the linger join one batch", async () => {
  const batches: number[] = [];
  const blocking = blockingStore(batches, 20);
  const commits = new GroupCommit(blocking, { maxLingerMs: 100 });
  const first = commits.append(request(1));
  // Requests that arrive from the event loop (other sockets) while the first commit runs: each
  // in its own task, so without the linger each would start a commit of its own.
  const later = await Promise.all(
    [2, 3, 4].map((n) =>
      new Promise<Promise<AppendResult>>((resolve) =>
        setTimeout(() => resolve(commits.append(request(n))), n)
      )
    ),
  );
  await Promise.all([first, ...later]);
  assert.deepEqual(batches, [1, 3]);
  await commits.close();
});

Deno.test("a store that does not block gets no linger: the next request is flushed at once", async () => {
  const store = new ControlledStore();
  const commits = new GroupCommit(store, { maxLingerMs: 1000 });
  const first = commits.append(request(1));
  await settle();
  store.commitNext();
  await first;
  const second = commits.append(request(2));
  await settle();
  assert.equal(store.batches.length, 2);
  store.commitNext();
  await second;
  await commits.close();
});

Deno.test("a store whose calls run in call order gets a second batch in flight only when a full one is waiting, and batches commit in arrival order", async () => {
  const store = Object.assign(new ControlledStore(), { serialCalls: true });
  const commits = new GroupCommit(store, { maxBatch: 2 });
  const results: number[] = [];
  const track = (p: Promise<AppendResult>) =>
    p.then((r) => results.push(r.status === "stored" ? r.message.cseq : -1));
  const first = track(commits.append(request(1)));
  await settle();
  assert.equal(store.inFlight, 1);
  // A partial batch waits for the one in flight (and grows meanwhile)...
  const second = [track(commits.append(request(2)))];
  await settle();
  assert.equal(store.inFlight, 1);
  // ...a full one is handed over at once, as a second batch.
  second.push(track(commits.append(request(3))));
  await settle();
  assert.equal(store.inFlight, 2);
  assert.deepEqual(store.batches.map((b) => b.map((r) => r.ts)), [[1], [2, 3]]);
  // Neither lane takes the next partial batch until the one in flight before it is done.
  const third = [4, 5, 6].map((n) => track(commits.append(request(n))));
  await settle();
  assert.equal(store.inFlight, 2);
  store.commitNext();
  await settle();
  // The full batch [4, 5] goes at once; [6] alone waits for a lane to finish.
  assert.deepEqual(store.batches.map((b) => b.map((r) => r.ts)), [[1], [2, 3], [4, 5]]);
  store.commitNext();
  await settle();
  assert.deepEqual(store.batches.map((b) => b.map((r) => r.ts)), [[1], [2, 3], [4, 5]]);
  store.commitNext();
  await settle();
  assert.deepEqual(store.batches.map((b) => b.map((r) => r.ts)), [[1], [2, 3], [4, 5], [6]]);
  store.commitNext();
  await Promise.all([first, ...second, ...third]);
  assert.deepEqual(results, [1, 2, 3, 4, 5, 6]);
  await commits.close();
  assert.equal(commits.pending, 0);
});

Deno.test("close waits for every batch in flight when two are", async () => {
  const store = Object.assign(new ControlledStore(), { serialCalls: true });
  const commits = new GroupCommit(store, { maxBatch: 1 });
  const a = commits.append(request(1));
  await settle();
  const b = commits.append(request(2));
  await settle();
  assert.equal(store.inFlight, 2);
  let closed = false;
  const closing = commits.close().then(() => closed = true);
  await settle();
  assert.equal(closed, false);
  store.commitNext();
  await settle();
  assert.equal(closed, false);
  store.commitNext();
  await closing;
  await Promise.all([a, b]);
  await assert.rejects(commits.append(request(3)), /shutting down/);
});
