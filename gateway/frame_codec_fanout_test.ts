import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeFrames, SeqFanout, SeqFrame, SUBPROTOCOLS } from "./frame_codec.ts";

/** The frame a recipient gets, built the plain way (not registered with a SeqFanout). */
function plain(frame: Record<string, unknown>, seq: number): Record<string, unknown> {
  const { op, seq: _s, ...rest } = frame;
  return { op, seq, ...rest };
}

const value = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.string(),
    fc.integer(),
    fc.maxSafeInteger(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
  ),
  node: fc.oneof(
    { depthSize: "small" },
    tie("leaf"),
    fc.array(tie("node"), { maxLength: 4 }),
    fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), tie("node"), { maxKeys: 4 }),
  ),
})).node;

const frameArb = fc.dictionary(
  fc.constantFrom("mid", "conv", "cseq", "from", "to", "ts", "body", "x", "y", "z", "undef"),
  fc.oneof(value, fc.constant(undefined)),
  { maxKeys: 20 },
).map((rest) => ({ op: "msg", ...rest }));

const seqArb = fc.oneof(
  fc.integer({ min: 0, max: 200 }),
  fc.integer({ min: 0, max: 0xffffffff }),
  fc.maxSafeInteger(),
);

Deno.test("a fan-out frame encodes byte for byte like the same frame built by hand", () => {
  fc.assert(
    fc.property(frameArb, fc.array(seqArb, { minLength: 1, maxLength: 5 }), (frame, seqs) => {
      const fanout = new SeqFanout(frame);
      for (const seq of seqs) {
        const shared = fanout.frameFor(seq);
        assert.deepEqual(shared, plain(frame, seq));
        for (const proto of SUBPROTOCOLS) {
          assert.deepEqual(encodeFrames([shared], proto), encodeFrames([plain(frame, seq)], proto));
        }
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("a fan-out frame batched with other frames encodes like the frames built by hand", () => {
  const frame = {
    op: "msg",
    mid: "m_1",
    conv: "g:g_1",
    cseq: 7,
    ts: 1_795_000_000_000,
    body: { type: "text", text: "hi" },
  };
  const fanout = new SeqFanout(frame);
  const others = [{ op: "ok", re: 3 }, { op: "msg", seq: 1 }];
  for (const proto of SUBPROTOCOLS) {
    assert.deepEqual(
      encodeFrames([others[0], fanout.frameFor(70_000), others[1]], proto),
      encodeFrames([others[0], plain(frame, 70_000), others[1]], proto),
    );
  }
});

Deno.test("a fan-out frame changed after it was made is encoded from its fields", () => {
  const fanout = new SeqFanout({ op: "msg", mid: "m_1", body: { type: "text", text: "a" } });
  const f = fanout.frameFor(5);
  f.seq = 6;
  f.mid = "m_2";
  for (const proto of SUBPROTOCOLS) {
    assert.deepEqual(encodeFrames([f], proto), encodeFrames([{ ...f }], proto));
  }
});

Deno.test("a frame with more than 15 fields gets a map16 header when shared", () => {
  const frame: Record<string, unknown> = { op: "msg" };
  for (let i = 0; i < 20; i++) frame[`k${i}`] = i;
  const fanout = new SeqFanout(frame);
  for (const proto of SUBPROTOCOLS) {
    assert.deepEqual(
      encodeFrames([fanout.frameFor(9)], proto),
      encodeFrames([plain(frame, 9)], proto),
    );
  }
});

Deno.test("queued fan-out copies (seqFrame) encode, alone or among other frames, like the frames built by hand", () => {
  const other = fc.constantFrom<Record<string, unknown>>(
    { op: "ok", re: 3 },
    { op: "msg", seq: 1, body: { type: "text", text: "é" } },
  );
  fc.assert(
    fc.property(
      frameArb,
      fc.array(fc.oneof(seqArb.map((seq) => ({ seq })), other), { minLength: 1, maxLength: 6 }),
      (frame, items) => {
        const fanout = new SeqFanout(frame);
        const queued = items.map((it) =>
          "seq" in it && !("op" in it) ? fanout.seqFrame(it.seq as number) : it
        );
        const byHand = items.map((it) =>
          "seq" in it && !("op" in it) ? plain(frame, it.seq as number) : it
        );
        for (const proto of SUBPROTOCOLS) {
          assert.deepEqual(encodeFrames(queued, proto), encodeFrames(byHand, proto));
        }
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("a frame whose fields cannot be shared is queued as the plain frame", () => {
  const frame = { op: "msg", 1: "index key", mid: "m_1" };
  const fanout = new SeqFanout(frame);
  const copy = fanout.seqFrame(4);
  assert.ok(!(copy instanceof SeqFrame));
  assert.deepEqual(copy, { ...frame, seq: 4 });
  const shared = new SeqFanout({ op: "msg", mid: "m_1" }).seqFrame(4);
  assert.ok(shared instanceof SeqFrame);
  assert.equal(shared.op, "msg");
  assert.equal(shared.seq, 4);
});
