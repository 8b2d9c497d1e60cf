/**
 * Validation of client frames: turns a decoded frame into a typed request or throws
 * BadRequestError with a message naming the field. The server never trusts a field it can set
 * itself (sender, time, sequences).
 *
 * @module
 */
import { BadRequestError } from "../actors/errors.ts";
import type { Recipient } from "../db/store.ts";
import { validateBody } from "../actors/im/message_types.ts";

/** A decoded frame: a map with a string `op`. */
export type Frame = Record<string, unknown> & { op: string };

/** Reads a positive safe integer (MessagePack may give a bigint for 64-bit widths). */
export function positiveInt(v: unknown): number | null {
  if (typeof v === "bigint") {
    if (v <= 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) return null;
    return Number(v);
  }
  return typeof v === "number" && Number.isSafeInteger(v) && v > 0 ? v : null;
}

/** Reads a non-negative safe integer. */
export function nonNegativeInt(v: unknown): number | null {
  if (v === 0 || v === 0n) return 0;
  return positiveInt(v);
}

function str(frame: Frame, field: string, min: number, max: number): string {
  const v = frame[field];
  if (typeof v !== "string") throw new BadRequestError(`"${field}" must be a string`);
  const len = [...v].length;
  if (len < min || len > max) {
    throw new BadRequestError(`"${field}" must be ${min}-${max} characters`);
  }
  return v;
}

function optionalInt(frame: Frame, field: string, min: number): number | null {
  const v = frame[field];
  if (v === undefined || v === null) return null;
  const n = nonNegativeInt(v);
  if (n === null || n < min) throw new BadRequestError(`"${field}" must be an integer >= ${min}`);
  return n;
}

/** Clamps an optional limit into `[1, max]`, `def` when absent. */
function limit(frame: Frame, def: number, max: number): number {
  const v = frame.limit;
  if (v === undefined || v === null) return def;
  const n = typeof v === "bigint" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isFinite(n)) {
    throw new BadRequestError(`"limit" must be an integer`);
  }
  return Math.min(max, Math.max(1, Math.trunc(n)));
}

/** An id accepted for users and groups (what `newId` makes, or anything similar). */
const ID = /^[A-Za-z0-9_.-]{1,64}$/;

/** Validated `send`. */
export function parseSend(
  frame: Frame,
): { to: Recipient; cmid: string; body: Record<string, unknown> } {
  const to = frame.to as Record<string, unknown> | undefined;
  let recipient: Recipient;
  if (to && typeof to === "object" && !Array.isArray(to)) {
    const keys = Object.keys(to);
    if (keys.length === 1 && typeof to.user === "string" && ID.test(to.user)) {
      recipient = { user: to.user };
    } else if (keys.length === 1 && typeof to.group === "string" && ID.test(to.group)) {
      recipient = { group: to.group };
    } else {
      throw new BadRequestError(`"to" must be {"user": id} or {"group": id}`);
    }
  } else {
    throw new BadRequestError(`"to" must be {"user": id} or {"group": id}`);
  }
  const cmid = str(frame, "cmid", 1, 64);
  // Control characters (NUL above all) cannot be stored in every backend's text columns.
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(cmid)) {
    throw new BadRequestError(`"cmid" must not contain control characters`);
  }
  // Every body type, field by field (actors/im/message_types.ts).
  return { to: recipient, cmid, body: validateBody(frame.body) };
}

/** Validated `sync`. */
export function parseSync(frame: Frame): { after: number; limit: number } {
  const after = optionalInt(frame, "after", 0);
  if (after === null) throw new BadRequestError(`"after" must be an integer >= 0`);
  return { after, limit: limit(frame, 100, 500) };
}

/** Validated `history`. */
export function parseHistory(frame: Frame): { conv: string; before: number | null; limit: number } {
  const conv = str(frame, "conv", 1, 200);
  return { conv, before: optionalInt(frame, "before", 1), limit: limit(frame, 50, 200) };
}

/** Validated `group.create`. */
export function parseGroupCreate(
  frame: Frame,
  maxMembers: number,
): { name: string; members: string[] } {
  const name = str(frame, "name", 1, 100);
  const members = frame.members;
  if (!Array.isArray(members) || members.length > maxMembers) {
    throw new BadRequestError(`"members" must be an array of at most ${maxMembers} user ids`);
  }
  for (const m of members) {
    if (typeof m !== "string" || !ID.test(m)) {
      throw new BadRequestError(`"members" must hold user id strings`);
    }
  }
  return { name, members: members as string[] };
}

/** Validated `ack`. */
export function parseAck(frame: Frame): { seq: number } {
  const seq = optionalInt(frame, "seq", 0);
  if (seq === null) throw new BadRequestError(`"seq" must be an integer >= 0`);
  return { seq };
}

/** Validated `auth`. */
export function parseAuth(frame: Frame): { token: string; device?: string } {
  const token = frame.token;
  if (typeof token !== "string" || token.length === 0 || token.length > 4096) {
    throw new BadRequestError(`"token" must be a string`);
  }
  const device = frame.device;
  if (
    device !== undefined && (typeof device !== "string" || !/^[A-Za-z0-9_.:-]{1,64}$/.test(device))
  ) {
    throw new BadRequestError(`"device" must be 1-64 characters of A-Z a-z 0-9 _ . : -`);
  }
  return { token, device: device as string | undefined };
}
