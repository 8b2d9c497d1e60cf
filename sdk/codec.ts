/**
 * Frame encoding of the two WebSocket subprotocols, for clients (browser and Deno).
 *
 * `im.v1.msgpack`: MessagePack maps back to back in one binary message. `im.v1.json`: JSON
 * objects separated by `\n` in one text message. Both directions may carry several frames per
 * message; `decode` always returns every frame in order. MessagePack integers of any width
 * decode as JavaScript numbers (the protocol keeps them below 2^53).
 *
 * @module
 */
import { Packr, Unpackr } from "msgpackr";

/** A protocol frame: a map with a string `op`. */
export type Frame = Record<string, unknown> & { op: string };

/** The two subprotocols of the v1 wire contract. */
export type Subprotocol = "im.v1.msgpack" | "im.v1.json";

/** Short names of the subprotocols, as the client options take them. */
export type WireFormat = "msgpack" | "json";

/** The subprotocol of a short name. */
export function subprotocolOf(format: WireFormat): Subprotocol {
  return format === "json" ? "im.v1.json" : "im.v1.msgpack";
}

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" });
const utf8 = new TextDecoder();

/** Encodes frames as one WebSocket message of `protocol`. */
export function encodeFrames(frames: Frame[], protocol: Subprotocol): string | Uint8Array {
  if (protocol === "im.v1.json") return frames.map((f) => JSON.stringify(f)).join("\n");
  if (frames.length === 1) return packr.pack(frames[0]);
  const parts = frames.map((f) => packr.pack(f));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/**
 * Decodes one WebSocket message into its frames. Throws a TypeError when the message is not
 * of the subprotocol's kind or holds something other than maps with a string `op`.
 */
export function decodeFrames(data: unknown, protocol: Subprotocol): Frame[] {
  let values: unknown[];
  if (protocol === "im.v1.json") {
    const text = typeof data === "string"
      ? data
      : data instanceof ArrayBuffer
      ? utf8.decode(data)
      : null;
    if (text === null) throw new TypeError("Expected a text message");
    values = text.split("\n").filter((line) => line.trim() !== "").map((l) => JSON.parse(l));
  } else {
    if (typeof data === "string") throw new TypeError("Expected a binary message");
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data as ArrayBuffer);
    values = unpackr.unpackMultiple(bytes) as unknown[];
  }
  for (const v of values) {
    if (typeof v !== "object" || v === null || typeof (v as Frame).op !== "string") {
      throw new TypeError("A frame is not a map with a string op");
    }
  }
  return values as Frame[];
}
