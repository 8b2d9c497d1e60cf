/**
 * The blob-store port: where uploaded media bytes live. The media records (owner, type, size,
 * which conversations a media item was sent in) live in the {@link Store}; this port only keeps
 * bytes by key.
 *
 * Guarantees every adapter keeps:
 * - Keys are media ids (`md_` + 20 base32 characters, see {@link isMediaId}); any other key is
 *   refused with a TypeError before touching storage, so a key can never name a path outside
 *   the store.
 * - `put` resolves only once the bytes are durable, and is atomic: a concurrent or later `get`
 *   sees either nothing or the whole blob, never a part.
 * - `get` resolves null for a key that was never written (or was deleted).
 * - Failures to reach the storage surface as {@link UnavailableError}.
 *
 * Adapters: `blob_store_disk.ts` (a directory, by default `DATA_DIR/media`) and
 * `blob_store_postgres.ts` (the `media_blobs` table; a cluster's default). Both pass
 * `blob_store_contract.ts`.
 *
 * @module
 */
import type { UnavailableError } from "../actors/errors.ts";

export type { UnavailableError };

const MEDIA_ID = /^md_[a-z2-7]{20}$/;

/** True when `value` is a well-formed media id (the only keys a blob store accepts). */
export function isMediaId(value: unknown): value is string {
  return typeof value === "string" && MEDIA_ID.test(value);
}

/** Throws TypeError unless `key` is a media id. */
export function checkBlobKey(key: string): void {
  if (!isMediaId(key)) throw new TypeError(`Not a media id: ${JSON.stringify(key).slice(0, 40)}`);
}

/** The blob-store port. See the module doc for the guarantees. */
export interface BlobStore {
  /** Stores `data` under `key`, replacing what was there. */
  put(key: string, data: Uint8Array): Promise<void>;
  /** The bytes under `key`, or null. */
  get(key: string): Promise<Uint8Array | null>;
  /** Removes `key` (no-op when absent). */
  delete(key: string): Promise<void>;
}
