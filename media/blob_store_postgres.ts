/**
 * The Postgres {@link BlobStore}: media bytes in the `media_blobs` table of the node's database
 * (Postgres schema 8, applied by the Store's `migrate()`), so every node of a cluster serves
 * every upload without a shared directory.
 *
 * - Keys are checked with {@link checkBlobKey} before any query.
 * - `put` is one upsert in its own transaction: once it resolves the bytes are committed (and
 *   durable as Postgres makes commits); a reader sees the old bytes or the new, never a part.
 * - Every failure to reach or use the database (refused or lost connection, no answer within
 *   the call deadline, the table missing) surfaces as {@link UnavailableError}. A lost
 *   connection or a call past its deadline replaces the pool (as the Store does: postgres.js can
 *   strand a query on a broken socket), so the next call starts afresh.
 * - A small pool of its own (default 4 connections): uploads and downloads do not wait behind
 *   message commits.
 *
 * @module
 */
import postgres from "postgres";
import { UnavailableError } from "../actors/errors.ts";
import { isConnectionLoss } from "../db/postgres_errors.ts";
import { type BlobStore, checkBlobKey } from "./blob_store.ts";

/** Options of {@link openPostgresBlobStore}. */
export interface PostgresBlobStoreOptions {
  /** Pool size (default 4). */
  max?: number;
  /** Seconds to wait for a connection (default 10). */
  connectTimeoutSeconds?: number;
  /** Deadline of one call, ms (default 30,000): a blob is up to MEDIA_MAX_BYTES. */
  callTimeoutMs?: number;
}

/** A {@link BlobStore} that holds a connection pool: `close()` ends it. */
export interface ClosableBlobStore extends BlobStore {
  close(): Promise<void>;
}

/** Opens the blob store on the database at `url` (connections are made lazily). */
export function openPostgresBlobStore(
  url: string,
  options: PostgresBlobStoreOptions = {},
): ClosableBlobStore {
  return new PostgresBlobStore(
    () =>
      postgres(url, {
        max: options.max ?? 4,
        connect_timeout: options.connectTimeoutSeconds ?? 10,
        onnotice: () => {},
      }),
    options.callTimeoutMs ?? 30_000,
  );
}

type Sql = postgres.Sql;

class PostgresBlobStore implements ClosableBlobStore {
  readonly #makePool: () => Sql;
  readonly #callTimeoutMs: number;
  #pool: Sql;
  readonly #ending = new Set<Promise<void>>();
  #closed = false;

  constructor(makePool: () => Sql, callTimeoutMs: number) {
    this.#makePool = makePool;
    this.#callTimeoutMs = callTimeoutMs;
    this.#pool = makePool();
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    checkBlobKey(key);
    return await this.#call("write", async (sql) => {
      await sql`
        INSERT INTO media_blobs (media_id, data) VALUES (${key}, ${data})
        ON CONFLICT (media_id) DO UPDATE SET data = EXCLUDED.data`;
    });
  }

  async get(key: string): Promise<Uint8Array | null> {
    checkBlobKey(key);
    return await this.#call("read", async (sql) => {
      const [row] = await sql`SELECT data FROM media_blobs WHERE media_id = ${key}`;
      if (!row) return null;
      const data = row.data as Uint8Array;
      // postgres.js answers a Node Buffer; callers get a plain Uint8Array over the same bytes.
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    });
  }

  async delete(key: string): Promise<void> {
    checkBlobKey(key);
    return await this.#call("delete", async (sql) => {
      await sql`DELETE FROM media_blobs WHERE media_id = ${key}`;
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([this.#pool.end({ timeout: 5 }), ...this.#ending]);
  }

  async #call<T>(what: string, fn: (sql: Sql) => Promise<T>): Promise<T> {
    if (this.#closed) throw new UnavailableError("The media store is closed");
    const pool = this.#pool;
    const work = fn(pool);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DeadlineError()), this.#callTimeoutMs);
    });
    try {
      return await Promise.race([work, deadline]);
    } catch (err) {
      if (err instanceof DeadlineError || isConnectionLoss(err)) this.#replace(pool);
      throw new UnavailableError(
        `Media store cannot ${what}: ${(err as Error).message ?? String(err)}`,
        { cause: err },
      );
    } finally {
      clearTimeout(timer);
      // A call cut off by the deadline settles later, when its pool ends; nobody waits for it.
      work.catch(() => {});
    }
  }

  /** Swaps in a fresh pool and ends `pool` in the background (bounded). */
  #replace(pool: Sql): void {
    if (pool !== this.#pool || this.#closed) return;
    this.#pool = this.#makePool();
    const ending: Promise<void> = pool.end({ timeout: 5 })
      .catch(() => {})
      .finally(() => this.#ending.delete(ending));
    this.#ending.add(ending);
  }
}

class DeadlineError extends Error {
  constructor() {
    super("no answer from Postgres within the call deadline");
    this.name = "DeadlineError";
  }
}
