/**
 * Field validation for the social, presence and push ops: each reader returns the typed value
 * or throws BadRequestError naming the field. Texts are counted in code points and may not hold
 * control characters (other than line breaks and tabs where a field allows several lines).
 *
 * @module
 */
import { BadRequestError } from "../actors/errors.ts";
import type { Frame } from "./ops.ts";

/** A user or group id: what the server issues, and never a name like `__proto__`. */
const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
// deno-lint-ignore no-control-regex
const CONTROL_ONE_LINE = /[\u0000-\u001f\u007f]/;
// deno-lint-ignore no-control-regex
const CONTROL_MULTI_LINE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

/** Whether `v` has the shape of a user or group id. */
export function isIdShape(v: unknown): v is string {
  return typeof v === "string" && ID.test(v);
}

/** A required id field. */
export function idField(frame: Frame, field: string): string {
  const v = frame[field];
  if (!isIdShape(v)) throw new BadRequestError(`"${field}" must be an id`);
  return v;
}

/** An optional id field: `def` when absent or null. */
export function optionalIdField(frame: Frame, field: string, def: string): string {
  const v = frame[field];
  return v === undefined || v === null ? def : idField(frame, field);
}

/**
 * A text field of at most `max` code points (`def` when absent); `multiLine` allows line
 * breaks and tabs.
 */
export function textField(
  frame: Frame,
  field: string,
  max: number,
  options: { def?: string; multiLine?: boolean } = {},
): string {
  const v = frame[field];
  if ((v === undefined || v === null) && options.def !== undefined) return options.def;
  if (typeof v !== "string") throw new BadRequestError(`"${field}" must be a string`);
  if ([...v].length > max) {
    throw new BadRequestError(`"${field}" must be at most ${max} characters`);
  }
  if ((options.multiLine ? CONTROL_MULTI_LINE : CONTROL_ONE_LINE).test(v)) {
    throw new BadRequestError(`"${field}" must not contain control characters`);
  }
  return v;
}

/** A boolean field, `def` when absent. */
export function boolField(frame: Frame, field: string, def: boolean): boolean {
  const v = frame[field];
  if (v === undefined || v === null) return def;
  if (typeof v !== "boolean") throw new BadRequestError(`"${field}" must be a boolean`);
  return v;
}

/** One of `values`. */
export function enumField<T extends string>(frame: Frame, field: string, values: readonly T[]): T {
  const v = frame[field];
  if (typeof v !== "string" || !values.includes(v as T)) {
    throw new BadRequestError(
      `"${field}" must be one of ${values.map((x) => `"${x}"`).join(", ")}`,
    );
  }
  return v as T;
}

/** An optional page size, clamped into `[1, max]`; `def` when absent. */
export function pageLimit(frame: Frame, def: number, max: number): number {
  const v = frame.limit;
  if (v === undefined || v === null) return def;
  const n = typeof v === "bigint" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isFinite(n)) {
    throw new BadRequestError(`"limit" must be an integer`);
  }
  return Math.min(max, Math.max(1, Math.trunc(n)));
}

/** A list of 1..`max` distinct ids. */
export function idList(frame: Frame, field: string, max: number): string[] {
  const v = frame[field];
  if (!Array.isArray(v) || v.length === 0 || v.length > max) {
    throw new BadRequestError(`"${field}" must be an array of 1-${max} ids`);
  }
  for (const id of v) {
    if (!isIdShape(id)) throw new BadRequestError(`"${field}" must hold ids`);
  }
  return [...new Set(v as string[])];
}

/** Encodes a page cursor as an opaque string (base64url of JSON). */
export function encodeCursor(value: unknown): string {
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

/**
 * Decodes an optional cursor field made by {@link encodeCursor}; `check` validates its shape.
 * Anything else is `bad_request`.
 */
export function cursorField<T>(
  frame: Frame,
  field: string,
  check: (v: unknown) => v is T,
): T | null {
  const v = frame[field];
  if (v === undefined || v === null) return null;
  const bad = () => new BadRequestError(`"${field}" must be a cursor from a previous page`);
  if (typeof v !== "string" || v.length > 512) throw bad();
  let parsed: unknown;
  try {
    const bin = atob(v.replaceAll("-", "+").replaceAll("_", "/"));
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(bin, (c) => c.charCodeAt(0)),
    ));
  } catch {
    throw bad();
  }
  if (!check(parsed)) throw bad();
  return parsed;
}

/** Whether `s` is a string without control characters, at most `max` code units long. */
export function isPlainString(s: unknown, max: number): s is string {
  return typeof s === "string" && s.length <= max && !CONTROL_ONE_LINE.test(s);
}
