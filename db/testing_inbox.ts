/**
 * Test support for the inbox-run tests of both stores (SQLite and Postgres): message requests, a
 * model of every user's inbox built from append results, and checks of readInbox,
 * scanInboxConversations and latestSeq against it or against answers recorded before.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { AppendRequest, Store } from "./store.ts";

/** A message to `conv` from `from` for `recipients`, sent by the conversation's actor. */
export function msg(conv: string, from: string, recipients: string[], n: number): AppendRequest {
  return {
    actorId: `conv/${conv}`,
    epoch: 1,
    mid: `m_${conv}_${n}`,
    conv,
    from,
    to: conv.startsWith("g:") ? { group: conv.slice(2) } : { user: recipients[1] },
    cmid: `${conv}_${n}`,
    ts: n,
    body: { type: "text", text: `${conv} ${n}` },
    recipients,
  };
}

/**
 * A deterministic mix of `batches` append batches (1–4 requests each) among `users`: group
 * messages to changing member sets in two groups, and direct messages between two users.
 * `next` numbers each message (see {@link msg}).
 */
export function mixedBatches(
  users: string[],
  batches: number,
  next: () => number,
): AppendRequest[][] {
  let seed = 7;
  const rnd = (k: number) =>
    Math.floor((seed = (seed * 1103515245 + 12345) % 2147483648) / 65536) % k;
  const k = users.length;
  const out: AppendRequest[][] = [];
  for (let batch = 0; batch < batches; batch++) {
    const reqs: AppendRequest[] = [];
    for (let i = 0, size = 1 + rnd(4); i < size; i++) {
      if (rnd(2) === 0) {
        const members = users.filter(() => rnd(4) !== 0);
        if (members.length === 0) members.push(users[0]);
        reqs.push(msg(`g:g_${rnd(2)}`, members[0], members, next()));
      } else {
        const x = rnd(k), y = (x + 1 + rnd(k - 1)) % k;
        const [p, q] = x < y ? [x, y] : [y, x];
        reqs.push(msg(`d:${users[p]}:${users[q]}`, users[x], [users[x], users[y]], next()));
      }
    }
    out.push(reqs);
  }
  return out;
}

/** Every user's expected inbox (seq → conv, cseq, mid), taken from append results. */
export class InboxModel {
  readonly entries = new Map<string, Map<number, { conv: string; cseq: number; mid: string }>>();
  readonly hidden = new Set<string>();

  record(results: Awaited<ReturnType<Store["append"]>>): void {
    for (const r of results) {
      if (r.status !== "stored") continue;
      for (const [user, seq] of Object.entries(r.seqs)) {
        let inbox = this.entries.get(user);
        if (!inbox) this.entries.set(user, inbox = new Map());
        inbox.set(seq, { conv: r.message.conv, cseq: r.message.cseq, mid: r.message.mid });
      }
    }
  }

  /** What readInbox(user, after, limit) must answer, as [seq, conv, cseq]. */
  read(user: string, after: number, limit: number): [number, string, number][] {
    return [...(this.entries.get(user) ?? new Map()).entries()]
      .filter(([seq, e]) => seq > after && !this.hidden.has(`${user} ${e.mid}`))
      .sort((a, b) => a[0] - b[0])
      .slice(0, Math.max(0, limit))
      .map(([seq, e]) => [seq, e.conv, e.cseq]);
  }
}

export async function readAsTriples(store: Store, user: string, after: number, limit: number) {
  return (await store.readInbox(user, after, limit)).map((
    e,
  ) => [e.seq, e.message.conv, e.message.cseq] as [number, string, number]);
}

/** Checks readInbox against the model for every `after` and a few limits. */
export async function assertInboxes(store: Store, model: InboxModel): Promise<void> {
  for (const user of model.entries.keys()) {
    const last = await store.latestSeq(user);
    assert.equal(last, Math.max(...model.entries.get(user)!.keys()), `latestSeq ${user}`);
    for (let after = 0; after <= last; after++) {
      for (const limit of [1, 2, 3, 1000]) {
        assert.deepEqual(
          await readAsTriples(store, user, after, limit),
          model.read(user, after, limit),
          `readInbox(${user}, ${after}, ${limit})`,
        );
      }
    }
  }
}

/** Every readInbox, scanInboxConversations and latestSeq answer for `users`, for comparison. */
export async function inboxAnswers(store: Store, users: string[]): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const user of users) {
    const last = await store.latestSeq(user);
    out.push(["latestSeq", user, last]);
    for (let after = 0; after <= last + 1; after++) {
      for (const limit of [1, 2, 3, 5, 1000]) {
        out.push(["readInbox", user, after, limit, await store.readInbox(user, after, limit)]);
        out.push([
          "scan",
          user,
          after,
          limit,
          await store.scanInboxConversations(user, after, limit),
        ]);
      }
    }
  }
  return out;
}

/** Reads a user's runs as [seq_start, conv, cseq_start, count], closed runs then the tail. */
export type RunsOf = (user: string) => Promise<unknown[]>;

/**
 * Checks that `user`'s runs tile seqs 1..latestSeq without gap or overlap and map each seq to
 * the (conv, cseq) the model has for it (hidden entries included: hiding changes no run).
 */
export async function assertRunsMatch(runsOf: RunsOf, model: InboxModel, user: string) {
  const expected = [...(model.entries.get(user) ?? new Map()).entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([seq, e]) => [seq, e.conv, e.cseq]);
  const actual: unknown[] = [];
  let next = 1;
  for (const [seqStart, conv, cseqStart, count] of await runsOf(user) as number[][]) {
    assert.equal(seqStart, next, `${user}: runs tile the seqs`);
    assert.ok(count > 0, `${user}: no empty run`);
    for (let i = 0; i < count; i++) actual.push([seqStart + i, conv, cseqStart + i]);
    next = seqStart + count;
  }
  assert.deepEqual(actual, expected, `${user}: runs map seqs to messages`);
}

/**
 * The run layout every store must produce (on a fresh, migrated store): runs extend only with
 * the same conversation's next cseq, within and across batches; closed runs keep their counts;
 * duplicates and fenced requests take no seq; deleting an account drops its runs.
 */
export async function checkRunLayout(store: Store, runsOf: RunsOf): Promise<void> {
  const model = new InboxModel();
  const a = "d:u_a:u_b", c = "d:u_a:u_c", g = "g:g_1";
  let n = 0;
  const send = async (reqs: AppendRequest[]) => model.record(await store.append(reqs));
  // Interleaved, one message per batch: a, a, c, a, c, c.
  await send([msg(a, "u_a", ["u_a", "u_b"], ++n)]);
  await send([msg(a, "u_b", ["u_b", "u_a"], ++n)]);
  await send([msg(c, "u_a", ["u_a", "u_c"], ++n)]);
  await send([msg(a, "u_a", ["u_a", "u_b"], ++n)]);
  await send([msg(c, "u_c", ["u_c", "u_a"], ++n)]);
  await send([msg(c, "u_a", ["u_a", "u_c"], ++n)]);
  // One batch: a, a, c, a; then the next batch continues a.
  await send([
    msg(a, "u_a", ["u_a", "u_b"], ++n),
    msg(a, "u_b", ["u_a", "u_b"], ++n),
    msg(c, "u_a", ["u_a", "u_c"], ++n),
    msg(a, "u_a", ["u_a", "u_b"], ++n),
  ]);
  await send([msg(a, "u_b", ["u_b", "u_a"], ++n)]);
  // A group: u_d joins late (from its third message), u_b leaves after the second.
  await send([msg(g, "u_a", ["u_a", "u_b"], ++n), msg(g, "u_a", ["u_a", "u_b"], ++n)]);
  await send([msg(g, "u_a", ["u_a", "u_d"], ++n)]);
  await send([msg(g, "u_d", ["u_a", "u_d"], ++n), msg(g, "u_a", ["u_a", "u_d"], ++n)]);
  // A duplicate and a fenced request in a batch take no seq.
  await send([msg(g, "u_a", ["u_a", "u_d"], n), msg(g, "u_a", ["u_a", "u_d"], ++n)]);
  await send([{ ...msg(g, "u_a", ["u_a", "u_d"], ++n), epoch: 0 }]);
  await store.fence("conv/g:g_1", 2);

  await assertInboxes(store, model);
  assert.deepEqual(await readAsTriples(store, "u_a", 0, 1000), [
    [1, a, 1],
    [2, a, 2],
    [3, c, 1],
    [4, a, 3],
    [5, c, 2],
    [6, c, 3],
    [7, a, 4],
    [8, a, 5],
    [9, c, 4],
    [10, a, 6],
    [11, a, 7],
    [12, g, 1],
    [13, g, 2],
    [14, g, 3],
    [15, g, 4],
    [16, g, 5],
    [17, g, 6],
  ]);
  assert.deepEqual(await runsOf("u_a"), [
    [1, a, 1, 2],
    [3, c, 1, 1],
    [4, a, 3, 1],
    [5, c, 2, 2],
    [7, a, 4, 2],
    [9, c, 4, 1],
    [10, a, 6, 2],
    [12, g, 1, 6],
  ]);
  // The late joiner's first run starts at its own seq 1 with the group's cseq 3.
  assert.deepEqual(await runsOf("u_d"), [[1, g, 3, 4]]);
  assert.deepEqual(await runsOf("u_b"), [[1, a, 1, 7], [8, g, 1, 2]]);
  assert.deepEqual(await runsOf("u_c"), [[1, c, 1, 4]]);
  assert.deepEqual(await store.scanInboxConversations("u_a", 2, 8), {
    convs: [
      { conv: a, firstCseq: 3, lastCseq: 6, lastSeq: 10 },
      { conv: c, firstCseq: 1, lastCseq: 4, lastSeq: 9 },
    ],
    scanned: 8,
    lastSeq: 10,
  });
  // One batch extends u_a's tail and then closes it (stored with its full count), starts
  // u_e's first run, and extends u_c's.
  await send([
    { ...msg(g, "u_a", ["u_a", "u_e"], ++n), epoch: 2 },
    { ...msg(g, "u_a", ["u_a", "u_e"], ++n), epoch: 2 },
    msg(c, "u_c", ["u_c", "u_a"], ++n),
  ]);
  assert.deepEqual((await runsOf("u_a")).slice(-2), [[12, g, 1, 8], [20, c, 5, 1]]);
  assert.deepEqual(await runsOf("u_e"), [[1, g, 7, 2]]);
  assert.deepEqual(await runsOf("u_c"), [[1, c, 1, 5]]);
  for (const u of model.entries.keys()) await assertRunsMatch(runsOf, model, u);
  // Deleting the account drops its runs; a new inbox for the id starts from seq 1.
  assert.equal(await store.deleteUser("u_d"), false);
  assert.deepEqual(await runsOf("u_d"), []);
  assert.equal(await store.latestSeq("u_d"), 0);
  assert.deepEqual(await store.readInbox("u_d", 0, 10), []);
  const [again] = await store.append([{ ...msg(g, "u_a", ["u_d"], ++n), epoch: 2 }]);
  assert.equal(again.status, "stored");
  assert.deepEqual(again.status === "stored" && again.seqs, { u_d: 1 });
  assert.deepEqual(await runsOf("u_d"), [[1, g, 9, 1]]);
  // The same for an inbox with closed runs: none of them is left to show up again.
  assert.equal((await runsOf("u_b")).length, 2);
  await store.deleteUser("u_b");
  assert.deepEqual(await runsOf("u_b"), []);
  await store.append([msg(a, "u_a", ["u_a", "u_b"], ++n)]);
  assert.deepEqual(await readAsTriples(store, "u_b", 0, 100), [[1, a, 8]]);
  assert.deepEqual(await runsOf("u_b"), [[1, a, 8, 1]]);
}

/**
 * Hidden inbox entries (on a fresh, migrated store) are skipped inside and across runs, over
 * several read rounds, and `limit` counts only the entries returned; scans still count them.
 */
export async function checkHiddenEntries(store: Store): Promise<void> {
  const model = new InboxModel();
  const g = "g:g_1", d = "d:u_a:u_b";
  const members = ["u_a", "u_b"];
  const reqs: AppendRequest[] = [];
  for (let n = 1; n <= 6; n++) reqs.push(msg(g, "u_a", members, n));
  reqs.push(msg(d, "u_b", members, 7));
  for (let n = 8; n <= 9; n++) reqs.push(msg(g, "u_a", members, n));
  model.record(await store.append(reqs));
  // u_b's inbox: seqs 1-6 g 1-6, 7 d 1, 8-9 g 7-8. Hide g 2, 3, 6 (run end), d 1, g 7.
  for (const [conv, n] of [[g, 2], [g, 3], [g, 6], [d, 7], [g, 8]] as const) {
    await store.hideMessage(`conv/${conv}`, 1, "u_b", conv, `m_${conv}_${n}`);
    model.hidden.add(`u_b m_${conv}_${n}`);
  }
  const seqs = async (after: number, limit: number) =>
    (await store.readInbox("u_b", after, limit)).map((e) => e.seq);
  assert.deepEqual(await seqs(0, 2), [1, 4]);
  assert.deepEqual(await seqs(1, 2), [4, 5]);
  assert.deepEqual(await seqs(4, 2), [5, 9]);
  assert.deepEqual(await seqs(5, 1), [9]);
  assert.deepEqual(await seqs(0, 100), [1, 4, 5, 9]);
  assert.deepEqual(await seqs(9, 100), []);
  await assertInboxes(store, model);
  // Hidden entries still count as scanned inbox entries.
  assert.deepEqual(await store.scanInboxConversations("u_b", 0, 9), {
    convs: [
      { conv: d, firstCseq: 1, lastCseq: 1, lastSeq: 7 },
      { conv: g, firstCseq: 1, lastCseq: 8, lastSeq: 9 },
    ],
    scanned: 9,
    lastSeq: 9,
  });
  // The sender's inbox is untouched by u_b's hiding.
  assert.equal((await store.readInbox("u_a", 0, 100)).length, 9);
  // More hidden entries than one round covers: 200 one-message runs, all but the last
  // hidden, then one more visible entry.
  const many: AppendRequest[] = [];
  for (let n = 0; n < 200; n++) {
    many.push(msg(`d:u_b:x_${n}`, "u_b", ["u_b", `x_${n}`], 100 + n));
  }
  model.record(await store.append(many));
  for (let n = 0; n < 199; n++) {
    const conv = `d:u_b:x_${n}`;
    await store.hideMessage(`conv/${conv}`, 1, "u_b", conv, `m_${conv}_${100 + n}`);
    model.hidden.add(`u_b m_${conv}_${100 + n}`);
  }
  assert.deepEqual(await readAsTriples(store, "u_b", 9, 1), [[209, "d:u_b:x_199", 1]]);
  assert.deepEqual(await readAsTriples(store, "u_b", 5, 2), model.read("u_b", 5, 2));
  assert.deepEqual(await readAsTriples(store, "u_b", 9, 100), [[209, "d:u_b:x_199", 1]]);
  model.record(await store.append([msg(g, "u_a", members, 400)]));
  assert.deepEqual(await readAsTriples(store, "u_b", 5, 3), model.read("u_b", 5, 3));
  assert.deepEqual(await readAsTriples(store, "u_b", 5, 3), [
    [9, g, 8],
    [209, "d:u_b:x_199", 1],
    [210, g, 9],
  ]);
  await assertInboxes(store, model);
}
