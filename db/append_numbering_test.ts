import assert from "node:assert/strict";
import fc from "fast-check";
import { type BatchState, numberBatch, type Run } from "./append_numbering.ts";
import type { AppendRequest, StoredMessage } from "./store.ts";

const USERS = ["u_a", "u_b", "u_c", "u_d"];
const CONVS = ["g:g_1", "g:g_2", "d:u_a:u_b"];
const ACTORS = ["conv/1", "conv/2"];

/** A request as the generators make it: small domains, so duplicates and runs happen often. */
const requestArb = fc.record({
  actor: fc.constantFrom(...ACTORS),
  epoch: fc.integer({ min: 1, max: 4 }),
  conv: fc.constantFrom(...CONVS),
  from: fc.constantFrom(...USERS),
  cmid: fc.constantFrom("c1", "c2", "c3", "c4", "c5", "c6"),
  recipients: fc.array(fc.constantFrom(...USERS), { maxLength: 5 }),
});

/** Each user's stored counter: last seq and (maybe) an open tail run ending at it. */
const counterArb = fc.record({
  lastSeq: fc.integer({ min: 0, max: 6 }),
  tailConv: fc.option(fc.constantFrom(...CONVS), { nil: null }),
  tailLength: fc.integer({ min: 1, max: 3 }),
  tailLastCseq: fc.integer({ min: 3, max: 9 }),
});

const stateArb = fc.record({
  epochs: fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 })),
  cseqs: fc.tuple(
    fc.integer({ min: 9, max: 12 }),
    fc.integer({ min: 9, max: 12 }),
    fc.integer({ min: 9, max: 12 }),
  ),
  counters: fc.tuple(counterArb, counterArb, counterArb, counterArb),
  prior: fc.subarray(USERS.flatMap((u) => ["c1", "c2"].map((c) => [u, c] as const))),
});

type StateInput = typeof stateArb extends fc.Arbitrary<infer T> ? T : never;

function buildState(input: StateInput): BatchState {
  const inboxes = new Map();
  USERS.forEach((u, i) => {
    const c = input.counters[i];
    // A tail needs seqs to cover: it ends at lastSeq and is at most lastSeq long.
    const length = Math.min(c.tailLength, c.lastSeq);
    inboxes.set(u, {
      lastSeq: c.lastSeq,
      tail: c.tailConv && length > 0
        ? {
          seqStart: c.lastSeq - length + 1,
          conv: c.tailConv,
          cseqStart: c.tailLastCseq - length + 1,
        }
        : null,
    });
  });
  const prior = new Map<string, Map<string, StoredMessage>>();
  for (const [from, cmid] of input.prior) {
    if (!prior.has(from)) prior.set(from, new Map());
    prior.get(from)!.set(cmid, {
      mid: `old_${from}_${cmid}`,
      conv: "g:g_1",
      cseq: 1,
      from,
      to: { group: "g_1" },
      ts: 0,
      body: { type: "text", text: "old" },
      cmid,
    });
  }
  return {
    epochs: new Map(ACTORS.map((a, i) => [a, input.epochs[i]])),
    cseqs: new Map(CONVS.map((c, i) => [c, input.cseqs[i]])),
    inboxes,
    prior,
  };
}

function toRequests(raw: RawRequest[]): AppendRequest[] {
  return raw.map((r, i) => ({
    actorId: r.actor,
    epoch: r.epoch,
    mid: `m_${i}`,
    conv: r.conv,
    from: r.from,
    to: r.conv.startsWith("g:") ? { group: r.conv.slice(2) } : { user: "u_b" },
    cmid: r.cmid,
    ts: i,
    body: { type: "text", text: `t${i}` },
    recipients: r.recipients,
  }));
}

type RawRequest = typeof requestArb extends fc.Arbitrary<infer T> ? T : never;

/** Seq → [conv, cseq] of every seq a run covers. */
function expand(runs: Array<Run & { count: number }>): Map<number, [string, number]> {
  const out = new Map<number, [string, number]>();
  for (const r of runs) {
    for (let i = 0; i < r.count; i++) out.set(r.seqStart + i, [r.conv, r.cseqStart + i]);
  }
  return out;
}

Deno.test("numberBatch matches a per-entry reference: fencing, duplicates, cseqs, seqs, and runs that cover every entry and cannot be merged", () => {
  fc.assert(
    fc.property(stateArb, fc.array(requestArb, { maxLength: 12 }), (input, raw) => {
      const state = buildState(input);
      const requests = toRequests(raw);
      const got = numberBatch(requests, state);

      // The reference: one request and one recipient at a time.
      const met = new Map(state.epochs);
      const cseqs = new Map(state.cseqs);
      const last = new Map([...state.inboxes].map(([u, c]) => [u, c.lastSeq]));
      const stored = new Map<string, StoredMessage>();
      const newEntries = new Map<string, Map<number, [string, number]>>();
      const expected = requests.map((req) => {
        const epoch = met.get(req.actorId) ?? 0;
        if (req.epoch < epoch) return { status: "fenced", storedEpoch: epoch };
        met.set(req.actorId, Math.max(epoch, req.epoch));
        const key = `${req.from}/${req.cmid}`;
        const earlier = stored.get(key) ?? state.prior.get(req.from)?.get(req.cmid);
        if (earlier) return { status: "duplicate", message: earlier };
        const cseq = (cseqs.get(req.conv) ?? 0) + 1;
        cseqs.set(req.conv, cseq);
        const seqs: Record<string, number> = {};
        for (const u of new Set(req.recipients)) {
          const seq = (last.get(u) ?? 0) + 1;
          last.set(u, seq);
          seqs[u] = seq;
          if (!newEntries.has(u)) newEntries.set(u, new Map());
          newEntries.get(u)!.set(seq, [req.conv, cseq]);
        }
        const message: StoredMessage = {
          mid: req.mid,
          conv: req.conv,
          cseq,
          from: req.from,
          to: req.to,
          ts: req.ts,
          body: req.body,
          cmid: req.cmid,
        };
        stored.set(key, message);
        return { status: "stored", message, seqs };
      });
      assert.deepEqual(got.results, expected);
      assert.deepEqual(
        got.messages.map((m) => [m.request.mid, m.cseq, m.bodyText]),
        expected.flatMap((e, i) =>
          e.status === "stored"
            ? [[requests[i].mid, e.message!.cseq, JSON.stringify(requests[i].body)]]
            : []
        ),
      );
      assert.deepEqual(
        got.convs,
        [...cseqs].filter(([c, v]) => v !== state.cseqs.get(c)).sort(),
      );
      assert.deepEqual(
        got.raisedEpochs,
        [...met].filter(([a, e]) => e > (state.epochs.get(a) ?? 0)).sort(),
      );

      // Runs: for each user with new entries, the closed runs and the new tail cover exactly the
      // old tail's seqs and the new entries, and no two neighbouring runs could be one.
      assert.deepEqual(got.counters.map((c) => c[0]), [...newEntries.keys()].sort());
      for (const [user, lastSeq, tailStart, tailConv, tailCseq] of got.counters) {
        assert.equal(lastSeq, last.get(user));
        const old = state.inboxes.get(user)!;
        const want = new Map<number, [string, number]>();
        if (old.tail) {
          const count = old.lastSeq - old.tail.seqStart + 1;
          for (const [s, v] of expand([{ ...old.tail, count }])) want.set(s, v);
        }
        for (const [s, v] of newEntries.get(user)!) want.set(s, v);
        const count = lastSeq - tailStart + 1;
        const runs = [
          ...got.closedRuns.filter((r) => r[0] === user).map((r) => ({
            seqStart: r[1],
            conv: r[2],
            cseqStart: r[3],
            count: r[4],
          })),
          { seqStart: tailStart, conv: tailConv, cseqStart: tailCseq - count + 1, count },
        ];
        assert.deepEqual(expand(runs), want);
        for (let i = 0; i + 1 < runs.length; i++) {
          const [a, b] = [runs[i], runs[i + 1]];
          assert.equal(a.seqStart + a.count, b.seqStart, "runs are contiguous");
          assert.ok(
            !(a.conv === b.conv && a.cseqStart + a.count === b.cseqStart),
            "neighbouring runs that continue each other are one run",
          );
        }
      }
      // Users without new entries have no closed runs either.
      for (const r of got.closedRuns) assert.ok(newEntries.has(r[0]));
    }),
    { numRuns: 500 },
  );
});

Deno.test("numberBatch leaves the state it was given untouched", () => {
  const counter = { lastSeq: 3, tailConv: "g:g_1", tailLength: 2, tailLastCseq: 9 };
  const state = buildState({
    epochs: [1, 0],
    cseqs: [9, 9, 9],
    counters: [counter, counter, counter, counter],
    prior: [],
  });
  const before = structuredClone(state);
  numberBatch(
    toRequests([{
      actor: "conv/1",
      epoch: 2,
      conv: "g:g_1",
      from: "u_a",
      cmid: "c3",
      recipients: USERS,
    }]),
    state,
  );
  assert.deepEqual(state, before);
});
