/**
 * Message body types: what a client may send as `body`, checked field by field.
 *
 * {@link validateBody} is the static check (shape, types, bounds) the gateway runs on every
 * `send` and `msg.edit`; the conversation actor then checks what needs server state (the media
 * belongs to the sender, the quoted message exists in the conversation, mentioned users are
 * participants, `mentionAll` comes from a group admin) in `message_actions.ts`.
 *
 * Guarantees:
 * - A body that passes holds only the fields its type defines plus the common optional ones
 *   (`replyTo`, `mentions`, `mentionAll`); anything else is refused, so a client cannot smuggle
 *   server-set fields (`edited`, a quote snapshot, a media size) into a stored message.
 * - Types the server writes itself (`system`, `recalled`) are refused.
 * - Every string, array and map is bounded (see the constants).
 *
 * @module
 */
import { BadRequestError } from "../errors.ts";

/** Body types a client may send. */
export const BODY_TYPES = [
  "text",
  "image",
  "file",
  "voice",
  "video",
  "location",
  "sticker",
  "emoji",
  "custom",
] as const;

/** A body type a client may send. */
export type BodyType = (typeof BODY_TYPES)[number];

/** Longest `text`, in UTF-16 code units. */
export const MAX_TEXT = 10_000;
/** Longest caption of a media message. */
export const MAX_CAPTION = 1_000;
/** Most `mentions` in one message. */
export const MAX_MENTIONS = 100;
/** Largest `custom.data` map, as UTF-8 JSON bytes. */
export const MAX_CUSTOM_BYTES = 4_096;
/** Deepest nesting inside `custom.data`. */
export const MAX_CUSTOM_DEPTH = 6;
/** Longest voice or video duration, seconds. */
export const MAX_DURATION_SEC = 24 * 3600;
/** How much of the quoted text a reply keeps. */
export const QUOTE_TEXT_LENGTH = 200;

/** Body types whose `mediaId` refers to an upload, and the media types each accepts. */
export const MEDIA_BODY_TYPES: Readonly<Record<string, (mime: string) => boolean>> = {
  image: (m) => m.startsWith("image/"),
  voice: (m) => m.startsWith("audio/"),
  video: (m) => m.startsWith("video/"),
  file: () => true,
};

const ID = /^[A-Za-z0-9_.-]{1,64}$/;
const TOKEN = /^[A-Za-z0-9_.:-]{1,64}$/;
const EXT = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const MEDIA_ID = /^md_[a-z2-7]{20}$/;
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

const COMMON = ["type", "replyTo", "mentions", "mentionAll"];
const FIELDS: Record<BodyType, string[]> = {
  text: ["text"],
  image: ["mediaId", "width", "height", "caption"],
  file: ["mediaId", "name", "size", "caption"],
  voice: ["mediaId", "duration"],
  video: ["mediaId", "duration", "width", "height", "caption"],
  location: ["lat", "lng", "name", "address"],
  sticker: ["sticker", "pack"],
  emoji: ["emoji"],
  custom: ["ext", "data"],
};

type Body = Record<string, unknown>;

function bad(message: string): never {
  throw new BadRequestError(message);
}

function isMap(v: unknown): v is Body {
  return !!v && typeof v === "object" && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function string(b: Body, field: string, min: number, max: number, optional = false) {
  const v = b[field];
  if (v === undefined && optional) return undefined;
  if (typeof v !== "string" || v.length < min || v.length > max) {
    bad(`"body.${field}" must be a string of ${min}-${max} characters`);
  }
  return v;
}

function int(b: Body, field: string, min: number, max: number, optional = false) {
  let v = b[field];
  if (v === undefined && optional) return undefined;
  if (typeof v === "bigint") v = Number(v);
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
    bad(`"body.${field}" must be an integer from ${min} to ${max}`);
  }
  return v;
}

function num(b: Body, field: string, min: number, max: number, optional = false) {
  let v = b[field];
  if (v === undefined && optional) return undefined;
  if (typeof v === "bigint") v = Number(v);
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
    bad(`"body.${field}" must be a number from ${min} to ${max}`);
  }
  return v;
}

function put(out: Body, field: string, v: unknown): void {
  if (v !== undefined) out[field] = v;
}

/** Depth of nested maps/arrays (a scalar is 0). */
function depth(v: unknown): number {
  if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depth));
  if (isMap(v)) return 1 + Math.max(0, ...Object.values(v).map(depth));
  return 0;
}

/** A reply target as the client gives it: a message of the same conversation. */
export type ReplyRef = { mid: string } | { cseq: number };

function replyRef(v: unknown): ReplyRef {
  if (!isMap(v)) bad(`"body.replyTo" must be {"mid": id} or {"cseq": n}`);
  const keys = Object.keys(v);
  if (keys.length === 1 && typeof v.mid === "string" && ID.test(v.mid)) return { mid: v.mid };
  if (keys.length === 1 && v.cseq !== undefined) {
    const cseq = int(v, "cseq", 1, Number.MAX_SAFE_INTEGER)!;
    return { cseq };
  }
  bad(`"body.replyTo" must be {"mid": id} or {"cseq": n}`);
}

/**
 * Checks a client body and returns it normalised (integers as numbers, `mentions` without
 * duplicates, `mentionAll` only when true). Throws BadRequestError naming the field.
 */
export function validateBody(raw: unknown): Body {
  if (!isMap(raw)) bad(`"body" must be a map`);
  const type = raw.type;
  if (typeof type !== "string" || type.length < 1 || type.length > 32) {
    bad(`"body.type" must be a string of 1-32 characters`);
  }
  if (!(BODY_TYPES as readonly string[]).includes(type)) {
    bad(`"body.type" must be one of ${BODY_TYPES.join(", ")}`);
  }
  const t = type as BodyType;
  const allowed = new Set([...COMMON, ...FIELDS[t]]);
  for (const key of Object.keys(raw)) {
    if (!allowed.has(key)) bad(`"body.${key.slice(0, 32)}" is not a field of a ${t} body`);
  }
  const out: Body = { type: t };
  switch (t) {
    case "text":
      if (typeof raw.text !== "string") bad(`"body.text" must be a string`);
      if (raw.text.length > MAX_TEXT) bad(`"body.text" must be at most ${MAX_TEXT} characters`);
      out.text = raw.text;
      break;
    case "image":
    case "video":
    case "voice":
    case "file": {
      if (typeof raw.mediaId !== "string" || !MEDIA_ID.test(raw.mediaId)) {
        bad(`"body.mediaId" must be a media id from POST /v1/media`);
      }
      out.mediaId = raw.mediaId;
      if (t === "image" || t === "video") {
        put(out, "width", int(raw, "width", 1, 100_000, true));
        put(out, "height", int(raw, "height", 1, 100_000, true));
      }
      if (t === "voice") out.duration = num(raw, "duration", 0, MAX_DURATION_SEC);
      if (t === "video") put(out, "duration", num(raw, "duration", 0, MAX_DURATION_SEC, true));
      if (t === "file") {
        const name = string(raw, "name", 1, 255)!;
        if (CONTROL.test(name) || /[/\\]/.test(name) || name === "." || name === "..") {
          bad(`"body.name" must be a file name without path separators or control characters`);
        }
        out.name = name;
        put(out, "size", int(raw, "size", 0, Number.MAX_SAFE_INTEGER, true));
      }
      if (t !== "voice") put(out, "caption", string(raw, "caption", 0, MAX_CAPTION, true));
      break;
    }
    case "location":
      out.lat = num(raw, "lat", -90, 90);
      out.lng = num(raw, "lng", -180, 180);
      put(out, "name", string(raw, "name", 0, 200, true));
      put(out, "address", string(raw, "address", 0, 500, true));
      break;
    case "sticker": {
      const sticker = string(raw, "sticker", 1, 64)!;
      if (!TOKEN.test(sticker)) bad(`"body.sticker" must be 1-64 of A-Z a-z 0-9 _ . : -`);
      out.sticker = sticker;
      const pack = string(raw, "pack", 1, 64, true);
      if (pack !== undefined && !TOKEN.test(pack)) {
        bad(`"body.pack" must be 1-64 of A-Z a-z 0-9 _ . : -`);
      }
      put(out, "pack", pack);
      break;
    }
    case "emoji": {
      const emoji = string(raw, "emoji", 1, 32)!;
      if (CONTROL.test(emoji)) bad(`"body.emoji" must not contain control characters`);
      out.emoji = emoji;
      break;
    }
    case "custom": {
      const ext = string(raw, "ext", 1, 64)!;
      if (!EXT.test(ext)) bad(`"body.ext" must be 1-64 of a-z 0-9 _ . - (starting a-z 0-9)`);
      if (!isMap(raw.data)) bad(`"body.data" must be a map`);
      if (depth(raw.data) > MAX_CUSTOM_DEPTH) {
        bad(`"body.data" must nest at most ${MAX_CUSTOM_DEPTH} levels`);
      }
      let json: string;
      try {
        json = JSON.stringify(raw.data, (_k, v) => typeof v === "bigint" ? Number(v) : v);
      } catch {
        bad(`"body.data" must be JSON-compatible`);
      }
      if (new TextEncoder().encode(json).length > MAX_CUSTOM_BYTES) {
        bad(`"body.data" must be at most ${MAX_CUSTOM_BYTES} bytes as JSON`);
      }
      out.ext = ext;
      out.data = JSON.parse(json);
      break;
    }
  }
  if (raw.replyTo !== undefined) out.replyTo = replyRef(raw.replyTo);
  if (raw.mentions !== undefined) {
    const m = raw.mentions;
    if (!Array.isArray(m) || m.length > MAX_MENTIONS) {
      bad(`"body.mentions" must be an array of at most ${MAX_MENTIONS} user ids`);
    }
    for (const id of m) {
      if (typeof id !== "string" || !ID.test(id)) bad(`"body.mentions" must hold user ids`);
    }
    if (m.length) out.mentions = [...new Set(m as string[])];
  }
  if (raw.mentionAll !== undefined) {
    if (typeof raw.mentionAll !== "boolean") bad(`"body.mentionAll" must be a boolean`);
    if (raw.mentionAll) out.mentionAll = true;
  }
  return out;
}

/** The media id a body refers to, if its type carries one. */
export function bodyMediaId(body: Record<string, unknown>): string | undefined {
  return typeof body.type === "string" && body.type in MEDIA_BODY_TYPES &&
      typeof body.mediaId === "string"
    ? body.mediaId
    : undefined;
}

/** A short text that stands for a body in a quote or a conversation list (may be ""). */
export function previewText(body: Record<string, unknown>): string {
  let text = "";
  switch (body.type) {
    case "text":
      text = String(body.text ?? "");
      break;
    case "image":
    case "video":
      text = String(body.caption ?? "");
      break;
    case "file":
      text = String(body.caption || body.name || "");
      break;
    case "location":
      text = String(body.name ?? "");
      break;
    case "emoji":
      text = String(body.emoji ?? "");
      break;
  }
  return text.length > QUOTE_TEXT_LENGTH ? text.slice(0, QUOTE_TEXT_LENGTH) : text;
}
