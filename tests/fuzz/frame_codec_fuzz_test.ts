/**
 * Property-based fuzzing of the frame decoder (gateway/frame_codec.ts) with hostile input:
 * random bytes, truncated MessagePack, deep nesting, huge declared lengths (array32, map32, str32,
 * bin32 headers over tiny payloads), prototype keys, wrong types, extreme numbers, invalid UTF-8.
 *
 * Invariants checked on every run: decodeMessage never throws, answers quickly, and every frame it
 * returns is a plain object with a string `op`, within the depth and entry limits, without a
 * `__proto__`, `constructor` or `prototype` key at any depth; and nothing reaches
 * `Object.prototype`.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Packr } from "msgpackr";
import { decodeMessage, DEFAULT_DECODE_LIMITS, type Frame } from "../../gateway/frame_codec.ts";

const packr = new Packr({ useRecords: false });
const FORBIDDEN = new Set(["__proto__", "constructor", "prototype"]);
const RUNS = 300;

function checkValue(v: unknown, depth: number): void {
  if (typeof v !== "object" || v === null) return;
  assert.ok(depth <= DEFAULT_DECODE_LIMITS.maxDepth, `depth ${depth}`);
  if (Array.isArray(v)) {
    assert.ok(v.length <= DEFAULT_DECODE_LIMITS.maxEntries);
    for (const x of v) checkValue(x, depth + 1);
    return;
  }
  if (v instanceof Uint8Array) return;
  const proto = Object.getPrototypeOf(v);
  assert.ok(proto === Object.prototype || proto === null, "plain object");
  const keys = Reflect.ownKeys(v);
  assert.ok(keys.length <= DEFAULT_DECODE_LIMITS.maxEntries);
  for (const k of keys) {
    assert.equal(typeof k, "string");
    assert.ok(!FORBIDDEN.has(k as string), `forbidden key ${String(k)}`);
    checkValue((v as Record<string, unknown>)[k as string], depth + 1);
  }
}

function checkFrames(frames: Frame[]): void {
  for (const f of frames) {
    assert.equal(typeof f.op, "string");
    checkValue(f, 1);
  }
  // deno-lint-ignore no-prototype-builtins
  assert.ok(!({} as Record<string, unknown>).hasOwnProperty("polluted"));
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
}

/** Decodes with the invariants and a time bound. */
function decodeChecked(data: string | Uint8Array, proto: "im.v1.msgpack" | "im.v1.json") {
  const t0 = performance.now();
  const r = decodeMessage(data, proto);
  const ms = performance.now() - t0;
  // Generous: the point is that lying headers cost nothing, not a benchmark.
  assert.ok(ms < 250, `decode took ${ms.toFixed(1)} ms for ${data.length} bytes`);
  checkFrames(r.frames);
  if (r.error) {
    assert.equal(r.error.code, "bad_frame");
    if (r.error.re !== undefined) assert.ok(Number.isSafeInteger(r.error.re) && r.error.re > 0);
  }
  return r;
}

// ---- a raw MessagePack writer that can lie (headers are written as given)

const bytes = (...xs: number[]) => new Uint8Array(xs);
const cat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};
const u32 = (n: number) => bytes(n >>> 24 & 255, n >>> 16 & 255, n >>> 8 & 255, n & 255);
const str = (s: string) => packr.pack(s) as Uint8Array;
const rawStr = (b: Uint8Array) => cat([bytes(0xd9, b.length), b]);

/** Hostile MessagePack fragments (each a complete or deliberately broken value). */
const hostileValue: fc.Arbitrary<Uint8Array> = fc.oneof(
  // huge declared lengths over tiny payloads
  fc.constantFrom(0xdd, 0xdf, 0xdb, 0xc6).chain((t) =>
    fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.uint8Array({ maxLength: 16 })).map((
      [n, tail],
    ) => cat([bytes(t), u32(n), tail]))
  ),
  fc.constantFrom(0xdc, 0xde, 0xda, 0xc5).chain((t) =>
    fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 16 })).map((
      [n, tail],
    ) => cat([bytes(t, n >> 8, n & 255), tail]))
  ),
  // deep nesting: arrays or maps of one
  fc.integer({ min: 1, max: 5000 }).map((d) => {
    const open = new Uint8Array(d).fill(0x91);
    return cat([open, bytes(0xc0)]);
  }),
  fc.integer({ min: 1, max: 3000 }).map((d) => {
    const parts: Uint8Array[] = [];
    for (let i = 0; i < d; i++) parts.push(bytes(0x81), str("a"));
    parts.push(bytes(0xc0));
    return cat(parts);
  }),
  // prototype keys, as str8 and fixstr
  fc.constantFrom("__proto__", "constructor", "prototype").map((k) =>
    cat([bytes(0x81), rawStr(new TextEncoder().encode(k)), bytes(0x81), str("polluted"), str("x")])
  ),
  // extreme numbers: NaN, ±Infinity, -0 (float64/float32), uint64 max, int64 min, 2^53+1
  fc.constantFrom(
    cat([bytes(0xcb), new Uint8Array(new Float64Array([NaN]).buffer).reverse()]),
    cat([bytes(0xcb), new Uint8Array(new Float64Array([Infinity]).buffer).reverse()]),
    cat([bytes(0xcb), new Uint8Array(new Float64Array([-Infinity]).buffer).reverse()]),
    cat([bytes(0xcb), new Uint8Array(new Float64Array([-0]).buffer).reverse()]),
    cat([bytes(0xca), new Uint8Array(new Float32Array([NaN]).buffer).reverse()]),
    bytes(0xcf, 255, 255, 255, 255, 255, 255, 255, 255),
    bytes(0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0),
    bytes(0xcf, 0, 0x20, 0, 0, 0, 0, 0, 1),
  ),
  // invalid UTF-8 in strings and keys
  fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => rawStr(b)),
  fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) =>
    cat([bytes(0x81), rawStr(b), bytes(0xc0)])
  ),
  // extensions, timestamps, 0xc1
  fc.constantFrom(
    bytes(0xc1),
    bytes(0xd4, 1, 2),
    bytes(0xd6, 0xff, 0, 0, 0, 1),
    bytes(0xc7, 3, 0x72, 1, 2, 3),
  ),
  // non-string keys
  fc.integer({ min: 0, max: 127 }).map((k) => bytes(0x81, k, 0xc0)),
  // anything
  fc.uint8Array({ maxLength: 64 }),
);

/** A frame map whose fields are hostile fragments (and maybe a readable id). */
const hostileFrame: fc.Arbitrary<Uint8Array> = fc.tuple(
  fc.constantFrom("send", "history", "sync", "ping", "auth", "ack", "__proto__", ""),
  fc.option(fc.integer({ min: -5, max: 2 ** 31 }), { nil: undefined }),
  fc.array(fc.tuple(fc.string({ maxLength: 12 }), hostileValue), { maxLength: 4 }),
).map(([op, id, fields]) => {
  const parts: Uint8Array[] = [bytes(0x80 | (fields.length + 1 + (id === undefined ? 0 : 1)))];
  parts.push(str("op"), str(op));
  if (id !== undefined) parts.push(str("id"), packr.pack(id) as Uint8Array);
  for (const [k, v] of fields) parts.push(str(k), v);
  return cat(parts);
});

Deno.test("random bytes never make the decoder throw or return a bad frame", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2048 }), (b) => {
      decodeChecked(b, "im.v1.msgpack");
    }),
    { numRuns: RUNS },
  );
});

Deno.test("hostile MessagePack values inside frames are refused or decoded safely", () => {
  fc.assert(
    fc.property(fc.array(hostileFrame, { minLength: 1, maxLength: 4 }), (frames) => {
      decodeChecked(cat(frames), "im.v1.msgpack");
    }),
    { numRuns: RUNS * 2 },
  );
});

Deno.test("huge declared lengths are refused without reading or allocating them", () => {
  for (const t of [0xdd, 0xdf, 0xdb, 0xc6]) {
    const msg = cat([bytes(0x82), str("op"), str("send"), str("body"), bytes(t), u32(0xffffffff)]);
    const r = decodeChecked(msg, "im.v1.msgpack");
    assert.equal(r.frames.length, 0);
    assert.equal(r.error?.code, "bad_frame");
  }
});

Deno.test("a truncated message yields exactly the frames completed before the cut", () => {
  const frame = fc.record({
    op: fc.constantFrom("send", "ping", "sync"),
    id: fc.integer({ min: 1, max: 2 ** 40 }),
    text: fc.string({ maxLength: 50 }),
    n: fc.oneof(fc.double(), fc.integer(), fc.constant(-0)),
  });
  fc.assert(
    fc.property(fc.array(frame, { minLength: 1, maxLength: 5 }), fc.nat(), (frames, cutSeed) => {
      const encoded = frames.map((f) => packr.pack(f) as Uint8Array);
      const all = cat(encoded);
      const cut = cutSeed % (all.length + 1);
      const r = decodeChecked(all.subarray(0, cut), "im.v1.msgpack");
      let end = 0, complete = 0;
      for (const e of encoded) {
        if (end + e.length > cut) break;
        end += e.length;
        complete++;
      }
      assert.equal(r.frames.length, complete);
      assert.equal(r.error !== undefined, cut !== end, `cut ${cut} of ${all.length}`);
      for (let i = 0; i < complete; i++) assert.equal(r.frames[i].id, frames[i].id);
    }),
    { numRuns: RUNS },
  );
});

Deno.test("hostile JSON text is refused or decoded safely", () => {
  const hostileJson = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ unit: "binary", maxLength: 200 }),
    // lone surrogates (not valid UTF-16/UTF-8)
    fc.array(fc.integer({ min: 0xd800, max: 0xdfff }), { maxLength: 20 }).map((cs) =>
      `{"op":"send","id":1,"x":"${String.fromCharCode(...cs)}"}`
    ),
    fc.integer({ min: 1, max: 20_000 }).map((d) =>
      `{"op":"send","id":2,"b":${"[".repeat(d)}${"]".repeat(d)}}`
    ),
    fc.constantFrom("__proto__", "constructor", "prototype").map((k) =>
      `{"op":"send","id":3,"body":{"${k}":{"polluted":1}}}`
    ),
    fc.constantFrom(
      `{"op":"send","id":1e400}`,
      `{"op":"send","id":-0}`,
      `{"op":"send","id":18446744073709551616}`,
      `{"op":"send","id":NaN}`,
      `{"op":1}`,
      `[]`,
      `null`,
      `{"op":"send"`,
    ),
    fc.json({ maxDepth: 6 }),
  );
  fc.assert(
    fc.property(fc.array(hostileJson, { minLength: 1, maxLength: 4 }), (lines) => {
      decodeChecked(lines.join("\n"), "im.v1.json");
    }),
    { numRuns: RUNS * 2 },
  );
});

Deno.test("a valid frame is decoded with every extreme number it carries", () => {
  const msg = cat([
    bytes(0x86),
    str("op"),
    str("x"),
    str("nan"),
    bytes(0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0),
    str("inf"),
    bytes(0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0),
    str("negzero"),
    bytes(0xcb, 0x80, 0, 0, 0, 0, 0, 0, 0),
    str("u64max"),
    bytes(0xcf, 255, 255, 255, 255, 255, 255, 255, 255),
    str("i64min"),
    bytes(0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0),
  ]);
  const r = decodeChecked(msg, "im.v1.msgpack");
  assert.equal(r.error, undefined);
  const f = r.frames[0];
  assert.ok(Number.isNaN(f.nan));
  assert.equal(f.inf, Infinity);
  assert.ok(Object.is(f.negzero, -0));
  // 64-bit integers come out as numbers (never BigInt), however large.
  assert.equal(typeof f.u64max, "number");
  assert.equal(typeof f.i64min, "number");
});
