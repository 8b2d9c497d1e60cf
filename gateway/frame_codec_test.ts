import assert from "node:assert/strict";
import fc from "fast-check";
import { Packr } from "msgpackr";
import {
  createFrameCodec,
  decodeMessage,
  encodeFrame,
  encodeFrames,
  type Frame,
  joinEncoded,
  messageByteLength,
  negotiateSubprotocol,
  type Subprotocol,
  SUBPROTOCOLS,
} from "./frame_codec.ts";

const MP = "im.v1.msgpack" as const;
const JS = "im.v1.json" as const;
const enc = new TextEncoder();
const rawPackr = new Packr({ useRecords: false });

function bytes(...parts: (number | number[] | Uint8Array)[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === "number") out.push(p);
    else out.push(...p);
  }
  return new Uint8Array(out);
}

function fixstr(s: string): number[] {
  const b = enc.encode(s);
  assert.ok(b.length < 32);
  return [0xa0 | b.length, ...b];
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
}

Deno.test("the subprotocols are msgpack first, then json", () => {
  assert.deepEqual([...SUBPROTOCOLS], ["im.v1.msgpack", "im.v1.json"]);
});

Deno.test("negotiation picks the first offered subprotocol the server speaks", () => {
  assert.equal(negotiateSubprotocol("foo, im.v1.json, im.v1.msgpack"), JS);
  assert.equal(negotiateSubprotocol("im.v1.msgpack"), MP);
  assert.equal(negotiateSubprotocol("im.v2.json, chat"), null);
  assert.equal(negotiateSubprotocol(null), null);
  assert.equal(negotiateSubprotocol(""), null);
});

Deno.test("messageByteLength counts UTF-8 bytes of text and bytes of binary", () => {
  for (const s of ["", "abc", "é", "€", "😀", "a😀é€\n", "\ud800x", "x\udc00"]) {
    assert.equal(messageByteLength(s), enc.encode(s).length, JSON.stringify(s));
  }
  assert.equal(messageByteLength(new Uint8Array(7)), 7);
  assert.equal(messageByteLength(new ArrayBuffer(9)), 9);
});

Deno.test("one msgpack message with several maps decodes to the frames in order", () => {
  const data = bytes(rawPackr.pack({ op: "ping", id: 1 }), rawPackr.pack({ op: "ack", seq: 4 }));
  const r = decodeMessage(data, MP);
  assert.equal(r.error, undefined);
  assert.deepEqual(r.frames, [{ op: "ping", id: 1 }, { op: "ack", seq: 4 }]);
  // ArrayBuffer input works the same.
  assert.deepEqual(decodeMessage(data.slice().buffer, MP).frames, r.frames);
});

Deno.test("64-bit msgpack integers decode as numbers", () => {
  // {op: "ack", seq: uint64 2^40}, {op:"x", n: int64 -2^40}
  const data = bytes(
    0x82,
    fixstr("op"),
    fixstr("ack"),
    fixstr("seq"),
    [0xcf, 0, 0, 1, 0, 0, 0, 0, 0],
    0x82,
    fixstr("op"),
    fixstr("x"),
    fixstr("n"),
    [0xd3, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0],
  );
  const r = decodeMessage(data, MP);
  assert.equal(r.error, undefined);
  assert.deepEqual(r.frames, [{ op: "ack", seq: 2 ** 40 }, { op: "x", n: -(2 ** 40) }]);
  assert.equal(typeof r.frames[0].seq, "number");
});

Deno.test("json frames are split on newlines, tolerating CRLF and empty lines", () => {
  const r = decodeMessage('{"op":"ping","id":1}\r\n\n{"op":"ack","seq":2}\n', JS);
  assert.equal(r.error, undefined);
  assert.deepEqual(r.frames, [{ op: "ping", id: 1 }, { op: "ack", seq: 2 }]);
});

Deno.test("an empty message yields no frames and no error", () => {
  assert.deepEqual(decodeMessage(new Uint8Array(0), MP), { frames: [] });
  assert.deepEqual(decodeMessage("", JS), { frames: [] });
  assert.deepEqual(decodeMessage("\n\r\n", JS), { frames: [] });
});

Deno.test("text on msgpack and binary on json are bad frames", () => {
  const a = decodeMessage('{"op":"ping"}', MP);
  assert.deepEqual(a.frames, []);
  assert.equal(a.error?.code, "bad_frame");
  const b = decodeMessage(enc.encode('{"op":"ping"}'), JS);
  assert.deepEqual(b.frames, []);
  assert.equal(b.error?.code, "bad_frame");
  const c = decodeMessage(new ArrayBuffer(3), JS);
  assert.equal(c.error?.code, "bad_frame");
});

Deno.test("frames before a bad msgpack frame are returned with the error", () => {
  const good = rawPackr.pack({ op: "ping", id: 1 });
  const truncated = rawPackr.pack({ op: "ping", id: 2 }).subarray(0, 5);
  const r = decodeMessage(bytes(good, good, truncated), MP);
  assert.deepEqual(r.frames, [{ op: "ping", id: 1 }, { op: "ping", id: 1 }]);
  assert.equal(r.error?.code, "bad_frame");
  assert.match(r.error!.message, /Frame 3/);
});

Deno.test("frames before a bad json line are returned with the error", () => {
  const r = decodeMessage('{"op":"ping","id":1}\n{"op":\n{"op":"ping","id":3}', JS);
  assert.deepEqual(r.frames, [{ op: "ping", id: 1 }]);
  assert.equal(r.error?.code, "bad_frame");
  assert.equal(r.error?.re, undefined);
});

Deno.test("a frame that is not a map with a string op is a bad frame carrying re when id is readable", () => {
  for (const sp of SUBPROTOCOLS) {
    const cases: [unknown, number | undefined][] = [
      [{ id: 7 }, 7],
      [{ op: 3, id: 8 }, 8],
      [{ op: null }, undefined],
      [{ op: 3, id: -1 }, undefined],
      [{ op: 3, id: 1.5 }, undefined],
      [[1, 2], undefined],
      ["ping", undefined],
      [42, undefined],
      [null, undefined],
    ];
    for (const [value, re] of cases) {
      const data = sp === MP ? rawPackr.pack(value) : JSON.stringify(value);
      const r = decodeMessage(data, sp);
      assert.deepEqual(r.frames, [], `${sp} ${JSON.stringify(value)}`);
      assert.equal(r.error?.code, "bad_frame");
      assert.equal(r.error?.re, re, `${sp} ${JSON.stringify(value)}`);
    }
  }
});

Deno.test("nesting deeper than the limit is a bad frame in both subprotocols", () => {
  let deep: unknown = 1;
  for (let i = 0; i < 15; i++) deep = [deep];
  const ok = { op: "x", id: 5, d: deep }; // depth 16 counting the frame
  const tooDeep = { op: "x", id: 5, d: [deep] }; // depth 17
  for (const sp of SUBPROTOCOLS) {
    const enc1 = sp === MP ? rawPackr.pack(ok) : JSON.stringify(ok);
    assert.equal(decodeMessage(enc1, sp).error, undefined, sp);
    const enc2 = sp === MP ? rawPackr.pack(tooDeep) : JSON.stringify(tooDeep);
    const r = decodeMessage(enc2, sp);
    assert.equal(r.error?.code, "bad_frame", sp);
    assert.equal(r.error?.re, 5, sp);
    assert.match(r.error!.message, /deeper/);
    // A custom limit applies.
    assert.equal(decodeMessage(enc1, sp, { maxDepth: 3 }).error?.code, "bad_frame");
  }
});

Deno.test("very deep nesting is rejected without exhausting the stack", () => {
  const deepMp = new Uint8Array(60000).fill(0x91);
  assert.equal(decodeMessage(deepMp, MP).error?.code, "bad_frame");
  const deepJson = '{"op":"x","a":' + "[".repeat(30000) + "]".repeat(30000) + "}";
  assert.equal(decodeMessage(deepJson, JS).error?.code, "bad_frame");
});

Deno.test("maps and arrays with more entries than the limit are bad frames", () => {
  const many = Array.from({ length: 11 }, (_, i) => i);
  const wide: Record<string, number> = {};
  for (let i = 0; i < 11; i++) wide["k" + i] = i;
  for (const sp of SUBPROTOCOLS) {
    const e = (v: unknown) => (sp === MP ? rawPackr.pack(v) : JSON.stringify(v));
    const lim = { maxEntries: 10 };
    assert.equal(decodeMessage(e({ op: "x", a: many.slice(0, 10) }), sp, lim).error, undefined);
    assert.match(decodeMessage(e({ op: "x", a: many }), sp, lim).error!.message, /array/);
    assert.match(decodeMessage(e({ op: "x", ...wide }), sp, lim).error!.message, /map/);
    assert.equal(decodeMessage(e({ op: "x", id: 3, m: wide }), sp, lim).error!.re, 3);
    // Default limit is 1024.
    const big = Array.from({ length: 1025 }, () => 0);
    assert.equal(decodeMessage(e({ op: "x", a: big }), sp).error?.code, "bad_frame");
    assert.equal(decodeMessage(e({ op: "x", a: big.slice(1) }), sp).error, undefined);
  }
});

Deno.test("strings and keys longer than the limit are bad frames", () => {
  for (const sp of SUBPROTOCOLS) {
    const e = (v: unknown) => (sp === MP ? rawPackr.pack(v) : JSON.stringify(v));
    const lim = { maxStringLength: 8 };
    assert.equal(decodeMessage(e({ op: "x", s: "12345678" }), sp, lim).error, undefined);
    assert.match(decodeMessage(e({ op: "x", s: "123456789" }), sp, lim).error!.message, /string/);
    assert.match(decodeMessage(e({ op: "x", "123456789": 1 }), sp, lim).error!.message, /key/);
  }
  const bin = rawPackr.pack({ op: "x", b: new Uint8Array(9) });
  assert.equal(decodeMessage(bin, MP, { maxStringLength: 8 }).error?.code, "bad_frame");
});

Deno.test("prototype-polluting keys are bad frames at any depth and pollute nothing", () => {
  for (const key of ["__proto__", "constructor", "prototype"]) {
    const json = [
      `{"op":"x","id":2,"${key}":{"polluted":true}}`,
      `{"op":"x","id":2,"a":[{"${key}":{"polluted":true}}]}`,
    ];
    for (const line of json) {
      const r = decodeMessage(line, JS);
      assert.equal(r.error?.code, "bad_frame", line);
      assert.equal(r.error?.re, 2);
    }
    // msgpack bytes spelled by hand: msgpackr itself would rename __proto__.
    const mp = bytes(
      0x83,
      fixstr("op"),
      fixstr("x"),
      fixstr("id"),
      2,
      fixstr(key),
      0x81,
      fixstr("polluted"),
      0xc3,
    );
    const r = decodeMessage(mp, MP);
    assert.equal(r.error?.code, "bad_frame", key);
    assert.equal(r.error?.re, 2);
  }
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  // "__proto_" (msgpackr's rename target) is an ordinary key.
  const r = decodeMessage(bytes(0x82, fixstr("op"), fixstr("x"), fixstr("__proto_"), 1), MP);
  assert.deepEqual(r.frames, [{ op: "x", __proto_: 1 }]);
});

Deno.test("msgpack extensions, 0xc1 and non-string map keys are bad frames", () => {
  const cases = [
    bytes(0x82, fixstr("op"), fixstr("x"), fixstr("t"), [0xd6, 0xff, 0, 0, 0, 1]), // timestamp
    bytes(0x82, fixstr("op"), fixstr("x"), fixstr("u"), [0xd4, 0, 0]), // msgpackr undefined
    bytes(0x82, fixstr("op"), fixstr("x"), fixstr("r"), [0xc7, 1, 0x72, 0]), // ext8
    bytes(0x82, fixstr("op"), fixstr("x"), fixstr("c"), 0xc1),
    bytes(0x82, fixstr("op"), fixstr("x"), 0x01, 0x02), // int key
    bytes(0x82, fixstr("op"), fixstr("x"), 0x80, 0x02), // map key
  ];
  for (const c of cases) {
    const r = decodeMessage(c, MP);
    assert.deepEqual(r.frames, [], hex(c));
    assert.equal(r.error?.code, "bad_frame", hex(c));
  }
});

Deno.test("huge declared lengths with tiny payloads are rejected quickly", () => {
  const headers = [
    [0xdb, 0xff, 0xff, 0xff, 0xf0, 0x41], // str32
    [0xc6, 0xff, 0xff, 0xff, 0xf0, 0x01], // bin32
    [0xdd, 0xff, 0xff, 0xff, 0xf0, 0x01], // array32
    [0xdf, 0xff, 0xff, 0xff, 0xf0, 0xa1, 0x61, 0x01], // map32
    [0xdc, 0x03, 0xff, 0x01], // array16 within the entry limit, truncated
    [0xde, 0x03, 0xff, 0xa1, 0x61, 0x01], // map16, truncated
    [0xda, 0xff, 0xff, 0x41], // str16
  ];
  for (const h of headers) {
    for (const data of [bytes(h), bytes(0x82, fixstr("op"), fixstr("x"), fixstr("v"), h)]) {
      const t0 = performance.now();
      for (let i = 0; i < 1000; i++) {
        const r = decodeMessage(data, MP);
        assert.equal(r.error?.code, "bad_frame", hex(data));
      }
      assert.ok(performance.now() - t0 < 500, `too slow for ${hex(data)}`);
    }
  }
});

Deno.test("encodeFrames produces one message that decodes back to the frames in order", () => {
  const frames = [
    { op: "ok", re: 1, seq: 0 },
    { op: "msg", seq: 2, body: { type: "text", text: "héllo\nworld" }, ts: 1_700_000_000_123 },
  ];
  for (const sp of SUBPROTOCOLS) {
    const data = encodeFrames(frames, sp);
    assert.equal(typeof data === "string", sp === JS);
    assert.deepEqual(decodeMessage(data, sp), { frames });
    const single = encodeFrame(frames[1], sp);
    assert.deepEqual(decodeMessage(single, sp).frames, [frames[1]]);
    const codec = createFrameCodec(sp);
    assert.equal(codec.subprotocol, sp);
    assert.deepEqual(codec.decode(codec.encode(frames)).frames, frames);
    assert.deepEqual(codec.decode(codec.encodeOne(frames[0])).frames, [frames[0]]);
  }
});

Deno.test("json frames are separated by newlines only between frames", () => {
  assert.equal(encodeFrames([{ op: "a" }, { op: "b" }], JS), '{"op":"a"}\n{"op":"b"}');
  assert.equal(encodeFrame({ op: "a", t: "x\ny" }, JS), '{"op":"a","t":"x\\ny"}');
});

Deno.test("msgpack encoding keeps integers beyond 32 bits as MessagePack integers", () => {
  const data = encodeFrame({ op: "x", ts: 1_700_000_000_123, n: -(2 ** 40), f: 1.5 }, MP);
  assert.ok(data instanceof Uint8Array);
  const h = hex(data);
  assert.match(h, /cf 00 00 01 8b cf e5 68 7b|d3 00 00 01 8b cf e5 68 7b/); // ts as (u)int64
  assert.match(h, /d3 ff ff ff 00 00 00 00 00/); // n as int64
  assert.match(h, /cb 3f f8/); // 1.5 stays a float
  assert.deepEqual(decodeMessage(data, MP).frames, [{
    op: "x",
    ts: 1_700_000_000_123,
    n: -(2 ** 40),
    f: 1.5,
  }]);
});

Deno.test("undefined fields are omitted in both subprotocols", () => {
  const frame = { op: "ok", re: 1, more: undefined, nested: { a: undefined, b: 2 } };
  for (const sp of SUBPROTOCOLS) {
    assert.deepEqual(decodeMessage(encodeFrame(frame, sp), sp).frames, [
      { op: "ok", re: 1, nested: { b: 2 } },
    ]);
  }
  // The caller's object is left untouched.
  assert.ok("more" in frame);
});

Deno.test("encoded msgpack bytes stay intact after later encodes", () => {
  const first = encodeFrame({ op: "a", text: "x".repeat(100) }, MP) as Uint8Array;
  const copy = first.slice();
  for (let i = 0; i < 200; i++) encodeFrame({ op: "b", text: "y".repeat(i * 50) }, MP);
  assert.deepEqual(first, copy);
});

Deno.test("joinEncoded batches separately encoded frames into one message", () => {
  for (const sp of SUBPROTOCOLS) {
    const a = encodeFrame({ op: "a" }, sp);
    const b = encodeFrame({ op: "b", n: 1 }, sp);
    assert.deepEqual(decodeMessage(joinEncoded([a, b], sp), sp).frames, [
      { op: "a" },
      { op: "b", n: 1 },
    ]);
  }
  assert.throws(() => joinEncoded([new Uint8Array(1)], JS), TypeError);
  assert.throws(() => joinEncoded(["x"], MP), TypeError);
});

// ---- properties

Deno.test("random bytes and random text never make decodeMessage throw", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 256 }), fc.string({ maxLength: 256 }), (b, s) => {
      for (const sp of SUBPROTOCOLS) {
        for (const data of [b, s]) {
          const r = decodeMessage(data, sp);
          assert.ok(Array.isArray(r.frames));
          if (r.error) assert.equal(r.error.code, "bad_frame");
          for (const f of r.frames) assert.equal(typeof f.op, "string");
        }
      }
    }),
    { numRuns: 500 },
  );
});

Deno.test("random valid frames prefixed to mutated bytes still decode the valid prefix", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (tail) => {
      const head = encodeFrames([{ op: "a", id: 1 }, { op: "b" }], MP) as Uint8Array;
      const r = decodeMessage(bytes(head, tail), MP);
      assert.ok(r.frames.length >= 2);
      assert.deepEqual(r.frames.slice(0, 2), [{ op: "a", id: 1 }, { op: "b" }]);
    }),
    { numRuns: 300 },
  );
});

const safeKey = fc.string({ maxLength: 12 }).filter((k) =>
  k !== "__proto__" && k !== "constructor" && k !== "prototype"
);
const leaf = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.maxSafeInteger(),
  fc.maxSafeNat(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => (x === 0 ? 0 : x)),
  fc.string({ maxLength: 40, unit: "grapheme" }),
);
const { value: valueArb } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { maxDepth: 4, depthSize: "small" },
    leaf,
    fc.array(tie("value"), { maxLength: 5 }),
    fc.dictionary(safeKey, tie("value"), { maxKeys: 5, noNullPrototype: true }),
  ),
}));
const frameArb: fc.Arbitrary<Frame> = fc.tuple(
  fc.string({ maxLength: 16 }),
  fc.dictionary(safeKey.filter((k) => k !== "op"), valueArb, {
    maxKeys: 6,
    noNullPrototype: true,
  }),
).map(([op, rest]) => ({ ...rest, op }));

Deno.test("random valid frames round-trip through both subprotocols", () => {
  fc.assert(
    fc.property(fc.array(frameArb, { minLength: 1, maxLength: 5 }), (frames) => {
      for (const sp of SUBPROTOCOLS as readonly Subprotocol[]) {
        const r = decodeMessage(encodeFrames(frames, sp), sp);
        assert.equal(r.error, undefined, `${sp}: ${r.error?.message}`);
        assert.deepStrictEqual(r.frames, frames);
      }
    }),
    { numRuns: 300 },
  );
});
