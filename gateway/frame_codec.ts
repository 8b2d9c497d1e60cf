/**
 * WebSocket framing of the v1 wire contract (docs: /work/shared/PROTOCOL-CORE.md).
 *
 * One WebSocket message carries one or more frames:
 * - `im.v1.msgpack`: binary messages holding MessagePack maps back to back (a MessagePack stream);
 * - `im.v1.json`: text messages holding JSON objects separated by `\n` (empty lines are ignored,
 *   `\r\n` is tolerated).
 *
 * Decoding is defensive: the caller checks the size cap first ({@link messageByteLength}), then
 * {@link decodeMessage} enforces the decode limits (nesting depth, entries per map/array, string
 * length), rejects keys that could pollute prototypes, and never throws: anything wrong becomes a
 * `bad_frame` error that still returns the frames decoded before the bad one, because frames are
 * processed in order and those may already be acted on.
 *
 * MessagePack input is first walked by a small allocation-free scanner that checks every header
 * against the bytes actually present and against the limits, so a header declaring a 4 GiB string
 * or a million-entry map costs nothing; only the valid prefix is then handed to msgpackr.
 *
 * @module
 */
import { Packr, Unpackr } from "msgpackr";

/** The subprotocols the server speaks, in the server's order of preference. */
export const SUBPROTOCOLS = ["im.v1.msgpack", "im.v1.json"] as const;

/** One of {@link SUBPROTOCOLS}. */
export type Subprotocol = typeof SUBPROTOCOLS[number];

/** Default cap on one WebSocket message, in bytes (UTF-8 for text). */
export const DEFAULT_MAX_MESSAGE_BYTES = 65536;

/** A decoded frame: a plain map whose `op` is a string. Other fields are unchecked. */
export interface Frame {
  op: string;
  [field: string]: unknown;
}

/** Why a message could not be (fully) decoded. Never echoes message content. */
export interface FrameDecodeError {
  code: "bad_frame";
  /** The bad frame's `id`, when one could be read (a positive safe integer). */
  re?: number;
  /** For humans: which frame and what was wrong. */
  message: string;
}

/** Outcome of {@link decodeMessage}. */
export interface DecodeResult {
  /** Frames decoded before the first bad one (all of them when `error` is absent), in order. */
  frames: Frame[];
  /** Set when the message held something that is not a valid frame; decoding stopped there. */
  error?: FrameDecodeError;
}

/** Decode limits; every field has a default. */
export interface DecodeLimits {
  /** Deepest nesting of maps/arrays, the frame's own map counting as 1. Default 16. */
  maxDepth?: number;
  /** Most keys in one map / items in one array. Default 1024. */
  maxEntries?: number;
  /**
   * Longest string (keys included) or binary value: bytes on `im.v1.msgpack`, UTF-16 code units
   * on `im.v1.json`. Default: the message size cap, 65536.
   */
  maxStringLength?: number;
}

/** The defaults of {@link DecodeLimits}. */
export const DEFAULT_DECODE_LIMITS: Readonly<Required<DecodeLimits>> = Object.freeze({
  maxDepth: 16,
  maxEntries: 1024,
  maxStringLength: DEFAULT_MAX_MESSAGE_BYTES,
});

/** What a WebSocket message event can carry (Deno delivers text as string, binary as buffers). */
export type MessageData = string | Uint8Array | ArrayBuffer;

/** A codec bound to one connection's subprotocol and limits. */
export interface FrameCodec {
  readonly subprotocol: Subprotocol;
  /** See {@link decodeMessage}. Never throws. */
  decode(data: MessageData): DecodeResult;
  /** See {@link encodeFrames}. */
  encode(frames: readonly object[]): string | Uint8Array;
  /** See {@link encodeFrame}. */
  encodeOne(frame: object): string | Uint8Array;
}

/** Keys rejected anywhere in a frame so no decoded value can reach an object's prototype. */
const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);
const FORBIDDEN_KEY_BYTES: readonly Uint8Array[] = [...FORBIDDEN_KEYS].map((k) =>
  new TextEncoder().encode(k)
);

// Numbers outside these ranges are written by msgpackr as float64; the contract wants integers to
// stay MessagePack integers (clients in typed languages decode `ts`, `seq` into int64).
const UINT32_MAX = 0xffffffff;
const INT32_MIN = -0x80000000;
const INT64_LIMIT = 2 ** 63;

// useRecords:false keeps msgpackr's record extension off: output is plain, portable MessagePack.
const packr = new Packr({ useRecords: false });
// int64AsType "number": 64-bit integers decode as numbers (exact up to 2^53), never BigInt.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" });

/** True when `value` names a subprotocol of {@link SUBPROTOCOLS}. */
export function isSubprotocol(value: unknown): value is Subprotocol {
  return value === SUBPROTOCOLS[0] || value === SUBPROTOCOLS[1];
}

/**
 * Picks the subprotocol to answer an upgrade with from a `Sec-WebSocket-Protocol` header value:
 * the first one the client offers that the server speaks, or `null` when none (→ HTTP 400).
 */
export function negotiateSubprotocol(offered: string | null | undefined): Subprotocol | null {
  if (!offered) return null;
  for (const part of offered.split(",")) {
    const name = part.trim();
    if (isSubprotocol(name)) return name;
  }
  return null;
}

/**
 * Size of a WebSocket message in bytes: UTF-8 bytes for text (computed without encoding; a lone
 * surrogate counts 3 bytes as its U+FFFD replacement would), byte length for binary.
 */
export function messageByteLength(data: MessageData): number {
  if (typeof data !== "string") return data.byteLength;
  let bytes = data.length;
  for (let i = 0; i < data.length; i++) {
    const c = data.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      bytes += 1;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < data.length) {
      const next = data.charCodeAt(i + 1);
      // A surrogate pair is 2 code units and 4 UTF-8 bytes.
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 2;
        i++;
      } else {
        bytes += 2;
      }
    } else {
      bytes += 2;
    }
  }
  return bytes;
}

/**
 * Decodes one WebSocket message into its frames, in order.
 *
 * Guarantees: never throws; returns every frame before the first bad one; a text message on
 * `im.v1.msgpack` or a binary one on `im.v1.json` is a `bad_frame`; every returned frame is a
 * plain object with a string `op`, within the limits, without `__proto__`, `constructor` or
 * `prototype` keys at any depth; 64-bit integers decode as numbers. An empty message (or one with
 * only empty lines on JSON) yields no frames and no error. The size cap is NOT checked here: the
 * caller checks {@link messageByteLength} first (a too-large message closes with 1009).
 */
export function decodeMessage(
  data: MessageData,
  subprotocol: Subprotocol,
  limits: DecodeLimits = {},
): DecodeResult {
  const lim = resolveLimits(limits);
  try {
    if (subprotocol === "im.v1.msgpack") {
      if (typeof data === "string") {
        return fail([], "A text message on im.v1.msgpack (binary messages expected)");
      }
      if (data instanceof ArrayBuffer) return decodeMsgpack(new Uint8Array(data), lim);
      if (data instanceof Uint8Array) return decodeMsgpack(data, lim);
      return fail([], "Unsupported message data");
    }
    if (subprotocol === "im.v1.json") {
      if (typeof data !== "string") {
        return fail([], "A binary message on im.v1.json (text messages expected)");
      }
      return decodeJson(data, lim);
    }
    return fail([], "Unknown subprotocol");
  } catch (_err) {
    // Defensive: the scanner and validators are meant to catch everything first. The cause is
    // not reported to the client (it could quote input); the frames decoded so far are lost,
    // which is allowed since decoding failed.
    return fail([], "Undecodable message");
  }
}

/**
 * Encodes several frames into ONE WebSocket message: concatenated MessagePack maps (a
 * `Uint8Array`) on `im.v1.msgpack`, `\n`-joined JSON (a string) on `im.v1.json`.
 *
 * Frames must hold JSON-compatible values (plus `Uint8Array`, MessagePack only). Fields that are
 * `undefined` are omitted in both subprotocols. Integers stay MessagePack integers at any width
 * (msgpackr alone would write those beyond 32 bits as float64). The returned bytes are not reused
 * by later calls, so one encoding can be sent to many sockets.
 */
export function encodeFrames(
  frames: readonly object[],
  subprotocol: Subprotocol,
): string | Uint8Array {
  if (subprotocol === "im.v1.json") {
    return frames.length === 1 ? jsonOne(frames[0]) : frames.map(jsonOne).join("\n");
  }
  if (frames.length === 1) return packOne(frames[0]);
  // One buffer for the whole message: fan-out copies are written straight into it.
  const parts: (Uint8Array | null)[] = new Array(frames.length);
  let total = 0;
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i];
    if (f instanceof SeqFrame) {
      parts[i] = null;
      total += f.fanout.packedLength(f.seq);
    } else {
      const p = packOne(f);
      parts[i] = p;
      total += p.byteLength;
    }
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (let i = 0; i < frames.length; i++) {
    const p = parts[i];
    if (p === null) {
      const f = frames[i] as SeqFrame;
      at = f.fanout.writePacked(f.seq, out, at);
    } else {
      out.set(p, at);
      at += p.byteLength;
    }
  }
  return out;
}

/** Encodes a single frame as one WebSocket message; see {@link encodeFrames}. */
export function encodeFrame(frame: object, subprotocol: Subprotocol): string | Uint8Array {
  if (subprotocol === "im.v1.json") return jsonOne(frame);
  return packOne(frame);
}

/**
 * One frame fanned out to many users, each copy differing only in the user's `seq`: the shared
 * fields are encoded once (per subprotocol) and each copy's encoding is the shared bytes with
 * its `seq` spliced in. {@link SeqFanout.frameFor} returns an ordinary frame object
 * `{op, seq, ...rest}` (same fields, same order as a spread would give), which
 * {@link encodeFrames} then encodes without walking it again; the result is byte-for-byte what
 * encoding the object itself gives. The frame must not be mutated after `frameFor` (the codec
 * checks `op` and `seq` and otherwise encodes the object itself).
 */
export class SeqFanout {
  readonly #op: unknown;
  readonly #rest: Record<string, unknown>;
  /** False when a key is an array index (JS would order it before `op`): encode as usual. */
  readonly #shareable: boolean;
  /** Where `seq` goes in the packed frame; "whole": pack each copy whole (never seen). */
  #packParts: { head: Uint8Array; tail: Uint8Array } | "whole" | null = null;
  #jsonTail: string | null = null;

  constructor(frame: Record<string, unknown>) {
    const { op, seq: _ignored, ...rest } = frame;
    this.#op = op;
    this.#rest = rest;
    const keys = Object.keys(rest);
    this.#shareable = typeof op === "string" && !keys.some((k) => /^\d+$/.test(k));
  }

  /** The `op` every copy carries. */
  get op(): unknown {
    return this.#op;
  }

  /** The frame of one recipient: `{op, seq, ...rest}`. */
  frameFor(seq: number): Record<string, unknown> {
    const frame = { op: this.#op, seq, ...this.#rest };
    if (this.#shareable) shared.set(frame, { fanout: this, seq });
    return frame;
  }

  /**
   * The copy of one recipient as a {@link SeqFrame}: what a connection queues instead of
   * {@link frameFor}'s object when it encodes with {@link encodeFrames} (no object spread, no
   * registration; written straight into the outgoing message). A frame whose fields cannot be
   * shared (see the constructor) comes back as the plain object.
   */
  seqFrame(seq: number): SeqFrame | Record<string, unknown> {
    return this.#shareable ? new SeqFrame(this, seq) : this.frameFor(seq);
  }

  /** MessagePack of `{op, seq, ...rest}`. */
  packed(seq: number): Uint8Array {
    const out = new Uint8Array(this.packedLength(seq));
    this.writePacked(seq, out, 0);
    return out;
  }

  /** Byte length of {@link packed}`(seq)`. */
  packedLength(seq: number): number {
    const parts = this.#parts();
    if (parts === "whole") return this.#packWhole(seq).length;
    return parts.head.length + seqLength(seq) + parts.tail.length;
  }

  #packWhole(seq: number): Uint8Array {
    return packOne({ op: this.#op, seq, ...this.#rest });
  }

  /** Writes {@link packed}`(seq)` into `out` at `at`; returns the offset after it. */
  writePacked(seq: number, out: Uint8Array, at: number): number {
    const parts = this.#parts();
    if (parts === "whole") {
      const bytes = this.#packWhole(seq);
      out.set(bytes, at);
      return at + bytes.length;
    }
    const { head, tail } = parts;
    out.set(head, at);
    at += head.length;
    if (!isSmallSeq(seq)) {
      const p = packr.pack(toPackable(seq));
      out.set(p, at);
      at += p.byteLength;
    } else {
      // MessagePack's smallest unsigned form, as msgpackr writes it.
      if (seq < 0x80) out[at++] = seq;
      else if (seq < 0x100) {
        out[at++] = 0xcc;
        out[at++] = seq;
      } else if (seq < 0x10000) {
        out[at++] = 0xcd;
        out[at++] = seq >> 8;
        out[at++] = seq & 0xff;
      } else {
        out[at++] = 0xce;
        out[at++] = seq >>> 24;
        out[at++] = (seq >> 16) & 0xff;
        out[at++] = (seq >> 8) & 0xff;
        out[at++] = seq & 0xff;
      }
    }
    out.set(tail, at);
    return at + tail.length;
  }

  #parts(): { head: Uint8Array; tail: Uint8Array } | "whole" {
    let parts = this.#packParts;
    if (parts === null) parts = this.#packParts = this.#partsFromWhole() ?? "whole";
    return parts;
  }

  /**
   * Head and tail cut out of the frame packed whole with `seq: 0` (one pack: a direct message
   * has only two recipients, so this setup is a large part of its encoding). Undefined when the
   * bytes are not laid out as expected.
   */
  #partsFromWhole(): { head: Uint8Array; tail: Uint8Array } | undefined {
    const whole = packOne({ op: this.#op, seq: 0, ...this.#rest });
    let at = mapHeaderLength(whole);
    // The key "op" (fixstr), then op's string value, then the key "seq" and the value 0.
    if (whole[at] !== 0xa2 || whole[at + 1] !== 0x6f || whole[at + 2] !== 0x70) return undefined;
    at += 3;
    const b = whole[at];
    const view = new DataView(whole.buffer, whole.byteOffset, whole.byteLength);
    if (b >= 0xa0 && b <= 0xbf) at += 1 + (b & 0x1f);
    else if (b === 0xd9) at += 2 + whole[at + 1];
    else if (b === 0xda) at += 3 + view.getUint16(at + 1);
    else if (b === 0xdb) at += 5 + view.getUint32(at + 1);
    else return undefined;
    if (
      whole[at] !== 0xa3 || whole[at + 1] !== 0x73 || whole[at + 2] !== 0x65 ||
      whole[at + 3] !== 0x71 || whole[at + 4] !== 0x00
    ) return undefined;
    return { head: whole.subarray(0, at + 4), tail: whole.subarray(at + 5) };
  }

  /** JSON of `{op, seq, ...rest}`. */
  json(seq: number): string {
    if (this.#jsonTail === null) {
      const rest = JSON.stringify(this.#rest);
      this.#jsonTail = rest === "{}" ? "}" : "," + rest.slice(1);
    }
    return `{"op":${JSON.stringify(this.#op)},"seq":${JSON.stringify(seq)}${this.#jsonTail}`;
  }
}

/**
 * One recipient's copy of a {@link SeqFanout} frame, as queued by a connection: `op` and `seq`
 * are readable like a frame's; {@link encodeFrames} writes its bytes without building the frame.
 */
export class SeqFrame {
  constructor(readonly fanout: SeqFanout, readonly seq: number) {}

  /** The frame's `op`. */
  get op(): unknown {
    return this.fanout.op;
  }
}

function isSmallSeq(seq: number): boolean {
  return Number.isInteger(seq) && seq >= 0 && seq <= UINT32_MAX;
}

/** Bytes of `seq` as MessagePack writes it. */
function seqLength(seq: number): number {
  if (!isSmallSeq(seq)) return packr.pack(toPackable(seq)).byteLength;
  return seq < 0x80 ? 1 : seq < 0x100 ? 2 : seq < 0x10000 ? 3 : 5;
}

/** Frames made by {@link SeqFanout.frameFor}, with what encodes them. */
const shared = new WeakMap<object, { fanout: SeqFanout; seq: number }>();

/** The shared encoding of `frame`, when it was made by a SeqFanout and is unchanged. */
function sharedOf(frame: object): { fanout: SeqFanout; seq: number } | undefined {
  const s = shared.get(frame);
  const f = frame as { op?: unknown; seq?: unknown };
  if (s && (f.seq !== s.seq || f.op !== s.fanout.op)) return undefined;
  return s;
}

/** Length of the map header at the start of packed bytes (fixmap, map16 or map32). */
function mapHeaderLength(bytes: Uint8Array): number {
  const b = bytes[0];
  if (b >= 0x80 && b <= 0x8f) return 1;
  if (b === 0xde) return 3;
  if (b === 0xdf) return 5;
  throw new TypeError("Packed frame does not start with a map");
}

/**
 * Joins messages already produced by {@link encodeFrame}/{@link encodeFrames} for the same
 * subprotocol into one message (so a fan-out frame encoded once can be batched per socket).
 */
export function joinEncoded(
  parts: readonly (string | Uint8Array)[],
  subprotocol: Subprotocol,
): string | Uint8Array {
  if (subprotocol === "im.v1.json") {
    return parts.map((p) => {
      if (typeof p !== "string") throw new TypeError("im.v1.json parts must be strings");
      return p;
    }).join("\n");
  }
  const bytes = parts.map((p) => {
    if (typeof p === "string") throw new TypeError("im.v1.msgpack parts must be bytes");
    return p;
  });
  return bytes.length === 1 ? bytes[0] : concatBytes(bytes);
}

/** A {@link FrameCodec} bound to `subprotocol` and `limits`. */
export function createFrameCodec(subprotocol: Subprotocol, limits: DecodeLimits = {}): FrameCodec {
  const lim = resolveLimits(limits);
  return {
    subprotocol,
    decode: (data) => decodeMessage(data, subprotocol, lim),
    encode: (frames) => encodeFrames(frames, subprotocol),
    encodeOne: (frame) => encodeFrame(frame, subprotocol),
  };
}

// ---------------------------------------------------------------------------------------------
// encoding helpers

function jsonOne(frame: object): string {
  if (frame instanceof SeqFrame) return frame.fanout.json(frame.seq);
  const s = sharedOf(frame);
  return s ? s.fanout.json(s.seq) : JSON.stringify(frame);
}

function packOne(frame: object): Uint8Array {
  if (frame instanceof SeqFrame) return frame.fanout.packed(frame.seq);
  const s = sharedOf(frame);
  if (s) return s.fanout.packed(s.seq);
  const packed = packr.pack(toPackable(frame));
  // msgpackr hands out views into a pooled buffer (not overwritten later); return a plain
  // Uint8Array view so callers see the standard type.
  return new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength);
}

function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.byteLength;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Returns `value` itself when msgpackr can pack it as the contract wants, otherwise a copy where
 * integers beyond 32 bits are BigInts (packed as int64) and `undefined` fields are dropped.
 * Copy-on-write keeps the common case allocation-free.
 */
function toPackable(value: unknown): unknown {
  if (typeof value === "number") {
    if (
      Number.isInteger(value) && (value > UINT32_MAX || value < INT32_MIN) &&
      Math.abs(value) < INT64_LIMIT
    ) {
      return BigInt(value);
    }
    return value;
  }
  if (typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | null = null;
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      const packable = toPackable(item);
      if (packable !== item && copy === null) copy = value.slice(0, i);
      if (copy !== null) copy.push(packable);
    }
    return copy ?? value;
  }
  if (!isPlainObject(value)) return value;
  let copy: Record<string, unknown> | null = null;
  const keys = Object.keys(value);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const item = value[key];
    const packable = item === undefined ? undefined : toPackable(item);
    if ((item === undefined || packable !== item) && copy === null) {
      copy = {};
      for (let j = 0; j < i; j++) copy[keys[j]] = value[keys[j]];
    }
    if (copy !== null && packable !== undefined) copy[key] = packable;
  }
  return copy ?? value;
}

// ---------------------------------------------------------------------------------------------
// decoding

function resolveLimits(limits: DecodeLimits): Required<DecodeLimits> {
  return {
    maxDepth: limits.maxDepth ?? DEFAULT_DECODE_LIMITS.maxDepth,
    maxEntries: limits.maxEntries ?? DEFAULT_DECODE_LIMITS.maxEntries,
    maxStringLength: limits.maxStringLength ?? DEFAULT_DECODE_LIMITS.maxStringLength,
  };
}

function fail(frames: Frame[], message: string, re?: number): DecodeResult {
  const error: FrameDecodeError = { code: "bad_frame", message };
  if (re !== undefined) error.re = re;
  return { frames, error };
}

function asRequestId(value: unknown): number | undefined {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0 ? value : undefined;
}

/** Checks that a decoded top-level value is a frame; returns an error text or null. */
function frameProblem(value: unknown): string | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return "is not a map";
  }
  if (typeof (value as Record<string, unknown>).op !== "string") return "has no string op";
  return null;
}

function idOf(value: unknown): number | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  return Object.hasOwn(value, "id")
    ? asRequestId((value as Record<string, unknown>).id)
    : undefined;
}

// ---- JSON

function decodeJson(text: string, lim: Required<DecodeLimits>): DecodeResult {
  const frames: Frame[] = [];
  const lines = text.split("\n");
  let index = 0;
  for (let raw of lines) {
    if (raw.endsWith("\r")) raw = raw.slice(0, -1);
    if (raw.trim() === "") continue;
    index++;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      return fail(frames, `Frame ${index} is not valid JSON`);
    }
    const problem = frameProblem(value) ?? jsonLimitProblem(value, 1, lim);
    if (problem !== null) return fail(frames, `Frame ${index} ${problem}`, idOf(value));
    frames.push(value as Frame);
  }
  return { frames };
}

/** Walks a parsed JSON value (depth bounded by the limit, so recursion is shallow). */
function jsonLimitProblem(
  value: unknown,
  depth: number,
  lim: Required<DecodeLimits>,
): string | null {
  if (typeof value === "string") {
    return value.length > lim.maxStringLength ? "holds a string longer than the limit" : null;
  }
  if (typeof value !== "object" || value === null) return null;
  if (depth > lim.maxDepth) return `nests deeper than ${lim.maxDepth}`;
  if (Array.isArray(value)) {
    if (value.length > lim.maxEntries) return `holds an array of more than ${lim.maxEntries} items`;
    for (const item of value) {
      const p = jsonLimitProblem(item, depth + 1, lim);
      if (p !== null) return p;
    }
    return null;
  }
  const keys = Object.keys(value);
  if (keys.length > lim.maxEntries) return `holds a map of more than ${lim.maxEntries} keys`;
  for (const key of keys) {
    if (FORBIDDEN_KEYS.has(key)) return "uses a forbidden key";
    if (key.length > lim.maxStringLength) return "holds a key longer than the limit";
    const p = jsonLimitProblem((value as Record<string, unknown>)[key], depth + 1, lim);
    if (p !== null) return p;
  }
  return null;
}

// ---- MessagePack

/** Thrown inside the scanner only; carries a client-safe reason. */
class ScanError extends Error {}

/**
 * Walks one MessagePack value starting at `start` without allocating, enforcing the limits and
 * the accepted types: nil, booleans, integers, floats, str, bin, arrays, and maps with str keys.
 * Extension types (msgpackr's records, timestamps, `undefined`) and the never-used 0xc1 are
 * rejected: frames are portable MessagePack. Returns the offset after the value and, for a
 * top-level map, the value of its `id` key when it is a positive integer.
 */
class MsgpackScanner {
  pos = 0;
  id: number | undefined;
  constructor(private readonly b: Uint8Array, private readonly lim: Required<DecodeLimits>) {}

  private need(n: number): void {
    if (n > this.b.length - this.pos) throw new ScanError("is truncated");
  }
  private u8(): number {
    this.need(1);
    return this.b[this.pos++];
  }
  private u16(): number {
    this.need(2);
    const v = (this.b[this.pos] << 8) | this.b[this.pos + 1];
    this.pos += 2;
    return v;
  }
  private u32(): number {
    this.need(4);
    const b = this.b, p = this.pos;
    this.pos += 4;
    return b[p] * 0x1000000 + ((b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]);
  }
  private skip(n: number): void {
    this.need(n);
    this.pos += n;
  }
  private blob(len: number): void {
    if (len > this.lim.maxStringLength) throw new ScanError("holds a string longer than the limit");
    this.skip(len);
  }
  private container(count: number, depth: number, isMap: boolean): void {
    if (depth > this.lim.maxDepth) throw new ScanError(`nests deeper than ${this.lim.maxDepth}`);
    if (count > this.lim.maxEntries) {
      throw new ScanError(
        isMap
          ? `holds a map of more than ${this.lim.maxEntries} keys`
          : `holds an array of more than ${this.lim.maxEntries} items`,
      );
    }
    // Each entry needs at least one byte per element: cheap early rejection of lying headers.
    this.need(isMap ? count * 2 : count);
    for (let i = 0; i < count; i++) {
      if (isMap) {
        const keyIsId = this.key();
        if (keyIsId && depth === 1) this.id = this.peekPositiveInt();
      }
      this.value(depth + 1);
    }
  }

  /** Scans a map key (must be a str); returns whether it is `"id"`. */
  private key(): boolean {
    const t = this.u8();
    let len: number;
    if (t >= 0xa0 && t <= 0xbf) len = t & 0x1f;
    else if (t === 0xd9) len = this.u8();
    else if (t === 0xda) len = this.u16();
    else if (t === 0xdb) len = this.u32();
    else throw new ScanError("has a map key that is not a string");
    if (len > this.lim.maxStringLength) throw new ScanError("holds a key longer than the limit");
    this.need(len);
    const start = this.pos;
    this.pos += len;
    if (len === 9 || len === 11) {
      for (const bad of FORBIDDEN_KEY_BYTES) {
        if (bad.length === len && this.bytesEqual(start, bad)) {
          throw new ScanError("uses a forbidden key");
        }
      }
    }
    return len === 2 && this.b[start] === 0x69 && this.b[start + 1] === 0x64; // "id"
  }

  private bytesEqual(start: number, other: Uint8Array): boolean {
    for (let i = 0; i < other.length; i++) if (this.b[start + i] !== other[i]) return false;
    return true;
  }

  /** Reads (without consuming) a positive integer value at the cursor, if that is what is there. */
  private peekPositiveInt(): number | undefined {
    const b = this.b, p = this.pos;
    if (p >= b.length) return undefined;
    const t = b[p];
    const avail = b.length - p - 1;
    let v: number;
    if (t <= 0x7f) v = t;
    else if (t === 0xcc && avail >= 1) v = b[p + 1];
    else if (t === 0xcd && avail >= 2) v = (b[p + 1] << 8) | b[p + 2];
    else if (t === 0xce && avail >= 4) {
      v = b[p + 1] * 0x1000000 + ((b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4]);
    } else if ((t === 0xcf || t === 0xd3) && avail >= 8) {
      if (b[p + 1] & 0x80) return undefined; // negative int64 or uint64 ≥ 2^63
      const hi = b[p + 1] * 0x1000000 + ((b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4]);
      const lo = b[p + 5] * 0x1000000 + ((b[p + 6] << 16) | (b[p + 7] << 8) | b[p + 8]);
      v = hi * 0x100000000 + lo;
    } else if (t === 0xd0 && avail >= 1) v = (b[p + 1] << 24) >> 24;
    else if (t === 0xd1 && avail >= 2) v = (((b[p + 1] << 8) | b[p + 2]) << 16) >> 16;
    else if (t === 0xd2 && avail >= 4) {
      v = (b[p + 1] << 24) | (b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4];
    } else return undefined;
    return asRequestId(v);
  }

  value(depth: number): void {
    const t = this.u8();
    if (t <= 0x7f || t >= 0xe0) return; // fixint
    if (t <= 0x8f) return this.container(t & 0x0f, depth, true);
    if (t <= 0x9f) return this.container(t & 0x0f, depth, false);
    if (t <= 0xbf) return this.blob(t & 0x1f);
    switch (t) {
      case 0xc0:
      case 0xc2:
      case 0xc3:
        return;
      case 0xc4:
      case 0xd9:
        return this.blob(this.u8());
      case 0xc5:
      case 0xda:
        return this.blob(this.u16());
      case 0xc6:
      case 0xdb:
        return this.blob(this.u32());
      case 0xca:
        return this.skip(4);
      case 0xcb:
        return this.skip(8);
      case 0xcc:
      case 0xd0:
        return this.skip(1);
      case 0xcd:
      case 0xd1:
        return this.skip(2);
      case 0xce:
      case 0xd2:
        return this.skip(4);
      case 0xcf:
      case 0xd3:
        return this.skip(8);
      case 0xdc:
        return this.container(this.u16(), depth, false);
      case 0xdd:
        return this.container(this.u32(), depth, false);
      case 0xde:
        return this.container(this.u16(), depth, true);
      case 0xdf:
        return this.container(this.u32(), depth, true);
      case 0xc1:
        throw new ScanError("holds the never-used type 0xc1");
      default: // 0xc7-0xc9, 0xd4-0xd8: extensions
        throw new ScanError("holds a MessagePack extension type");
    }
  }
}

function decodeMsgpack(bytes: Uint8Array, lim: Required<DecodeLimits>): DecodeResult {
  if (bytes.length === 0) return { frames: [] };
  const scanner = new MsgpackScanner(bytes, lim);
  let scanError: FrameDecodeError | undefined;
  let validEnd = 0;
  let index = 0;
  while (scanner.pos < bytes.length) {
    index++;
    scanner.id = undefined;
    const top = bytes[scanner.pos];
    const isMap = (top >= 0x80 && top <= 0x8f) || top === 0xde || top === 0xdf;
    try {
      scanner.value(1);
    } catch (err) {
      if (!(err instanceof ScanError)) throw err;
      scanError = {
        code: "bad_frame",
        message: `Frame ${index} ${err.message}`,
        ...(scanner.id !== undefined ? { re: scanner.id } : {}),
      };
      break;
    }
    if (!isMap) {
      scanError = { code: "bad_frame", message: `Frame ${index} is not a map` };
      break;
    }
    validEnd = scanner.pos;
  }
  const frames: Frame[] = [];
  if (validEnd > 0) {
    const values = unpackr.unpackMultiple(bytes.subarray(0, validEnd)) as unknown[];
    for (let i = 0; i < values.length; i++) {
      const problem = frameProblem(values[i]);
      if (problem !== null) return fail(frames, `Frame ${i + 1} ${problem}`, idOf(values[i]));
      frames.push(values[i] as Frame);
    }
  }
  return scanError ? { frames, error: scanError } : { frames };
}
