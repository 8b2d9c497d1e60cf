/**
 * The clustered {@link Store}: Postgres through `npm:postgres`.
 *
 * - Every fenced write is one statement whose fencing check is part of the write
 *   (`im_fence`, `im_save_snapshot`, `im_save_ack`, `im_append` in `migrations_postgres.ts`).
 * - `append` is one round trip per batch: `SELECT im_append($batch)` locks the counter rows in a
 *   fixed order, then numbers and writes the whole batch set-based, in one transaction.
 * - Serialization failures and deadlocks (a concurrent duplicate `(from, cmid)`, or a conflict
 *   with another writer) roll the transaction back and are retried a few times, then surface as
 *   {@link UnavailableError}; so do connection failures (refused, reset, ended, timed out) and
 *   server shutdowns. A taken username rejects with ImError `username_taken`.
 *
 * @module
 */
import postgres from "postgres";
import { FencedError, ImError, UnavailableError } from "../actors/errors.ts";
import {
  MIGRATION_LOCK_KEY,
  POSTGRES_MIGRATIONS,
  type PostgresMigration,
} from "./migrations_postgres.ts";
import type {
  AckCursor,
  AppendRequest,
  AppendResult,
  AuditEntry,
  AuditEntryInput,
  InboxEntry,
  RefreshTokenRecord,
  Snapshot,
  Store,
  StoredMessage,
  UserRecord,
  UserRole,
} from "./store.ts";

/** Options of {@link openPostgresStore}. */
export interface PostgresStoreOptions {
  /** Pool size (default 10). */
  max?: number;
  /** Seconds to wait for a connection before failing with UnavailableError (default 10). */
  connectTimeoutSeconds?: number;
  /**
   * Deadline of one call in milliseconds (default 30000): past it the call rejects with
   * UnavailableError (a write may still commit; callers retry with the same key).
   */
  callTimeoutMs?: number;
  /** Schema versions to apply (tests only; defaults to {@link POSTGRES_MIGRATIONS}). */
  migrations?: readonly PostgresMigration[];
}

type Sql = postgres.Sql<Record<string, unknown>>;
type Row = Record<string, unknown>;

const MESSAGE_COLUMNS = "mid, conv, cseq, sender, cmid, to_kind, to_id, ts, body";

/** Attempts of a transaction that failed with a serialization failure or deadlock. */
const MAX_ATTEMPTS = 5;

/** Seconds a retired pool gets to finish its queries before they are cut off. */
const RETIRE_TIMEOUT_SECONDS = 2;

/**
 * Opens a connection pool to `url` (connections are made lazily, so this never throws for an
 * unreachable server; the first call does). Call `migrate()` before use.
 */
export function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Store {
  const makePool = () =>
    postgres(url, {
      max: options.max ?? 10,
      connect_timeout: options.connectTimeoutSeconds ?? 10,
      // int8 columns (epochs, seqs, timestamps in ms) stay below 2^53: plain numbers.
      types: {
        bigint: {
          to: 20,
          from: [20],
          serialize: (x: number) => String(x),
          parse: (x: string) => Number(x),
        },
      },
      // Notices are informational (e.g. "relation exists"): not errors, not worth a log line.
      onnotice: () => {},
    }) as unknown as Sql;
  return new PostgresStore(
    makePool,
    options.callTimeoutMs ?? 30_000,
    options.migrations ?? POSTGRES_MIGRATIONS,
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
  readonly #migrations: readonly PostgresMigration[];
  #pool: Sql;
  readonly #retiring = new Set<Promise<void>>();
  #closed = false;

  constructor(
    makePool: () => Sql,
    callTimeoutMs: number,
    migrations: readonly PostgresMigration[],
  ) {
    this.#makePool = makePool;
    this.#callTimeoutMs = callTimeoutMs;
    this.#migrations = migrations;
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

  /** Runs one attempt of `fn` on the current pool, bounded by the call deadline. */
  async #attempt<T>(pool: Sql, fn: (sql: Sql) => Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new CallTimeoutError(this.#callTimeoutMs)),
        this.#callTimeoutMs,
      );
    });
    const work = fn(pool);
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
   * A lost connection (or a call past its deadline) retires the pool; `idempotent` calls (reads,
   * and writes whose repetition changes nothing) are then retried once on the fresh pool. Other
   * writes are not repeated, because a lost connection leaves unknown whether they committed;
   * their caller retries with the same key.
   */
  async #call<T>(fn: (sql: Sql) => Promise<T>, idempotent = false): Promise<T> {
    let reconnected = false;
    for (let attempt = 1;; attempt++) {
      if (this.#closed) throw new UnavailableError("The Postgres store is closed");
      const pool = this.#pool;
      try {
        return await this.#attempt(pool, fn);
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
    return this.#call(fn, true);
  }

  migrate(): Promise<void> {
    return this.#idempotent(async (sql) => {
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
        SELECT user_id FROM users
        WHERE user_id IN (SELECT json_array_elements_text(${JSON.stringify(userIds)}::text::json))`;
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
    // Field names match the column list of json_to_recordset in im_append.
    const batch = JSON.stringify(requests.map((r, idx) => ({
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
      const rows = await sql`
        SELECT i.seq AS seq, m.mid, m.conv, m.cseq, m.sender, m.cmid, m.to_kind, m.to_id, m.ts,
               m.body
        FROM inbox i JOIN messages m ON m.mid = i.mid
        WHERE i.user_id = ${userId} AND i.seq > ${after}
        ORDER BY i.seq
        LIMIT ${limit}`;
      return rows.map((row) => ({ seq: row.seq as number, message: toMessage(row) }));
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
        await tx`DELETE FROM inbox WHERE user_id = ${userId}`;
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

/** Driver error codes (Node-style and postgres.js's own) of a lost or unreachable server. */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
]);

function sqlState(err: unknown): string | undefined {
  if (err instanceof postgres.PostgresError) return err.code;
  return undefined;
}

/** Serialization failure or deadlock: the transaction was rolled back and may simply rerun. */
function isConflict(err: unknown): boolean {
  const state = sqlState(err);
  return state === "40001" || state === "40P01";
}

/** The connection failed or the server is going away (restart, failover, admin kill). */
function isConnectionLoss(err: unknown): boolean {
  const state = sqlState(err);
  if (state !== undefined) return state.startsWith("08") || state.startsWith("57P");
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && CONNECTION_CODES.has(code);
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
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && CONNECTION_CODES.has(code)) {
    return new UnavailableError(`Postgres unavailable: ${code}`, { cause: err });
  }
  return err;
}
