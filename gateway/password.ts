/**
 * Password hashing (PBKDF2-SHA256 through WebCrypto) and account input rules.
 *
 * Encoded form, stored in `UserRecord.passwordHash` (db/store.ts):
 * `pbkdf2-sha256$<iterations>$<salt, base64>$<hash, base64>` (standard base64 with padding; a
 * 16-byte random salt; a 32-byte derived key). The iteration count travels with the hash, so it
 * can be raised later without invalidating stored hashes ({@link needsRehash}).
 *
 * @module
 */
import { ImError } from "../actors/errors.ts";

/** Default PBKDF2 iteration count (OWASP 2023 guidance for PBKDF2-HMAC-SHA256 is ≥ 210,000). */
export const DEFAULT_PASSWORD_ITERATIONS = 210_000;

/** Verification refuses encoded hashes claiming more iterations than this (a tampered row). */
const MAX_ITERATIONS = 10_000_000;
const SALT_BYTES = 16;
const HASH_BYTES = 32;
const SCHEME = "pbkdf2-sha256";

/** Options of {@link hashPassword}. */
export interface HashOptions {
  /** PBKDF2 iterations; default {@link DEFAULT_PASSWORD_ITERATIONS}. Tests use small numbers. */
  iterations?: number;
}

/**
 * Hashes a password with a fresh random salt. The password is NFC-normalised first, so the same
 * visible password typed on different systems verifies. Resolves to the encoded form.
 */
export async function hashPassword(password: string, options: HashOptions = {}): Promise<string> {
  const iterations = options.iterations ?? DEFAULT_PASSWORD_ITERATIONS;
  if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS) {
    throw new RangeError(`iterations must be an integer in 1..${MAX_ITERATIONS}`);
  }
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const hash = await derive(password, salt, iterations, HASH_BYTES);
  return `${SCHEME}$${iterations}$${salt.toBase64()}$${hash.toBase64()}`;
}

/**
 * Checks a password against an encoded hash in time independent of where the bytes differ.
 * Resolves `false` on a mismatch; rejects with ImError `internal` (a server-side fault, never the
 * caller's input) when `encoded` is not a hash this module produced.
 */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const { iterations, salt, hash } = parseEncoded(encoded);
  const candidate = await derive(password, salt, iterations, hash.length);
  return constantTimeEqual(candidate, hash);
}

/** True when `encoded` was made with fewer iterations than `iterations` (rehash on next login). */
export function needsRehash(encoded: string, iterations = DEFAULT_PASSWORD_ITERATIONS): boolean {
  return parseEncoded(encoded).iterations < iterations;
}

/** The iteration count recorded in an encoded hash. */
export function hashIterations(encoded: string): number {
  return parseEncoded(encoded).iterations;
}

/** True when `value` is a valid username: 3–32 characters of `a-z 0-9 _ . -`. */
export function validateUsername(value: unknown): value is string {
  return typeof value === "string" && /^[a-z0-9_.-]{3,32}$/.test(value);
}

/** True when `value` is a valid password: a string of 8–128 Unicode code points. */
export function validatePassword(value: unknown): value is string {
  if (typeof value !== "string") return false;
  // 128 code points take at most 256 UTF-16 units: refuse longer strings without counting.
  if (value.length < 8 || value.length > 256) return false;
  let codePoints = 0;
  for (const _ of value) codePoints++;
  return codePoints >= 8 && codePoints <= 128;
}

/** Compares two byte arrays without an early exit (length is not secret here). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

async function derive(
  password: string,
  salt: Uint8Array<ArrayBuffer>,
  iterations: number,
  bytes: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(password.normalize("NFC")),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt, iterations },
    key,
    bytes * 8,
  );
  return new Uint8Array(bits);
}

function parseEncoded(
  encoded: string,
): { iterations: number; salt: Uint8Array<ArrayBuffer>; hash: Uint8Array<ArrayBuffer> } {
  const parts = encoded.split("$");
  if (parts.length !== 4 || parts[0] !== SCHEME || !/^[1-9][0-9]{0,7}$/.test(parts[1])) {
    throw new ImError("internal", "Malformed password hash");
  }
  const iterations = Number(parts[1]);
  if (iterations > MAX_ITERATIONS) throw new ImError("internal", "Malformed password hash");
  let salt: Uint8Array<ArrayBuffer>, hash: Uint8Array<ArrayBuffer>;
  try {
    salt = Uint8Array.fromBase64(parts[2]);
    hash = Uint8Array.fromBase64(parts[3]);
  } catch (err) {
    throw new ImError("internal", "Malformed password hash", { cause: err });
  }
  if (salt.length === 0 || hash.length < 16) {
    throw new ImError("internal", "Malformed password hash");
  }
  return { iterations, salt, hash };
}
