/**
 * The clustered {@link Store}: Postgres through `npm:postgres`.
 *
 * - Every fenced write is one statement whose fencing check is part of the write
 *   (`im_fence`, `im_save_snapshot`, `im_save_ack`, `im_append` in `migrations_postgres.ts`).
 * - `append` of a small batch is one round trip: `SELECT im_append($batch)` locks the counter rows
 *   in a fixed order, then numbers and writes the whole batch set-based, in one transaction. A
 *   batch of {@link NODE_NUMBERING_MIN_ENTRIES} inbox entries or more (50 direct messages, a
 *   message to a group of 100) is numbered by this process instead, inside one transaction:
 *   `im_append_lock` locks the same rows in the same order (advancing each member's counter by
 *   the entries it expects) and returns them, `numberBatch` (append_numbering.ts, the SQLite
 *   store's algorithm too) numbers every entry in memory, `im_append_write` writes the rows
 *   whose final state differs. Postgres then works per member and per message, not per
 *   (message, member) pair.
 * - Each user's inbox is stored as runs (schema version 6), as in the SQLite store: a run maps
 *   consecutive inbox seqs to consecutive cseqs of one conversation. The open tail run lives only
 *   in the user's `user_inbox_seq` row (its count is implied by `last_seq`); `inbox_runs` holds
 *   the closed runs. `im_append` extends the tail when the next entry is the same conversation's
 *   next cseq, else closes it into `inbox_runs` and starts a new one: a group message updates one
 *   counter row per member and inserts no inbox row. Reads expand the runs of a seq range into
 *   (seq, conv, cseq) and fetch the messages by the (conv, cseq) index.
 * - Serialization failures and deadlocks (a concurrent duplicate `(from, cmid)`, or a conflict
 *   with another writer) roll the transaction back and are retried a few times, then surface as
 *   {@link UnavailableError}; so do connection failures (refused, reset, ended, timed out) and
 *   server shutdowns. A taken username rejects with ImError `username_taken`.
 *
 * @module
 */
import postgres from "postgres";
import { isConnectionLoss } from "./postgres_errors.ts";
import { FencedError, ImError, UnavailableError } from "../actors/errors.ts";
import {
  MIGRATION_LOCK_KEY,
  POSTGRES_MIGRATIONS,
  type PostgresMigration,
} from "./migrations_postgres.ts";
import {
  type BatchState,
  type InboxCounter,
  numberBatch,
  type NumberedBatch,
} from "./append_numbering.ts";
import type {
  AckCursor,
  AckWrite,
  AckWriteResult,
  AppendRequest,
  AppendResult,
  AuditEntry,
  AuditEntryInput,
  HistoryMessage,
  InboxEntry,
  InboxScan,
  MediaRecord,
  MessageRef,
  ReactionSummary,
  ReadCursor,
  RefreshTokenRecord,
  Snapshot,
  Store,
  StoredMessage,
  UserRecord,
  UserRole,
} from "./store.ts";
// Social (profiles, search, follows): imported apart to keep that section self-contained.
import {
  compareCodePoints,
  type FollowCursor,
  type FollowEntry,
  mergeSearchStreams,
  prefixUpperBound,
  type Profile,
  type ProfilePatch,
  type SearchCursor,
  searchKey,
  type SearchPage,
} from "./store.ts";

/** Options of {@link openPostgresStore}. */
export interface PostgresStoreOptions {
  /** Pool size (default 10). */
  max?: number;
  /** Seconds to wait for a connection before failing with UnavailableError (default 10). */
  connectTimeoutSeconds?: number;
  /**
   * Deadline of one call in milliseconds (default 30000): past it the call rejects with
   * UnavailableError (a write may still commit; callers retry with the same key). `migrate` has
   * none: a schema version may convert much data (version 6 rewrites every inbox), and a
   * migration cut off would roll back and start over on every start-up. A server that accepts
   * and never answers still fails `migrate` after two connect timeouts (the timeout covers the
   * whole start-up exchange, and the call is retried once on a fresh pool).
   */
  callTimeoutMs?: number;
  /** Schema versions to apply (tests only; defaults to {@link POSTGRES_MIGRATIONS}). */
  migrations?: readonly PostgresMigration[];
  /**
   * Inbox entries (recipients summed over a batch's requests) from which `append` numbers the
   * batch in this process, in two calls, instead of in one `im_append` call (default
   * {@link NODE_NUMBERING_MIN_ENTRIES}). Both give the same result; tests set 0 or Infinity to
   * run everything through one of them.
   */
  nodeNumberingMinEntries?: number;
  /**
   * Receives the server's notices and log messages sent to the session (default: dropped).
   * Tests read `auto_explain`'s plans through it.
   */
  onNotice?: (notice: { message?: string }) => void;
}

/**
 * Below this many inbox entries a batch goes to `im_append` (one round trip); from it on, the
 * node numbers it (two calls in one transaction, two round trips), which saves Postgres work per
 * entry. Measured with `im_append` looking messages up by index (schema version 9), appending
 * direct messages in a loop (Postgres backend and node CPU per message, µs): batches of 70
 * among fixed pairs 96 + 20 by `im_append` against 62 + 20 by the node, among random pairs
 * 120 + 21 against 105 + 37; batches of 20: 138 + 28 against 104 + 43 (fixed), 172 + 36
 * against 103 + 52 (random); batches of 8: 135 + 39 against 144 + 111 (fixed). The node's way
 * takes two round trips where `im_append` takes one, which shows in latency at moderate load:
 * direct messages at 4,500 sends/s (a node on Postgres, three runs each), p50 / p99 19.5–23.7 /
 * 84–122 ms with every batch in `im_append`, 22.2–26.8 / 90–222 ms from 40 entries, 19.5–23.1 /
 * 83–93 ms from 100; the maximum: 10,112 / 9,310 sends/s from 40 entries, 10,496 / 10,990 from
 * 100. A direct message is two entries.
 */
export const NODE_NUMBERING_MIN_ENTRIES = 100;

type Sql = postgres.Sql<Record<string, unknown>>;
type Row = Record<string, unknown>;

const MESSAGE_COLUMNS = "mid, conv, cseq, sender, cmid, to_kind, to_id, ts, body";

/** Fewest inbox positions readInbox covers per round (hidden entries may need more rounds). */
const INBOX_SLICE = 32;

/** Attempts of a transaction that failed with a serialization failure or deadlock. */
const MAX_ATTEMPTS = 5;

/** Seconds a retired pool gets to finish its queries before they are cut off. */
const RETIRE_TIMEOUT_SECONDS = 2;

/**
 * The driver's type option that reads and writes int8 as plain numbers: int8 columns (epochs,
 * seqs, timestamps in ms) stay below 2^53. Tests that query the tables directly use it too.
 */
export const INT8_AS_NUMBER = {
  bigint: {
    to: 20,
    from: [20],
    serialize: (x: number) => String(x),
    parse: (x: string) => Number(x),
  },
};

/**
 * Opens a connection pool to `url` (connections are made lazily, so this never throws for an
 * unreachable server; the first call does). Call `migrate()` before use.
 */
export function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Store {
  const makePool = () =>
    postgres(url, {
      max: options.max ?? 10,
      connect_timeout: options.connectTimeoutSeconds ?? 10,
      types: INT8_AS_NUMBER,
      // Notices are informational (e.g. "relation exists"): not errors, not worth a log line.
      onnotice: options.onNotice ?? (() => {}),
    }) as unknown as Sql;
  return new PostgresStore(
    makePool,
    options.callTimeoutMs ?? 30_000,
    options.migrations ?? POSTGRES_MIGRATIONS,
    options.nodeNumberingMinEntries ?? NODE_NUMBERING_MIN_ENTRIES,
  );
}

class CallTimeoutError extends Error {
  constructor(ms: number) {
    super(`No answer from Postgres within ${ms} ms`);
    this.name = "CallTimeoutError";
  }
}

class PostgresStore implements Store {
  readonly kind = "postgres";
  readonly #makePool: () => Sql;
  readonly #callTimeoutMs: number;
  readonly #nodeNumberingMinEntries: number;
  readonly #migrations: readonly PostgresMigration[];
  #pool: Sql;
  readonly #retiring = new Set<Promise<void>>();
  #closed = false;

  constructor(
    makePool: () => Sql,
    callTimeoutMs: number,
    migrations: readonly PostgresMigration[],
    nodeNumberingMinEntries: number,
  ) {
    this.#makePool = makePool;
    this.#callTimeoutMs = callTimeoutMs;
    this.#migrations = migrations;
    this.#nodeNumberingMinEntries = nodeNumberingMinEntries;
    this.#pool = makePool();
  }

  /**
   * Replaces a pool that lost a connection. postgres.js 3.4 under Deno can strand a query sent
   * between a socket's error and its close event, and the stranded query then blocks that
   * connection for good; it also hands a killed session's fatal error to the next query on the
   * reconnected session. A fresh pool has neither problem; the old one is ended, and whatever
   * it still holds is cut off after {@link RETIRE_TIMEOUT_SECONDS}.
   */
  #retire(pool: Sql): void {
    if (pool !== this.#pool || this.#closed) return;
    this.#pool = this.#makePool();
    // Ending a pool whose server is gone may fail too; there is nothing left to release then.
    const ending: Promise<void> = pool.end({ timeout: RETIRE_TIMEOUT_SECONDS })
      .catch(() => {})
      .finally(() => this.#retiring.delete(ending));
    this.#retiring.add(ending);
  }

  /** Runs one attempt of `fn` on the current pool, bounded by the call deadline if `timed`. */
  async #attempt<T>(pool: Sql, fn: (sql: Sql) => Promise<T>, timed: boolean): Promise<T> {
    const work = fn(pool);
    if (!timed) return await work;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new CallTimeoutError(this.#callTimeoutMs)),
        this.#callTimeoutMs,
      );
    });
    try {
      return await Promise.race([work, deadline]);
    } finally {
      clearTimeout(timer);
      // A call cut off by the deadline still settles later (at the latest when its pool is
      // retired); its outcome no longer has a caller.
      work.catch(() => {});
    }
  }

  /**
   * Runs `fn`, retrying transient conflicts, and maps driver failures to the port's errors.
   * Each attempt is bounded by the call deadline unless `deadline` is false (migrations).
   * A lost connection (or a call past its deadline) retires the pool; `idempotent` calls (reads,
   * and writes whose repetition changes nothing) are then retried once on the fresh pool. Other
   * writes are not repeated, because a lost connection leaves unknown whether they committed;
   * their caller retries with the same key.
   */
  async #call<T>(
    fn: (sql: Sql) => Promise<T>,
    { idempotent = false, deadline = true } = {},
  ): Promise<T> {
    let reconnected = false;
    for (let attempt = 1;; attempt++) {
      if (this.#closed) throw new UnavailableError("The Postgres store is closed");
      const pool = this.#pool;
      try {
        return await this.#attempt(pool, fn, deadline);
      } catch (err) {
        if (isConflict(err) && attempt < MAX_ATTEMPTS) {
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
          continue;
        }
        if (err instanceof CallTimeoutError || isConnectionLoss(err)) {
          this.#retire(pool);
          if (idempotent && !reconnected && !this.#closed) {
            reconnected = true;
            continue;
          }
        }
        throw translateError(err);
      }
    }
  }

  /** {@link #call} for calls that may run twice. */
  #idempotent<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return this.#call(fn, { idempotent: true });
  }

  /**
   * {@link #idempotent} without the call deadline, for migrations: a schema version may convert
   * much data, and one cut off would roll back and start over on every start-up.
   */
  #untimed<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return this.#call(fn, { idempotent: true, deadline: false });
  }

  migrate(): Promise<void> {
    return this.#untimed(async (sql) => {
      const applied = await sql.begin(async (tx) => {
        await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`;
        const [{ exists }] = await tx`
          SELECT to_regclass('schema_migrations') IS NOT NULL AS exists`;
        if (!exists) {
          await tx`
            CREATE TABLE schema_migrations (
              version integer PRIMARY KEY,
              applied_at timestamptz NOT NULL DEFAULT now()
            )`;
        }
        const rows = await tx`SELECT version FROM schema_migrations`;
        return new Set(rows.map((r) => r.version as number));
      });
      const pending = this.#migrations
        .filter((m) => !applied.has(m.version))
        .sort((a, b) => a.version - b.version);
      for (const migration of pending) {
        await sql.begin(async (tx) => {
          await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`;
          // Re-checked under the lock: another node may have applied it meanwhile.
          const done = await tx`
            SELECT 1 FROM schema_migrations WHERE version = ${migration.version}`;
          if (done.length > 0) return;
          await tx.unsafe(migration.sql);
          await tx`INSERT INTO schema_migrations (version) VALUES (${migration.version})`;
        });
      }
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([this.#pool.end({ timeout: 5 }), ...this.#retiring]);
  }

  // ---- accounts ----

  createUser(user: UserRecord): Promise<void> {
    return this.#call(async (sql) => {
      await sql`
        INSERT INTO users (user_id, username, password_hash, created_at, disabled)
        VALUES (${user.userId}, ${user.username}, ${user.passwordHash}, ${user.createdAt},
                ${user.disabled})`;
    });
  }

  getUserByUsername(username: string): Promise<UserRecord | null> {
    return this.#idempotent(async (sql) => {
      const [row] = await sql`SELECT * FROM users WHERE username = ${username}`;
      return row ? toUser(row) : null;
    });
  }

  getUser(userId: string): Promise<UserRecord | null> {
    return this.#idempotent(async (sql) => {
      const [row] = await sql`SELECT * FROM users WHERE user_id = ${userId}`;
      return row ? toUser(row) : null;
    });
  }

  existingUsers(userIds: string[]): Promise<string[]> {
    return this.#idempotent(async (sql) => {
      if (userIds.length === 0) return [];
      const rows = await sql`
        SELECT u.user_id FROM ${idList(sql, userIds)}
        CROSS JOIN LATERAL (SELECT user_id FROM users WHERE user_id = x.id LIMIT 1) u`;
      return rows.map((r) => r.user_id as string);
    });
  }

  setUserDisabled(userId: string, disabled: boolean): Promise<void> {
    return this.#idempotent(async (sql) => {
      await sql`UPDATE users SET disabled = ${disabled} WHERE user_id = ${userId}`;
    });
  }

  // ---- refresh tokens ----

  saveRefreshToken(token: RefreshTokenRecord): Promise<void> {
    return this.#call(async (sql) => {
      await sql`
        INSERT INTO refresh_tokens
          (token_hash, user_id, device, family_id, expires_at, used_at, revoked)
        VALUES (${token.tokenHash}, ${token.userId}, ${token.device}, ${token.familyId},
                ${token.expiresAt}, ${token.usedAt}, ${token.revoked})`;
    });
  }

  getRefreshToken(tokenHash: string): Promise<RefreshTokenRecord | null> {
    return this.#idempotent(async (sql) => {
      const [row] = await sql`SELECT * FROM refresh_tokens WHERE token_hash = ${tokenHash}`;
      return row ? toRefreshToken(row) : null;
    });
  }

  useRefreshToken(tokenHash: string, at: number): Promise<boolean> {
    return this.#call(async (sql) => {
      // Row lock + re-check of the WHERE clause under READ COMMITTED: one winner.
      const rows = await sql`
        UPDATE refresh_tokens SET used_at = ${at}
        WHERE token_hash = ${tokenHash} AND used_at IS NULL AND NOT revoked
        RETURNING 1`;
      return rows.length === 1;
    });
  }

  revokeRefreshFamily(familyId: string): Promise<void> {
    return this.#idempotent(async (sql) => {
      await sql`UPDATE refresh_tokens SET revoked = true WHERE family_id = ${familyId}`;
    });
  }

  // ---- actors: fencing and snapshots ----

  storedEpoch(actorId: string): Promise<number> {
    return this.#idempotent(async (sql) => {
      const [row] = await sql`SELECT epoch FROM actor_epochs WHERE actor_id = ${actorId}`;
      return row ? (row.epoch as number) : 0;
    });
  }

  fence(actorId: string, epoch: number): Promise<void> {
    return this.#idempotent(async (sql) => {
      const [{ stored }] = await sql`SELECT im_fence(${actorId}, ${epoch}) AS stored`;
      checkFence(actorId, epoch, stored as number);
    });
  }

  saveSnapshot(actorId: string, epoch: number, data: Uint8Array): Promise<void> {
    return this.#idempotent(async (sql) => {
      const [{ stored }] = await sql`
        SELECT im_save_snapshot(${actorId}, ${epoch}, ${data}) AS stored`;
      checkFence(actorId, epoch, stored as number);
    });
  }

  loadSnapshot(actorId: string): Promise<Snapshot | null> {
    return this.#idempotent(async (sql) => {
      const [row] = await sql`SELECT epoch, data FROM snapshots WHERE actor_id = ${actorId}`;
      if (!row) return null;
      // The driver hands out a Node Buffer: give callers a plain Uint8Array.
      return { epoch: row.epoch as number, data: new Uint8Array(row.data as Uint8Array) };
    });
  }

  // ---- messages ----

  append(requests: AppendRequest[]): Promise<AppendResult[]> {
    if (requests.length === 0) return this.#call(() => Promise.resolve([]));
    let entries = 0;
    for (const r of requests) entries += r.recipients.length;
    return entries >= this.#nodeNumberingMinEntries
      ? this.#appendNumberedHere(requests)
      : this.#appendInSql(requests);
  }

  /** One round trip: `im_append` locks, numbers and writes the batch (schema version 6). */
  #appendInSql(requests: AppendRequest[]): Promise<AppendResult[]> {
    const batch = imAppendBatch(requests);
    return this.#call(async (sql) => {
      // Sent as text and cast in SQL: a json-typed parameter would be JSON-encoded again, and
      // array parameters depend on type data each connection fetches after it opens.
      const [{ results }] = await sql`SELECT im_append(${batch}::text::json) AS results`;
      const list = results as AppendResult[];
      if (!Array.isArray(list) || list.length !== requests.length) {
        throw new ImError(
          "internal",
          `im_append returned ${Array.isArray(list) ? list.length : "no"} results for ` +
            `${requests.length} requests`,
        );
      }
      return list;
    });
  }

  /**
   * `im_append_lock` locks and reads the counters, the node numbers the batch
   * (append_numbering.ts), `im_append_write` writes it: Postgres does per-member work, not
   * per-entry work (schema version 7).
   */
  #appendNumberedHere(requests: AppendRequest[]): Promise<AppendResult[]> {
    // The entries each user gets if every request is new: step 1 advances the counters by them.
    // A recipient listed twice in one request counts once (no Set per message: the index of the
    // request that last counted each user says so).
    const expected = new Map<string, number>();
    const countedIn = new Map<string, number>();
    for (let i = 0; i < requests.length; i++) {
      for (const u of requests[i].recipients) {
        if (countedIn.get(u) === i) continue;
        countedIn.set(u, i);
        expected.set(u, (expected.get(u) ?? 0) + 1);
      }
    }
    const keys = JSON.stringify([
      requests.map((r) => r.actorId),
      requests.map((r) => r.conv),
      [...expected],
      requests.map((r) => [r.from, r.cmid]),
    ]);
    return this.#call(async (sql) => {
      // Four statements on one reserved connection, sent two by two without waiting in between
      // (BEGIN with step 1, step 2 with COMMIT): two round trips instead of four. A failed step
      // leaves the transaction aborted: a COMMIT behind it only rolls back.
      const conn = await sql.reserve();
      let open = false;
      try {
        // postgres.js sends a query when it is first awaited or executed: execute() keeps
        // the order.
        const begin = conn`BEGIN`.execute();
        // Sent as text and cast in SQL: a json-typed parameter would be JSON-encoded again, and
        // array parameters depend on type data each connection fetches after it opens.
        const lock = conn`
          SELECT im_append_lock(k -> 0, k -> 1, k -> 2, k -> 3) AS state
          FROM (SELECT ${keys}::text::jsonb AS k) p`.execute();
        lock.catch(() => {}); // awaited below, after `begin`, which fails first
        await begin;
        open = true;
        const [{ state }] = await lock;
        const locked = lockedState(state as LockedRows, expected);
        const batch = numberBatch(requests, locked.state);
        const rows = JSON.stringify([
          batch.messages.map((m) => [
            m.request.mid,
            m.request.conv,
            m.cseq,
            m.request.from,
            m.request.cmid,
            m.toKind,
            m.toId,
            m.request.ts,
            m.bodyText,
          ]),
          batch.closedRuns,
          countersToWrite(batch, locked),
          batch.convs,
          batch.raisedEpochs,
        ]);
        const write = conn`
          SELECT im_append_write(r -> 0, r -> 1, r -> 2, r -> 3, r -> 4)
          FROM (SELECT ${rows}::text::jsonb AS r) p`.execute();
        const commit = conn`COMMIT`.execute();
        commit.catch(() => {}); // awaited below, after `write`
        await write;
        await commit;
        open = false;
        return batch.results;
      } catch (err) {
        // Ends an aborted transaction before the connection goes back. A lost connection took
        // its transaction with it, and writing to it would crash postgres.js (a write queued
        // to a socket that is gone): #call retires the pool instead.
        if (open && !isConnectionLoss(err)) await conn`ROLLBACK`.catch(() => {});
        throw err;
      } finally {
        conn.release();
      }
    });
  }

  findByCmid(from: string, cmid: string): Promise<StoredMessage | null> {
    return this.#idempotent(async (sql) => {
      const [row] = await sql`
        SELECT ${sql.unsafe(MESSAGE_COLUMNS)} FROM messages
        WHERE sender = ${from} AND cmid = ${cmid}`;
      return row ? toMessage(row) : null;
    });
  }

  readInbox(userId: string, after: number, limit: number): Promise<InboxEntry[]> {
    return this.#idempotent(async (sql) => {
      if (limit <= 0) return [];
      // Seqs are gapless, so the next `want` positions are the seqs after..after+want: their runs
      // are expanded and the messages fetched by the (conv, cseq) index in one statement, hidden
      // ones left out; again from where that ended while entries are missing and the inbox goes
      // on. At least INBOX_SLICE positions per round, so many hidden entries cost few rounds.
      // The user's counter row comes along (last_seq, and one row even for an empty page).
      const out: InboxEntry[] = [];
      let from = after;
      while (out.length < limit) {
        const want = Math.max(limit - out.length, INBOX_SLICE);
        const to = from + want;
        const rows = await sql`
          SELECT s.last_seq AS inbox_last_seq, p.*
          FROM user_inbox_seq s
          LEFT JOIN LATERAL (
            SELECT r.seq_start - r.cseq_start + m.cseq AS seq,
                   ${sql.unsafe(MESSAGE_COLUMNS.split(", ").map((c) => `m.${c}`).join(", "))}
            FROM (${runsBetween(sql, userId, from, to)}) r
            CROSS JOIN LATERAL (${messagesOfRun(sql, from, to)}) m
            WHERE NOT EXISTS (
              SELECT 1 FROM message_hidden h WHERE h.user_id = s.user_id AND h.mid = m.mid)
            ORDER BY 1
            LIMIT ${limit - out.length}
          ) p ON true
          WHERE s.user_id = ${userId}
          ORDER BY p.seq`;
        if (rows.length === 0) break; // no inbox at all
        for (const row of rows) {
          if (row.seq !== null) out.push({ seq: row.seq as number, message: toMessage(row) });
        }
        if (to >= (rows[0].inbox_last_seq as number)) break; // the inbox ends here
        from = to;
      }
      return out;
    });
  }

  latestSeq(userId: string): Promise<number> {
    return this.#idempotent(async (sql) => {
      const [row] = await sql`SELECT last_seq FROM user_inbox_seq WHERE user_id = ${userId}`;
      return row ? (row.last_seq as number) : 0;
    });
  }

  history(conv: string, before: number | null, limit: number): Promise<StoredMessage[]> {
    return this.#idempotent(async (sql) => {
      if (limit <= 0) return [];
      const rows = await sql`
        SELECT ${sql.unsafe(MESSAGE_COLUMNS)} FROM messages
        WHERE conv = ${conv} AND cseq < ${before ?? Number.MAX_SAFE_INTEGER}
        ORDER BY cseq DESC
        LIMIT ${limit}`;
      return rows.map(toMessage);
    });
  }

  latestCseq(conv: string): Promise<number> {
    return this.#idempotent(async (sql) => {
      const [row] = await sql`SELECT last_cseq FROM conversations WHERE conv = ${conv}`;
      return row ? (row.last_cseq as number) : 0;
    });
  }

  // ---- ack cursors ----

  saveAck(
    actorId: string,
    epoch: number,
    userId: string,
    device: string,
    seq: number,
  ): Promise<void> {
    return this.#idempotent(async (sql) => {
      const [{ stored }] = await sql`
        SELECT im_save_ack(${actorId}, ${epoch}, ${userId}, ${device}, ${seq}) AS stored`;
      checkFence(actorId, epoch, stored as number);
    });
  }

  saveAcks(batch: AckWrite[]): Promise<AckWriteResult[]> {
    if (batch.length === 0) return Promise.resolve([]);
    // One statement, so fencing and the writes are one transaction. Each actor is fenced once,
    // with its highest epoch in the batch (entries of a lower epoch are stale either way); the
    // row lock taken by the fence is held until commit, so a newer activation's fence waits for
    // these writes or rejects them. Rows are locked in byte order of their keys (actor_epochs,
    // then acks), so concurrent batches of several nodes queue instead of deadlocking.
    const input = JSON.stringify(batch);
    return this.#idempotent(async (sql) => {
      const rows = await sql`
        WITH input AS (
          SELECT * FROM json_to_recordset(${input}::text::json)
            AS t("actorId" text, epoch bigint, "userId" text, device text, seq bigint)
        ),
        wanted AS (
          SELECT "actorId" AS actor_id, max(epoch) AS epoch FROM input GROUP BY "actorId"
        ),
        accepted AS (
          INSERT INTO actor_epochs AS e (actor_id, epoch)
          SELECT actor_id, epoch FROM wanted ORDER BY actor_id COLLATE "C"
          ON CONFLICT (actor_id) DO UPDATE SET epoch = excluded.epoch
          WHERE e.epoch <= excluded.epoch
          RETURNING e.actor_id, e.epoch
        ),
        written AS (
          INSERT INTO acks AS a (user_id, device, seq)
          SELECT i."userId", i.device, max(i.seq) FROM input i
          JOIN accepted x ON x.actor_id = i."actorId" AND x.epoch = i.epoch
          GROUP BY i."userId", i.device
          ORDER BY i."userId" COLLATE "C", i.device COLLATE "C"
          ON CONFLICT (user_id, device) DO UPDATE SET seq = excluded.seq
          WHERE a.seq < excluded.seq
          RETURNING 1
        )
        SELECT actor_id, epoch FROM accepted`;
      const ok = new Map<string, number>();
      for (const r of rows) ok.set(r.actor_id as string, Number(r.epoch));
      return batch.map((w) => (ok.get(w.actorId) === w.epoch ? "ok" : "fenced"));
    });
  }

  loadAcks(userId: string): Promise<AckCursor[]> {
    return this.#idempotent(async (sql) => {
      const rows = await sql`
        SELECT device, seq FROM acks WHERE user_id = ${userId} ORDER BY device`;
      return rows.map((r) => ({ device: r.device as string, seq: r.seq as number }));
    });
  }

  // ---- administration ----

  getUserRole(userId: string): Promise<UserRole | null> {
    return this.#idempotent(async (sql) => {
      const [row] = await sql`SELECT role FROM user_roles WHERE user_id = ${userId}`;
      return row ? (row.role as UserRole) : null;
    });
  }

  setUserRole(userId: string, role: UserRole | null): Promise<void> {
    return this.#idempotent(async (sql) => {
      if (role === null) {
        await sql`DELETE FROM user_roles WHERE user_id = ${userId}`;
        return;
      }
      await sql`
        INSERT INTO user_roles (user_id, role) VALUES (${userId}, ${role})
        ON CONFLICT (user_id) DO UPDATE SET role = excluded.role`;
    });
  }

  revokeUserRefreshTokens(userId: string): Promise<number> {
    return this.#idempotent(async (sql) => {
      const r = await sql`
        UPDATE refresh_tokens SET revoked = true WHERE user_id = ${userId} AND NOT revoked`;
      return r.count;
    });
  }

  deleteUser(userId: string): Promise<boolean> {
    return this.#call((sql) =>
      sql.begin(async (tx) => {
        await tx`DELETE FROM inbox_runs WHERE user_id = ${userId}`;
        await tx`DELETE FROM user_inbox_seq WHERE user_id = ${userId}`;
        await tx`DELETE FROM acks WHERE user_id = ${userId}`;
        // Refresh tokens and the role go with the row (ON DELETE CASCADE).
        const r = await tx`DELETE FROM users WHERE user_id = ${userId}`;
        return r.count > 0;
      })
    );
  }

  appendAudit(entry: AuditEntryInput): Promise<number> {
    return this.#call(async (sql) => {
      const [row] = await sql`
        INSERT INTO audit_log (ts, admin_id, action, target, details)
        VALUES (${entry.ts}, ${entry.adminId}, ${entry.action}, ${entry.target},
                ${JSON.stringify(entry.details)}::text::jsonb)
        RETURNING id`;
      return Number(row.id);
    });
  }

  listAudit(before: number | null, limit: number): Promise<AuditEntry[]> {
    return this.#idempotent(async (sql) => {
      const rows = await sql`
        SELECT id, ts, admin_id, action, target, details::text AS details FROM audit_log
        WHERE id < ${before ?? Number.MAX_SAFE_INTEGER} ORDER BY id DESC LIMIT ${limit}`;
      return rows.map((r) => ({
        id: Number(r.id),
        ts: Number(r.ts),
        adminId: r.admin_id as string,
        action: r.action as string,
        target: r.target as string,
        details: JSON.parse(r.details as string),
      }));
    });
  }

  listSnapshotActors(kind: string, after: string | null, limit: number): Promise<string[]> {
    return this.#idempotent(async (sql) => {
      // A range on the primary key: `kind/` up to (not including) `kind0` ('0' follows '/').
      const rows = await sql`
        SELECT actor_id FROM snapshots
        WHERE actor_id > ${after ?? `${kind}/`} AND actor_id < ${`${kind}0`}
        ORDER BY actor_id LIMIT ${limit}`;
      return rows.map((r) => r.actor_id as string);
    });
  }

  // ---- message features (media, reactions, edits, hiding, read receipts) ----

  /**
   * Runs `write` in a transaction after raising the actor's epoch (im_fence); a stale epoch
   * rolls back with FencedError before anything is written.
   */
  #fenced<T>(actorId: string, epoch: number, write: (tx: Sql) => Promise<T>): Promise<T> {
    return this.#idempotent((sql) =>
      sql.begin(async (tx) => {
        const t = tx as unknown as Sql;
        const [{ stored }] = await t`SELECT im_fence(${actorId}, ${epoch}) AS stored`;
        checkFence(actorId, epoch, stored as number);
        return await write(t);
      }) as Promise<T>
    );
  }

  createMedia(media: MediaRecord): Promise<void> {
    return this.#call(async (sql) => {
      await sql`
        INSERT INTO media (media_id, owner, mime, size, width, height, created_at)
        VALUES (${media.mediaId}, ${media.owner}, ${media.mime}, ${media.size}, ${media.width},
                ${media.height}, ${media.createdAt})`;
    });
  }

  getMedia(mediaId: string): Promise<MediaRecord | null> {
    return this.#idempotent(async (sql) => {
      const [row] = await sql`SELECT * FROM media WHERE media_id = ${mediaId}`;
      return row ? toMedia(row) : null;
    });
  }

  addMediaRef(
    actorId: string,
    epoch: number,
    mediaId: string,
    conv: string,
    mid: string,
  ): Promise<void> {
    return this.#fenced(actorId, epoch, async (tx) => {
      await tx`
        INSERT INTO media_refs (media_id, conv, mid) VALUES (${mediaId}, ${conv}, ${mid})
        ON CONFLICT DO NOTHING`;
    });
  }

  mediaConversations(mediaId: string): Promise<string[]> {
    return this.#idempotent(async (sql) => {
      const rows = await sql`
        SELECT DISTINCT conv FROM media_refs WHERE media_id = ${mediaId} ORDER BY conv`;
      return rows.map((r) => r.conv as string);
    });
  }

  getMessage(conv: string, ref: MessageRef): Promise<StoredMessage | null> {
    return this.#idempotent(async (sql) => {
      const [row] = "mid" in ref
        ? await sql`
          SELECT ${sql.unsafe(MESSAGE_COLUMNS)} FROM messages
          WHERE mid = ${ref.mid} AND conv = ${conv}`
        : await sql`
          SELECT ${sql.unsafe(MESSAGE_COLUMNS)} FROM messages
          WHERE conv = ${conv} AND cseq = ${ref.cseq}`;
      return row ? toMessage(row) : null;
    });
  }

  updateMessageBody(
    actorId: string,
    epoch: number,
    conv: string,
    mid: string,
    body: Record<string, unknown>,
    dropMediaRefs = false,
  ): Promise<boolean> {
    const text = JSON.stringify(body);
    return this.#fenced(actorId, epoch, async (tx) => {
      const rows = await tx`
        UPDATE messages SET body = ${text}::text::json WHERE mid = ${mid} AND conv = ${conv}
        RETURNING 1`;
      if (rows.length === 0) return false;
      if (dropMediaRefs) await tx`DELETE FROM media_refs WHERE mid = ${mid}`;
      return true;
    });
  }

  setReaction(
    actorId: string,
    epoch: number,
    mid: string,
    userId: string,
    emoji: string,
    on: boolean,
    ts: number,
  ): Promise<ReactionSummary[]> {
    return this.#fenced(actorId, epoch, async (tx) => {
      if (on) {
        await tx`
          INSERT INTO message_reactions (mid, emoji, user_id, ts)
          VALUES (${mid}, ${emoji}, ${userId}, ${ts})
          ON CONFLICT DO NOTHING`;
      } else {
        await tx`
          DELETE FROM message_reactions
          WHERE mid = ${mid} AND emoji = ${emoji} AND user_id = ${userId}`;
      }
      return (await reactionsOf(tx, [mid])).get(mid) ?? [];
    });
  }

  hideMessage(
    actorId: string,
    epoch: number,
    userId: string,
    conv: string,
    mid: string,
  ): Promise<void> {
    return this.#fenced(actorId, epoch, async (tx) => {
      await tx`
        INSERT INTO message_hidden (user_id, mid, conv) VALUES (${userId}, ${mid}, ${conv})
        ON CONFLICT DO NOTHING`;
    });
  }

  historyFor(
    userId: string,
    conv: string,
    before: number | null,
    limit: number,
  ): Promise<HistoryMessage[]> {
    return this.#idempotent(async (sql) => {
      if (limit <= 0) return [];
      const rows = await sql`
        SELECT ${sql.unsafe(MESSAGE_COLUMNS)} FROM messages m
        WHERE conv = ${conv} AND cseq < ${before ?? Number.MAX_SAFE_INTEGER}
          AND NOT EXISTS (
            SELECT 1 FROM message_hidden h WHERE h.user_id = ${userId} AND h.mid = m.mid)
        ORDER BY cseq DESC
        LIMIT ${limit}`;
      const messages = rows.map(toMessage);
      const reactions = await reactionsOf(sql, messages.map((m) => m.mid));
      return messages.map((m) => ({ ...m, reactions: reactions.get(m.mid) ?? [] }));
    });
  }

  saveReadCursor(
    actorId: string,
    epoch: number,
    conv: string,
    userId: string,
    cseq: number,
    ts: number,
  ): Promise<number> {
    return this.#fenced(actorId, epoch, async (tx) => {
      await tx`
        INSERT INTO read_cursors AS r (conv, user_id, cseq, ts)
        VALUES (${conv}, ${userId}, ${cseq}, ${ts})
        ON CONFLICT (conv, user_id) DO UPDATE SET cseq = excluded.cseq, ts = excluded.ts
        WHERE r.cseq < excluded.cseq`;
      const [row] = await tx`
        SELECT cseq FROM read_cursors WHERE conv = ${conv} AND user_id = ${userId}`;
      return row.cseq as number;
    });
  }

  readCursors(conv: string): Promise<ReadCursor[]> {
    return this.#idempotent(async (sql) => {
      const rows = await sql`
        SELECT user_id, cseq, ts FROM read_cursors WHERE conv = ${conv} ORDER BY user_id`;
      return rows.map((r) => ({
        userId: r.user_id as string,
        cseq: r.cseq as number,
        ts: r.ts as number,
      }));
    });
  }

  userReadCursors(userId: string, convs: string[]): Promise<Record<string, number>> {
    return this.#idempotent(async (sql) => {
      const out: Record<string, number> = {};
      if (convs.length === 0) return out;
      const rows = await sql`
        SELECT conv, cseq FROM read_cursors
        WHERE user_id = ${userId}
          AND conv IN (SELECT json_array_elements_text(${JSON.stringify(convs)}::text::json))`;
      for (const r of rows) out[r.conv as string] = r.cseq as number;
      return out;
    });
  }

  scanInboxConversations(userId: string, after: number, limit: number): Promise<InboxScan> {
    return this.#idempotent(async (sql) => {
      if (limit <= 0) return { convs: [], scanned: 0, lastSeq: after };
      // The positions after..after+limit (seqs are gapless), their messages grouped by
      // conversation; hidden ones count, as they are still inbox entries.
      const to = after + limit;
      const rows = await sql`
        SELECT m.conv, min(m.cseq) AS first_cseq, max(m.cseq) AS last_cseq,
               max(r.seq_start - r.cseq_start + m.cseq) AS last_seq, count(*)::int AS n
        FROM (${runsBetween(sql, userId, after, to)}) r
        CROSS JOIN LATERAL (${messagesOfRun(sql, after, to)}) m
        GROUP BY m.conv
        ORDER BY m.conv`;
      let scanned = 0;
      let lastSeq = after;
      const convs = rows.map((r) => {
        scanned += r.n as number;
        lastSeq = Math.max(lastSeq, r.last_seq as number);
        return {
          conv: r.conv as string,
          firstCseq: r.first_cseq as number,
          lastCseq: r.last_cseq as number,
          lastSeq: r.last_seq as number,
        };
      });
      return { convs, scanned, lastSeq };
    });
  }

  messagesAt(refs: { conv: string; cseq: number }[]): Promise<StoredMessage[]> {
    return this.#idempotent(async (sql) => {
      if (refs.length === 0) return [];
      const rows = await sql`
        SELECT ${sql.unsafe(MESSAGE_COLUMNS.split(", ").map((c) => `m.${c}`).join(", "))}
        FROM json_to_recordset(${JSON.stringify(refs)}::text::json) AS x(conv text, cseq bigint)
        -- LIMIT: one index lookup per reference, never a join the planner could run as a scan
        -- of messages (see messagesOfRun).
        CROSS JOIN LATERAL (
          SELECT * FROM messages m WHERE m.conv = x.conv AND m.cseq = x.cseq LIMIT 1
        ) m`;
      return rows.map(toMessage);
    });
  }

  unreadCounts(
    userId: string,
    ranges: { conv: string; after: number; upTo: number }[],
    cap: number,
  ): Promise<Record<string, number>> {
    return this.#idempotent(async (sql) => {
      const out: Record<string, number> = {};
      if (ranges.length === 0) return out;
      const rows = await sql`
        SELECT x.conv, (
          SELECT count(*)::int FROM (
            SELECT 1 FROM messages m
            WHERE m.conv = x.conv AND m.cseq > x.after AND m.cseq <= x."upTo"
              AND m.sender <> ${userId}
              AND NOT EXISTS (
                SELECT 1 FROM message_hidden h WHERE h.user_id = ${userId} AND h.mid = m.mid)
            LIMIT ${cap}) s) AS n
        FROM json_to_recordset(${JSON.stringify(ranges)}::text::json)
          AS x(conv text, after bigint, "upTo" bigint)`;
      for (const r of rows) out[r.conv as string] = r.n as number;
      return out;
    });
  }

  // ---- social: profiles, user search, follows ----

  getProfiles(userIds: string[]): Promise<Profile[]> {
    return this.#idempotent(async (sql) => {
      if (userIds.length === 0) return [];
      const rows = await sql`
        SELECT q.* FROM ${idList(sql, userIds)}
        CROSS JOIN LATERAL (
          SELECT ${sql.unsafe(PROFILE_COLUMNS)}
          FROM users u LEFT JOIN profiles p ON p.user_id = u.user_id
          WHERE u.user_id = x.id LIMIT 1
        ) q`;
      return rows.map(toProfile);
    });
  }

  updateProfile(userId: string, patch: ProfilePatch, at: number): Promise<Profile | null> {
    const name = patch.displayName ?? null;
    const key = name === null ? null : searchKey(name);
    const avatar = patch.avatar ?? null;
    const bio = patch.bio ?? null;
    // Setting the same fields twice gives the same row: safe to repeat after a lost connection.
    return this.#idempotent(async (sql) => {
      const rows = await sql`
        WITH up AS (
          INSERT INTO profiles AS p (user_id, display_name, display_key, avatar, bio, updated_at)
          SELECT u.user_id, coalesce(${name}::text, ''), coalesce(${key}::text, ''),
                 coalesce(${avatar}::text, ''), coalesce(${bio}::text, ''), ${at}
          FROM users u WHERE u.user_id = ${userId}
          ON CONFLICT (user_id) DO UPDATE SET
            display_name = coalesce(${name}::text, p.display_name),
            display_key = coalesce(${key}::text, p.display_key),
            avatar = coalesce(${avatar}::text, p.avatar),
            bio = coalesce(${bio}::text, p.bio),
            updated_at = ${at}
          RETURNING p.user_id, p.display_name, p.avatar, p.bio
        )
        SELECT up.user_id, u.username, up.display_name, up.avatar, up.bio
        FROM up JOIN users u ON u.user_id = up.user_id`;
      return rows.length ? toProfile(rows[0]) : null;
    });
  }

  searchUsers(prefix: string, after: SearchCursor | null, limit: number): Promise<SearchPage> {
    return this.#idempotent(async (sql) => {
      const lo = searchKey(prefix);
      const hi = prefixUpperBound(lo);
      if (hi === null || limit <= 0) return { users: [], next: null };
      // Each stream starts at the cursor (or the prefix) and reads at most limit + 1 rows of
      // one index range; the merged first limit + 1 are then the true next page.
      const ak = after?.key ?? "";
      const aid = after?.userId ?? "";
      const start = compareCodePoints(ak, lo) > 0 ? ak : lo;
      const [byName, byDisplay] = await Promise.all([
        sql`
          SELECT ${sql.unsafe(PROFILE_COLUMNS)}, u.username AS key
          FROM users u LEFT JOIN profiles p ON p.user_id = u.user_id
          WHERE u.username >= ${start} AND u.username < ${hi}
            AND (u.username > ${ak} OR u.user_id > ${aid}) AND NOT u.disabled
          ORDER BY u.username, u.user_id
          LIMIT ${limit + 1}`,
        sql`
          SELECT ${sql.unsafe(PROFILE_COLUMNS)}, p.display_key AS key
          FROM profiles p JOIN users u ON u.user_id = p.user_id
          WHERE p.display_key >= ${start} AND p.display_key < ${hi}
            AND (p.display_key > ${ak} OR p.user_id > ${aid}) AND NOT u.disabled
            AND NOT (u.username >= ${lo} AND u.username < ${hi})
          ORDER BY p.display_key, p.user_id
          LIMIT ${limit + 1}`,
      ]);
      return mergeSearchStreams(
        [...byName, ...byDisplay].map((r) => ({ key: r.key as string, profile: toProfile(r) })),
        limit,
      );
    });
  }

  follow(follower: string, followee: string, at: number): Promise<boolean> {
    return this.#call(async (sql) => {
      const rows = await sql`
        INSERT INTO follows (follower, followee, created_at) VALUES (${follower}, ${followee}, ${at})
        ON CONFLICT (follower, followee) DO NOTHING
        RETURNING 1`;
      return rows.length === 1;
    });
  }

  unfollow(follower: string, followee: string): Promise<boolean> {
    return this.#call(async (sql) => {
      const rows = await sql`
        DELETE FROM follows WHERE follower = ${follower} AND followee = ${followee} RETURNING 1`;
      return rows.length === 1;
    });
  }

  followCounts(userId: string): Promise<{ followers: number; following: number }> {
    return this.#idempotent(async (sql) => {
      const [row] = await sql`
        SELECT (SELECT count(*) FROM follows WHERE followee = ${userId}) AS followers,
               (SELECT count(*) FROM follows WHERE follower = ${userId}) AS following`;
      return { followers: Number(row.followers), following: Number(row.following) };
    });
  }

  listFollows(
    userId: string,
    kind: "followers" | "following",
    after: FollowCursor | null,
    limit: number,
  ): Promise<FollowEntry[]> {
    return this.#idempotent(async (sql) => {
      if (limit <= 0) return [];
      const [self, other] = kind === "followers"
        ? ["followee", "follower"]
        : ["follower", "followee"];
      const ts = after?.ts ?? Number.MAX_SAFE_INTEGER;
      const id = after?.userId ?? "\u{10FFFF}";
      const rows = await sql`
        SELECT ${sql(other)} AS user_id, created_at FROM follows
        WHERE ${sql(self)} = ${userId}
          AND (created_at < ${ts} OR (created_at = ${ts} AND ${sql(other)} < ${id}))
        ORDER BY created_at DESC, ${sql(other)} DESC
        LIMIT ${limit}`;
      return rows.map((r) => ({ userId: r.user_id as string, ts: r.created_at as number }));
    });
  }
}

/**
 * The runs of `userId`'s inbox holding seqs after+1 .. to (the closed runs from inbox_runs, then
 * the open tail from user_inbox_seq), as rows (seq_start, conv, cseq_start, count); the first and
 * last may reach beyond that range, so readers clip them. A closed run starting at or before
 * after+1 holds it only if it is the last such run; every later one starts after it.
 */
function runsBetween(sql: Sql, userId: string, after: number, to: number) {
  return sql`
    SELECT seq_start, conv, cseq_start, count FROM inbox_runs
    WHERE user_id = ${userId} AND seq_start <= ${to}::bigint
      AND seq_start >= COALESCE((
        SELECT max(seq_start) FROM inbox_runs
        WHERE user_id = ${userId} AND seq_start <= ${after + 1}::bigint), 0)
    UNION ALL
    SELECT tail_seq_start, tail_conv, tail_cseq - (last_seq - tail_seq_start),
           last_seq - tail_seq_start + 1
    FROM user_inbox_seq
    WHERE user_id = ${userId} AND tail_conv <> '' AND tail_seq_start <= ${to}::bigint`;
}

/**
 * `ids` (without duplicates) as the rows of `x(id)`, to drive LATERAL lookups by key: one index
 * probe per id. A semi-join on the list instead (`key IN (SELECT ...)`) could be planned as a
 * hash join over a sequential scan of the table, and postgres.js's prepared statements keep a
 * plan made while the table was small (as on every fresh database) while it grows.
 */
function idList(sql: Sql, ids: string[]) {
  return sql`(SELECT DISTINCT json_array_elements_text(${
    JSON.stringify(ids)
  }::text::json) AS id) x`;
}

/**
 * The messages of run `r` (a row of {@link runsBetween}) at inbox positions after..to, for a
 * LATERAL join. OFFSET 0 keeps the subquery from being pulled up into a join: one index range
 * scan of (conv, cseq) per run. Pulled up, the statement's plan (cached per connection, made
 * with the statistics of that moment) was a hash join over a sequential scan of messages when
 * made on a small table, as on every fresh database, and stayed so while the table grew.
 */
function messagesOfRun(sql: Sql, after: number, to: number) {
  return sql`
    SELECT * FROM messages m
    WHERE m.conv = r.conv
      AND m.cseq >= r.cseq_start + GREATEST(0, ${after + 1}::bigint - r.seq_start)
      AND m.cseq < r.cseq_start + LEAST(r.count, ${to + 1}::bigint - r.seq_start)
    OFFSET 0`;
}

/** The im_* functions return the stored epoch after the write: above ours means fenced. */
function checkFence(actorId: string, epoch: number, stored: number): void {
  if (stored > epoch) throw new FencedError(actorId, epoch, stored);
}

function toUser(row: Row): UserRecord {
  return {
    userId: row.user_id as string,
    username: row.username as string,
    passwordHash: row.password_hash as string,
    createdAt: row.created_at as number,
    disabled: row.disabled as boolean,
  };
}

function toRefreshToken(row: Row): RefreshTokenRecord {
  return {
    tokenHash: row.token_hash as string,
    userId: row.user_id as string,
    device: row.device as string,
    familyId: row.family_id as string,
    expiresAt: row.expires_at as number,
    usedAt: row.used_at === null ? null : (row.used_at as number),
    revoked: row.revoked as boolean,
  };
}

function toMessage(row: Row): StoredMessage {
  return {
    mid: row.mid as string,
    conv: row.conv as string,
    cseq: row.cseq as number,
    from: row.sender as string,
    to: row.to_kind === "user" ? { user: row.to_id as string } : { group: row.to_id as string },
    ts: row.ts as number,
    body: row.body as Record<string, unknown>,
    cmid: row.cmid as string,
  };
}

/**
 * `im_append`'s argument as JSON text (its field names match the column list of
 * json_to_recordset in im_append): the requests with their index, the recipient split into kind
 * and id, recipients de-duplicated, and the body as its JSON text.
 */
export function imAppendBatch(requests: readonly AppendRequest[]): string {
  return JSON.stringify(requests.map((r, idx) => ({
    idx,
    actorId: r.actorId,
    epoch: r.epoch,
    mid: r.mid,
    conv: r.conv,
    from: r.from,
    cmid: r.cmid,
    toKind: "user" in r.to ? "user" : "group",
    toId: "user" in r.to ? r.to.user : r.to.group,
    ts: r.ts,
    bodyText: JSON.stringify(r.body),
    recipients: [...new Set(r.recipients)],
  })));
}

/** What im_append_lock returns (see migrations_postgres.ts, version 7). */
interface LockedRows {
  epochs: [string, number][];
  convs: [string, number][];
  users: CounterRow[];
  prior: Row[];
}

/** A counter row as im_append_lock returns it: [user, last_seq, tail_seq_start, tail_conv, tail_cseq]. */
type CounterRow = [string, number, number, string, number];

/** A user's counter as step 1 found it: the stored state, and the row as step 1 left it. */
interface LockedCounter extends InboxCounter {
  /** The row after step 1 advanced it (see im_append_lock). */
  advanced: CounterRow;
  /** The entries step 1 advanced it by. */
  advancedBy: number;
}

/** What step 1 found: the numbering's input, its counters with the rows as step 1 left them. */
interface Locked {
  state: BatchState;
  counters: Map<string, LockedCounter>;
}

/**
 * The numbering's input from im_append_lock's rows: step 1 advanced each user's last_seq, and the
 * tail_cseq of an open tail, by `expected` entries; taking them off gives the stored counters.
 */
function lockedState(rows: LockedRows, expected: Map<string, number>): Locked {
  const counters = new Map<string, LockedCounter>();
  for (const row of rows.users) {
    const [userId, advancedLast, seqStart, conv, advancedTail] = row;
    const n = expected.get(userId) ?? 0;
    const lastSeq = advancedLast - n;
    // tail_conv '' is "no run to extend" (its tail_cseq was left alone); otherwise tail_cseq is
    // the cseq at last_seq, so the tail's first cseq follows from it.
    counters.set(userId, {
      lastSeq,
      tail: conv === ""
        ? null
        : { seqStart, conv, cseqStart: advancedTail - n - (lastSeq - seqStart) },
      advanced: row,
      advancedBy: n,
    });
  }
  const prior = new Map<string, Map<string, StoredMessage>>();
  for (const row of rows.prior) {
    const message = toMessage(row);
    let bySender = prior.get(message.from);
    if (!bySender) prior.set(message.from, bySender = new Map());
    bySender.set(message.cmid, message);
  }
  return {
    state: { epochs: new Map(rows.epochs), cseqs: new Map(rows.convs), inboxes: counters, prior },
    counters,
  };
}

/**
 * The counter rows step 2 must write: each user's final row where it differs from the row step 1
 * left, and the stored row back for a user step 1 advanced who got no entry (a fenced or
 * duplicate request). For members whose entries all extend their open run, nothing.
 */
function countersToWrite(batch: NumberedBatch, locked: Locked): CounterRow[] {
  const out: CounterRow[] = [];
  const written = new Set<string>();
  for (const row of batch.counters) {
    written.add(row[0]);
    const left = locked.counters.get(row[0])!.advanced;
    if (row.some((v, i) => v !== left[i])) out.push(row);
  }
  if (written.size < locked.counters.size) {
    for (const [userId, c] of locked.counters) {
      if (written.has(userId) || c.advancedBy === 0) continue;
      const [, , seqStart, conv, advancedTail] = c.advanced;
      out.push([
        userId,
        c.lastSeq,
        seqStart,
        conv,
        conv === "" ? advancedTail : advancedTail - c.advancedBy,
      ]);
    }
  }
  return out.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
}

function toMedia(row: Row): MediaRecord {
  return {
    mediaId: row.media_id as string,
    owner: row.owner as string,
    mime: row.mime as string,
    size: row.size as number,
    width: row.width === null ? null : (row.width as number),
    height: row.height === null ? null : (row.height as number),
    createdAt: row.created_at as number,
  };
}

/** Reactions of the given messages, aggregated per emoji (ordered by first reaction). */
async function reactionsOf(sql: Sql, mids: string[]): Promise<Map<string, ReactionSummary[]>> {
  const out = new Map<string, ReactionSummary[]>();
  if (mids.length === 0) return out;
  const rows = await sql`
    SELECT r.mid, r.emoji, r.user_id FROM ${idList(sql, mids)}
    CROSS JOIN LATERAL (
      SELECT mid, emoji, user_id, ts FROM message_reactions WHERE mid = x.id OFFSET 0
    ) r
    ORDER BY r.mid, r.ts, r.user_id`;
  for (const r of rows) {
    const mid = r.mid as string;
    let list = out.get(mid);
    if (!list) out.set(mid, list = []);
    let entry = list.find((e) => e.emoji === r.emoji);
    if (!entry) list.push(entry = { emoji: r.emoji as string, count: 0, users: [] });
    entry.count++;
    entry.users.push(r.user_id as string);
  }
  return out;
}

function sqlState(err: unknown): string | undefined {
  if (err instanceof postgres.PostgresError) return err.code;
  return undefined;
}

/** Serialization failure or deadlock: the transaction was rolled back and may simply rerun. */
function isConflict(err: unknown): boolean {
  const state = sqlState(err);
  return state === "40001" || state === "40P01";
}

/** Maps a postgres.js error to the port's error classes; others are returned unchanged. */
function translateError(err: unknown): unknown {
  if (err instanceof ImError || !(err instanceof Error)) return err;
  if (err instanceof CallTimeoutError) {
    return new UnavailableError(`Postgres unavailable: ${err.message}`, { cause: err });
  }
  const state = sqlState(err);
  if (state !== undefined) {
    const pgErr = err as postgres.PostgresError;
    if (state === "23505" && pgErr.constraint_name === "users_username_key") {
      return new ImError("username_taken", "Username is already taken", { cause: err });
    }
    // 08: connection exception; 53: insufficient resources; 57P0x: server shutting down or
    // starting; 40: conflicts that did not resolve within the retries; 25006: read-only
    // (a failover in progress).
    if (
      state.startsWith("08") || state.startsWith("53") || state.startsWith("57P") ||
      state.startsWith("40") || state === "25006"
    ) {
      return new UnavailableError(`Postgres unavailable: ${err.message}`, { cause: err });
    }
    return err;
  }
  if (isConnectionLoss(err)) {
    return new UnavailableError(`Postgres unavailable: ${(err as { code?: unknown }).code}`, {
      cause: err,
    });
  }
  return err;
}

// ---- social helpers ----

const PROFILE_COLUMNS = `u.user_id AS user_id, u.username AS username,
  coalesce(p.display_name, '') AS display_name, coalesce(p.avatar, '') AS avatar,
  coalesce(p.bio, '') AS bio`;

function toProfile(row: Row): Profile {
  return {
    userId: row.user_id as string,
    username: row.username as string,
    displayName: row.display_name as string,
    avatar: row.avatar as string,
    bio: row.bio as string,
  };
}
