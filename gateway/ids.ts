/**
 * Random, unguessable identifiers: a prefix that names the kind (`u_` users, `g_` groups, …)
 * followed by 20 lowercase base32 characters (RFC 4648 alphabet `a-z 2-7`), i.e. 100 bits from
 * the platform CSPRNG.
 *
 * @module
 */

const ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";
/** Length of the random part of an id. */
export const ID_RANDOM_LENGTH = 20;

/** `n` lowercase base32 characters, each uniformly random (5 bits of a CSPRNG byte, no bias). */
export function randomBase32(n: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(n));
  let out = "";
  for (let i = 0; i < n; i++) out += ALPHABET[bytes[i] & 31];
  return out;
}

/** A new id: `prefix` (given with its separator) + 20 base32 chars; `newId("u_")` → `u_k3m9…`. */
export function newId(prefix: string): string {
  return prefix + randomBase32(ID_RANDOM_LENGTH);
}

/** True when `value` has the shape of an id made by {@link newId} with this prefix. */
export function isId(value: unknown, prefix: string): value is string {
  if (typeof value !== "string") return false;
  if (value.length !== prefix.length + ID_RANDOM_LENGTH) return false;
  if (!value.startsWith(prefix)) return false;
  for (let i = prefix.length; i < value.length; i++) {
    if (!ALPHABET.includes(value[i])) return false;
  }
  return true;
}
