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

/**
 * CSPRNG bytes drawn a page at a time: one call into the platform per 4 KiB instead of one per
 * id (ids are made per message). Each byte is used once.
 */
const POOL = new Uint8Array(4096);
let poolAt = POOL.length;

/** `n` lowercase base32 characters, each uniformly random (5 bits of a CSPRNG byte, no bias). */
export function randomBase32(n: number): string {
  let out = "";
  for (let i = 0; i < n; i++) {
    if (poolAt === POOL.length) {
      crypto.getRandomValues(POOL);
      poolAt = 0;
    }
    out += ALPHABET[POOL[poolAt++] & 31];
  }
  return out;
}

/** A new id: `prefix` (given with its separator) + 20 base32 chars; `newId("u_")` → `u_k3m9…`. */
export function newId(prefix: string): string {
  return prefix + randomBase32(ID_RANDOM_LENGTH);
}

/** The same 32 characters in code-point order, so that the time part sorts as numbers do. */
const SORTED_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz";
/** Characters of the time part of {@link newOrderedId}: 45 bits of milliseconds (~1,100 years). */
const TIME_LENGTH = 9;

/**
 * A new id whose order follows creation time: `prefix` + 9 base32 chars of the current time in
 * milliseconds + 11 random chars (55 bits), the same shape as {@link newId}. Used for message
 * ids: an index on them then grows at its end instead of at a random page per insert (the
 * store writes far fewer pages per commit). Not for secrets: the time part is readable.
 */
export function newOrderedId(prefix: string, now = Date.now()): string {
  let t = Math.max(0, Math.floor(now));
  let time = "";
  for (let i = 0; i < TIME_LENGTH; i++) {
    time = SORTED_ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  return prefix + time + randomBase32(ID_RANDOM_LENGTH - TIME_LENGTH);
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
