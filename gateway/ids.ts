/**
 * Random, unguessable identifiers: `<prefix>_` followed by 20 lowercase base32 characters
 * (RFC 4648 alphabet `a-z 2-7`), i.e. 100 bits from the platform CSPRNG. User ids are `u_…`.
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

/** A new id `<prefix>_<20 base32 chars>`, e.g. `newId("u")` → `u_k3m9…`. */
export function newId(prefix: string): string {
  return `${prefix}_${randomBase32(ID_RANDOM_LENGTH)}`;
}

/** True when `value` has the shape of an id made by {@link newId} with this prefix. */
export function isId(value: unknown, prefix: string): value is string {
  if (typeof value !== "string") return false;
  if (value.length !== prefix.length + 1 + ID_RANDOM_LENGTH) return false;
  if (!value.startsWith(prefix + "_")) return false;
  for (let i = prefix.length + 1; i < value.length; i++) {
    if (!ALPHABET.includes(value[i])) return false;
  }
  return true;
}
