/**
 * The embedded {@link Store}: one SQLite file through Deno's built-in `node:sqlite`.
 *
 * - WAL journal with `synchronous=FULL`: a resolved write has been fsynced, so an `ok` sent after
 *   it survives a crash or power loss.
 * - Every write is one transaction (`BEGIN IMMEDIATE`, so a second process on the same file waits
 *   up to the busy timeout instead of failing mid-transaction); `append` runs a whole batch in one.
 * - `node:sqlite` is synchronous, so each call runs start to finish without interleaving with
 *   others in this process: read-check-write inside one transaction is atomic. Each call's work is
 *   bounded by its arguments (batch size, page limit); callers keep those bounded.
 * - Each user's inbox is stored as runs (schema versions 6 and 7): a run maps consecutive inbox
 *   seqs to consecutive cseqs of one conversation. The open tail run lives only in the user's
 *   `user_inbox_seq` row (its count is implied by `last_seq`); `inbox_runs` holds the closed
 *   runs. `append` extends the tail when the next entry is the same conversation's next cseq,
 *   else closes it into `inbox_runs` and starts a new one: a group message rewrites one small
 *   counter row per member on a few shared pages. Reads expand the runs into (seq, conv, cseq)
 *   and fetch the messages by the (conv, cseq) index.
 * - `append` keeps the counter rows it read or committed (epochs, last cseqs, inbox counters) and
 *   reads only the others; `PRAGMA data_version` tells it when another connection wrote the file
 *   (db/sqlite_counter_cache.ts).
 * - SQLite errors that mean "cannot reach the data right now" (busy, locked, I/O, full, closed)
 *   surface as {@link UnavailableError}; a taken username as ImError `username_taken`.
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { dirname } from "node:path";
import { FencedError, ImError, UnavailableError } from "../actors/errors.ts";
import { SQLITE_MIGRATIONS, type SqliteMigration } from "./migrations_sqlite.ts";
import { type BatchState, numberBatch, type NumberedBatch } from "./append_numbering.ts";
import { CounterCache } from "./sqlite_counter_cache.ts";
import type {
  AckCursor,
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

/** Options of {@link openSqliteStore}. */
export interface SqliteStoreOptions {
  /** How long a write waits for another connection's write lock before failing (default 5000). */
  busyTimeoutMs?: number;
  /** Schema versions to apply (tests only; defaults to {@link SQLITE_MIGRATIONS}). */
  migrations?: readonly SqliteMigration[];
  /**
   * WAL pages after which a commit checkpoints (SQLite's `wal_autocheckpoint`; default 1000).
   * The threaded store raises it: its own checkpointer thread does the work.
   */
  walAutocheckpointPages?: number;
}

type Row = Record<string, unknown>;

// A user's runs from the one holding seq ?2 + 1 on (?1 user, ?2 after), in seq order: a run starts
// at or before that seq only when it is the last such run.
const RUNS_FROM = `
  SELECT seq_start, conv, cseq_start, count FROM inbox_runs
  WHERE user_id = ?1
    AND seq_start >= coalesce(
      (SELECT max(seq_start) FROM inbox_runs WHERE user_id = ?1 AND seq_start <= ?2 + 1), 0)
    AND seq_start + count > ?2
  ORDER BY seq_start`;

/** Fewest inbox positions readInbox covers per round (hidden entries may need more rounds). */
const INBOX_SLICE = 32;

const MESSAGE_COLUMNS = "mid, conv, cseq, sender, cmid, to_kind, to_id, ts, body";

/**
 * Opens (creating when missing, with its parent directory) the SQLite store at `path`;
 * `":memory:"` gives a private in-memory database (tests). Call `migrate()` before use.
 */
export function openSqliteStore(path: string, options: SqliteStoreOptions = {}): Store {
  if (path !== ":memory:" && !path.startsWith("file:")) {
    Deno.mkdirSync(dirname(path), { recursive: true });
  }
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, {
      timeout: options.busyTimeoutMs ?? 5000,
      enableForeignKeyConstraints: true,
    });
    // WAL lets readers run beside the writer; FULL syncs the WAL on every commit (durable ok).
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = FULL");
    db.exec("PRAGMA foreign_keys = ON");
    db.exec("PRAGMA temp_store = MEMORY");
    const autocheckpoint = options.walAutocheckpointPages ?? 1000;
    if (!Number.isInteger(autocheckpoint) || autocheckpoint < 0) {
      throw new RangeError(
        `walAutocheckpointPages must be a natural number, got ${autocheckpoint}`,
      );
    }
    db.exec(`PRAGMA wal_autocheckpoint = ${autocheckpoint}`);
  } catch (err) {
    throw translateError(err);
  }
  return new SqliteStore(db, options.migrations ?? SQLITE_MIGRATIONS);
}

class SqliteStore implements Store {
  readonly kind = "sqlite";
  readonly blocksThread = true;
  readonly serialCalls = true;
  readonly #db: DatabaseSync;
  readonly #migrations: readonly SqliteMigration[];
  readonly #statements = new Map<string, StatementSync>();
  /** Counter rows appends have read or written (db/sqlite_counter_cache.ts has the rules). */
  readonly #counters = new CounterCache();
  #closed = false;

  constructor(db: DatabaseSync, migrations: readonly SqliteMigration[]) {
    this.#db = db;
    this.#migrations = migrations;
  }

  /** Runs `fn` and maps SQLite failures to the port's errors. */
  #call<T>(fn: () => T): Promise<T> {
    try {
      if (this.#closed) throw new UnavailableError("The SQLite store is closed");
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(translateError(err));
    }
  }

  /** A cached prepared statement (prepared on first use, after migrations created the tables). */
  #st(sql: string): StatementSync {
    let st = this.#statements.get(sql);
    if (!st) {
      st = this.#db.prepare(sql);
      this.#statements.set(sql, st);
    }
    return st;
  }

  /** Runs `fn` in one write transaction; rolls back on any error. */
  #tx<T>(fn: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const result = fn();
      this.#db.exec("COMMIT");
      return result;
    } catch (err) {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw err;
    }
  }

  migrate(): Promise<void> {
    return this.#call(() => {
      this.#db.exec(
        `CREATE TABLE IF NOT EXISTS schema_migrations (
           version INTEGER PRIMARY KEY,
           applied_at INTEGER NOT NULL
         ) STRICT`,
      );
      for (const migration of [...this.#migrations].sort((a, b) => a.version - b.version)) {
        this.#tx(() => {
          // Re-checked inside the write transaction: another process may have applied it.
          const applied = this.#db
            .prepare("SELECT 1 FROM schema_migrations WHERE version = ?")
            .get(migration.version);
          if (applied) return;
          this.#db.exec(migration.sql);
          this.#db
            .prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
            .run(migration.version, Date.now());
        });
      }
      // A migration may rewrite the counter rows (schema 7 converted every inbox).
      this.#counters.clear();
    });
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#statements.clear();
    try {
      this.#db.close();
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(translateError(err));
    }
  }

  // ---- accounts ----

  createUser(user: UserRecord): Promise<void> {
    return this.#call(() => {
      this.#st(
        `INSERT INTO users (user_id, username, password_hash, created_at, disabled)
         VALUES (?, ?, ?, ?, ?)`,
      ).run(
        user.userId,
        user.username,
        user.passwordHash,
        user.createdAt,
        user.disabled ? 1 : 0,
      );
    });
  }

  getUserByUsername(username: string): Promise<UserRecord | null> {
    return this.#call(() => {
      const row = this.#st("SELECT * FROM users WHERE username = ?").get(username);
      return row ? toUser(row) : null;
    });
  }

  getUser(userId: string): Promise<UserRecord | null> {
    return this.#call(() => {
      const row = this.#st("SELECT * FROM users WHERE user_id = ?").get(userId);
      return row ? toUser(row) : null;
    });
  }

  existingUsers(userIds: string[]): Promise<string[]> {
    return this.#call(() => {
      if (userIds.length === 0) return [];
      const rows = this.#st(
        "SELECT user_id FROM users WHERE user_id IN (SELECT value FROM json_each(?))",
      ).all(JSON.stringify(userIds));
      return rows.map((r) => r.user_id as string);
    });
  }

  setUserDisabled(userId: string, disabled: boolean): Promise<void> {
    return this.#call(() => {
      this.#st("UPDATE users SET disabled = ? WHERE user_id = ?").run(disabled ? 1 : 0, userId);
    });
  }

  // ---- refresh tokens ----

  saveRefreshToken(token: RefreshTokenRecord): Promise<void> {
    return this.#call(() => {
      this.#st(
        `INSERT INTO refresh_tokens
           (token_hash, user_id, device, family_id, expires_at, used_at, revoked)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        token.tokenHash,
        token.userId,
        token.device,
        token.familyId,
        token.expiresAt,
        token.usedAt,
        token.revoked ? 1 : 0,
      );
    });
  }

  getRefreshToken(tokenHash: string): Promise<RefreshTokenRecord | null> {
    return this.#call(() => {
      const row = this.#st("SELECT * FROM refresh_tokens WHERE token_hash = ?").get(tokenHash);
      return row ? toRefreshToken(row) : null;
    });
  }

  useRefreshToken(tokenHash: string, at: number): Promise<boolean> {
    return this.#call(() => {
      const { changes } = this.#st(
        `UPDATE refresh_tokens SET used_at = ?
         WHERE token_hash = ? AND used_at IS NULL AND revoked = 0`,
      ).run(at, tokenHash);
      return Number(changes) === 1;
    });
  }

  revokeRefreshFamily(familyId: string): Promise<void> {
    return this.#call(() => {
      this.#st("UPDATE refresh_tokens SET revoked = 1 WHERE family_id = ?").run(familyId);
    });
  }

  // ---- actors: fencing and snapshots ----

  storedEpoch(actorId: string): Promise<number> {
    return this.#call(() => this.#epochOf(actorId));
  }

  #epochOf(actorId: string): number {
    const row = this.#st("SELECT epoch FROM actor_epochs WHERE actor_id = ?").get(actorId);
    return row ? (row.epoch as number) : 0;
  }

  /**
   * Raises the stored epoch to `epoch` unless a higher one is stored: the comparison is the
   * upsert's own WHERE clause. Throws FencedError when rejected. Call inside a transaction.
   */
  #fence(actorId: string, epoch: number): void {
    const accepted = this.#st(
      `INSERT INTO actor_epochs (actor_id, epoch) VALUES (?, ?)
       ON CONFLICT (actor_id) DO UPDATE SET epoch = excluded.epoch
       WHERE actor_epochs.epoch <= excluded.epoch
       RETURNING epoch`,
    ).get(actorId, epoch);
    // Forgotten even when this transaction rolls back: the next append reads the row again.
    this.#counters.forgetEpoch(actorId);
    if (!accepted) throw new FencedError(actorId, epoch, this.#epochOf(actorId));
  }

  fence(actorId: string, epoch: number): Promise<void> {
    return this.#call(() => this.#tx(() => this.#fence(actorId, epoch)));
  }

  saveSnapshot(actorId: string, epoch: number, data: Uint8Array): Promise<void> {
    return this.#call(() =>
      this.#tx(() => {
        this.#fence(actorId, epoch);
        this.#st(
          `INSERT INTO snapshots (actor_id, epoch, data) VALUES (?, ?, ?)
           ON CONFLICT (actor_id) DO UPDATE SET epoch = excluded.epoch, data = excluded.data`,
        ).run(actorId, epoch, data);
      })
    );
  }

  loadSnapshot(actorId: string): Promise<Snapshot | null> {
    return this.#call(() => {
      const row = this.#st("SELECT epoch, data FROM snapshots WHERE actor_id = ?").get(actorId);
      if (!row) return null;
      return { epoch: row.epoch as number, data: new Uint8Array(row.data as Uint8Array) };
    });
  }

  // ---- messages ----

  append(requests: AppendRequest[]): Promise<AppendResult[]> {
    return this.#call(() => {
      if (requests.length === 0) return [];
      let batch: NumberedBatch;
      try {
        batch = this.#tx(() => this.#appendInTx(requests));
      } catch (err) {
        // A failed COMMIT may leave the counters in any state: read them again next time.
        this.#counters.clear();
        throw err;
      }
      this.#counters.remember(batch);
      return batch.results;
    });
  }

  #appendInTx(requests: AppendRequest[]): NumberedBatch {
    // This transaction holds SQLite's write lock: the counters read here cannot move before the
    // batch, numbered in memory (append_numbering.ts, shared with the Postgres store), is
    // written back.
    const state = this.#readBatchState(requests);
    const batch = numberBatch(requests, state);

    // The counter row must exist before a message references its conversation (foreign key).
    const setCseq = this.#st(
      `INSERT INTO conversations (conv, last_cseq) VALUES (?, ?)
       ON CONFLICT (conv) DO UPDATE SET last_cseq = excluded.last_cseq`,
    );
    for (const [conv, cseq] of batch.convs) setCseq.run(conv, cseq);
    const insertMessage = this.#st(
      `INSERT INTO messages (${MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    for (const m of batch.messages) {
      const r = m.request;
      insertMessage.run(r.mid, r.conv, m.cseq, r.from, r.cmid, m.toKind, m.toId, r.ts, m.bodyText);
    }
    const raiseEpoch = this.#st(
      `INSERT INTO actor_epochs (actor_id, epoch) VALUES (?, ?)
       ON CONFLICT (actor_id) DO UPDATE SET epoch = excluded.epoch
       WHERE actor_epochs.epoch < excluded.epoch`,
    );
    for (const [actorId, epoch] of batch.raisedEpochs) raiseEpoch.run(actorId, epoch);
    // Runs and counters are written with one statement each (JSON arrays expanded inside
    // SQLite), sorted by key so neighbouring writes land on the same B-tree pages. Only closed
    // runs are stored in inbox_runs: the open tail lives in user_inbox_seq (schema 7).
    if (batch.closedRuns.length > 0) {
      this.#st(
        `INSERT INTO inbox_runs (user_id, seq_start, conv, cseq_start, count)
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4
         FROM json_each(?)`,
      ).run(JSON.stringify(batch.closedRuns));
    }
    if (batch.counters.length > 0) {
      // `WHERE true` tells SQLite's parser the ON CONFLICT belongs to the INSERT, not the join.
      this.#st(
        `INSERT INTO user_inbox_seq (user_id, last_seq, tail_seq_start, tail_conv, tail_cseq)
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4
         FROM json_each(?) WHERE true
         ON CONFLICT (user_id) DO UPDATE SET
           last_seq = excluded.last_seq,
           tail_seq_start = excluded.tail_seq_start,
           tail_conv = excluded.tail_conv,
           tail_cseq = excluded.tail_cseq`,
      ).run(JSON.stringify(batch.counters));
    }
    return batch;
  }

  /**
   * The counters `requests` may touch and the messages already under their (from, cmid). Counters
   * come from the cache when it has them (valid: this transaction holds the write lock and
   * `data_version` says no other connection committed since the cache was filled).
   */
  #readBatchState(requests: AppendRequest[]): BatchState {
    const cache = this.#counters;
    cache.validate(this.#st("PRAGMA data_version").get()!.data_version as number);
    const state: BatchState = {
      epochs: new Map(),
      cseqs: new Map(),
      inboxes: new Map(),
      prior: new Map(),
    };
    const selectEpoch = this.#st("SELECT epoch FROM actor_epochs WHERE actor_id = ?");
    const selectCseq = this.#st("SELECT last_cseq FROM conversations WHERE conv = ?");
    const selectByCmid = this.#st(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE sender = ? AND cmid = ?`,
    );
    const users = new Set<string>();
    for (const req of requests) {
      if (!state.epochs.has(req.actorId)) {
        let epoch = cache.epochs.get(req.actorId);
        if (epoch === undefined) {
          const row = selectEpoch.get(req.actorId);
          cache.setEpoch(req.actorId, epoch = row ? (row.epoch as number) : 0);
        }
        state.epochs.set(req.actorId, epoch);
      }
      if (!state.cseqs.has(req.conv)) {
        let cseq = cache.cseqs.get(req.conv);
        if (cseq === undefined) {
          const row = selectCseq.get(req.conv);
          cache.setCseq(req.conv, cseq = row ? (row.last_cseq as number) : 0);
        }
        state.cseqs.set(req.conv, cseq);
      }
      const existing = selectByCmid.get(req.from, req.cmid);
      if (existing) {
        let bySender = state.prior.get(req.from);
        if (!bySender) state.prior.set(req.from, bySender = new Map());
        bySender.set(req.cmid, toMessage(existing));
      }
      for (const u of req.recipients) {
        const counter = cache.inboxes.get(u);
        if (counter) state.inboxes.set(u, counter);
        else users.add(u);
      }
    }
    if (users.size === 0) return state;
    // One statement for every counter and tail run of the batch (a 1,000-member group is one
    // call, not one per member).
    const rows = this.#st(
      `SELECT user_id, last_seq, tail_seq_start, tail_conv, tail_cseq FROM user_inbox_seq
       WHERE user_id IN (SELECT value FROM json_each(?))`,
    ).all(JSON.stringify([...users]));
    for (const row of rows) {
      const lastSeq = row.last_seq as number;
      const seqStart = row.tail_seq_start as number;
      const conv = row.tail_conv as string;
      // tail_conv '' is "no run to extend"; within a run cseq - seq is constant, so the tail's
      // first cseq follows from its last.
      state.inboxes.set(row.user_id as string, {
        lastSeq,
        tail: conv === ""
          ? null
          : { seqStart, conv, cseqStart: (row.tail_cseq as number) - (lastSeq - seqStart) },
      });
    }
    // A user without a row counts as new (seq 0, no run): the same as a cached empty counter.
    for (const u of users) {
      let counter = state.inboxes.get(u);
      if (!counter) state.inboxes.set(u, counter = { lastSeq: 0, tail: null });
      cache.setInbox(u, counter);
    }
    return state;
  }

  findByCmid(from: string, cmid: string): Promise<StoredMessage | null> {
    return this.#call(() => {
      const row = this.#st(
        `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE sender = ? AND cmid = ?`,
      ).get(from, cmid);
      return row ? toMessage(row) : null;
    });
  }

  readInbox(userId: string, after: number, limit: number): Promise<InboxEntry[]> {
    return this.#call(() => {
      if (limit <= 0) return [];
      // The next positions as clipped runs, expanded and fetched by the (conv, cseq) index in one
      // statement, hidden and missing messages left out; again from where that ended while
      // entries are missing. At least INBOX_SLICE positions per round, so many hidden entries
      // cost few rounds; the sort is bounded by the positions covered.
      const fetch = this.#st(
        `SELECT (s.value ->> 3) + m.cseq AS seq, ${
          MESSAGE_COLUMNS.split(", ").map((c) => `m.${c}`).join(", ")
        }
         FROM json_each(?) s
         JOIN messages m ON m.conv = s.value ->> 0
           AND m.cseq >= s.value ->> 1 AND m.cseq < (s.value ->> 1) + (s.value ->> 2)
         WHERE NOT EXISTS (SELECT 1 FROM message_hidden h WHERE h.user_id = ? AND h.mid = m.mid)
         ORDER BY seq`,
      );
      const out: InboxEntry[] = [];
      let from = after;
      while (out.length < limit) {
        const want = Math.max(limit - out.length, INBOX_SLICE);
        const { slices, covered, lastSeq } = this.#inboxSlices(userId, from, want);
        if (covered === 0) break;
        for (const row of fetch.all(JSON.stringify(slices), userId)) {
          if (out.length === limit) break;
          out.push({ seq: row.seq as number, message: toMessage(row) });
        }
        if (covered < want) break; // the inbox ends here
        from = lastSeq;
      }
      return out;
    });
  }

  /**
   * The first `positions` inbox positions of `userId` after seq `after`, as clipped runs
   * `[conv, first cseq, count, seq - cseq]` in seq order (fewer positions at the end of the
   * inbox), with how many they cover and the last seq covered.
   */
  #inboxSlices(
    userId: string,
    after: number,
    positions: number,
  ): { slices: [string, number, number, number][]; covered: number; lastSeq: number } {
    const slices: [string, number, number, number][] = [];
    let covered = 0;
    let lastSeq = after;
    const take = (seqStart: number, conv: string, cseqStart: number, count: number) => {
      const skip = Math.max(0, after + 1 - seqStart);
      const n = Math.min(count - skip, positions - covered);
      if (n <= 0) return;
      slices.push([conv, cseqStart + skip, n, seqStart - cseqStart]);
      covered += n;
      lastSeq = seqStart + skip + n - 1;
    };
    // The closed runs first (at most `positions`: each holds at least one position)...
    for (const r of this.#st(`${RUNS_FROM} LIMIT ?3`).all(userId, after, positions)) {
      take(r.seq_start as number, r.conv as string, r.cseq_start as number, r.count as number);
      if (covered === positions) return { slices, covered, lastSeq };
    }
    // ...then the open tail run, which follows every closed one.
    const tail = this.#st(
      "SELECT last_seq, tail_seq_start, tail_conv, tail_cseq FROM user_inbox_seq WHERE user_id = ?",
    ).get(userId);
    if (tail && tail.tail_conv !== "") {
      const seqStart = tail.tail_seq_start as number;
      const count = (tail.last_seq as number) - seqStart + 1;
      take(seqStart, tail.tail_conv as string, (tail.tail_cseq as number) - count + 1, count);
    }
    return { slices, covered, lastSeq };
  }

  latestSeq(userId: string): Promise<number> {
    return this.#call(() => {
      const row = this.#st("SELECT last_seq FROM user_inbox_seq WHERE user_id = ?").get(userId);
      return row ? (row.last_seq as number) : 0;
    });
  }

  history(conv: string, before: number | null, limit: number): Promise<StoredMessage[]> {
    return this.#call(() => {
      if (limit <= 0) return [];
      const rows = this.#st(
        `SELECT ${MESSAGE_COLUMNS} FROM messages
         WHERE conv = ? AND cseq < ?
         ORDER BY cseq DESC
         LIMIT ?`,
      ).all(conv, before ?? Number.MAX_SAFE_INTEGER, limit);
      return rows.map(toMessage);
    });
  }

  latestCseq(conv: string): Promise<number> {
    return this.#call(() => {
      const row = this.#st("SELECT last_cseq FROM conversations WHERE conv = ?").get(conv);
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
    return this.#call(() =>
      this.#tx(() => {
        this.#fence(actorId, epoch);
        this.#st(
          `INSERT INTO acks (user_id, device, seq) VALUES (?, ?, ?)
           ON CONFLICT (user_id, device) DO UPDATE SET seq = excluded.seq
           WHERE acks.seq < excluded.seq`,
        ).run(userId, device, seq);
      })
    );
  }

  saveAcks(batch: Parameters<Store["saveAcks"]>[0]): ReturnType<Store["saveAcks"]> {
    if (batch.length === 0) return Promise.resolve([]);
    return this.#call(() =>
      this.#tx(() => {
        const upsert = this.#st(
          `INSERT INTO acks (user_id, device, seq) VALUES (?, ?, ?)
           ON CONFLICT (user_id, device) DO UPDATE SET seq = excluded.seq
           WHERE acks.seq < excluded.seq`,
        );
        // Each actor is fenced once, with its highest epoch in the batch; entries of a lower
        // epoch of the same actor are stale either way.
        const highest = new Map<string, number>();
        for (const w of batch) {
          highest.set(w.actorId, Math.max(highest.get(w.actorId) ?? w.epoch, w.epoch));
        }
        // Read first: the epoch is written only when it rises (rarely: after an activation), so
        // a batch of acks from a thousand users does not also rewrite a thousand epoch rows. This
        // transaction holds the write lock, so the epoch read cannot change before the writes.
        const accepted = new Set<string>();
        for (const [actorId, epoch] of highest) {
          const stored = this.#epochOf(actorId);
          if (epoch < stored) continue;
          if (epoch > stored) this.#fence(actorId, epoch);
          accepted.add(actorId);
        }
        const results: ("ok" | "fenced")[] = new Array(batch.length);
        // Written in key order: neighbouring rows share B-tree pages.
        const order = batch.map((_, i) => i).sort((a, b) => {
          const x = batch[a], y = batch[b];
          return x.userId < y.userId
            ? -1
            : x.userId > y.userId
            ? 1
            : x.device < y.device
            ? -1
            : x.device > y.device
            ? 1
            : a - b;
        });
        for (const i of order) {
          const w = batch[i];
          if (!accepted.has(w.actorId) || w.epoch !== highest.get(w.actorId)) {
            results[i] = "fenced";
            continue;
          }
          upsert.run(w.userId, w.device, w.seq);
          results[i] = "ok";
        }
        return results;
      })
    );
  }

  loadAcks(userId: string): Promise<AckCursor[]> {
    return this.#call(() => {
      const rows = this.#st("SELECT device, seq FROM acks WHERE user_id = ? ORDER BY device")
        .all(userId);
      return rows.map((r) => ({ device: r.device as string, seq: r.seq as number }));
    });
  }

  // ---- administration ----

  getUserRole(userId: string): Promise<UserRole | null> {
    return this.#call(() => {
      const row = this.#st("SELECT role FROM user_roles WHERE user_id = ?").get(userId);
      return row ? (row.role as UserRole) : null;
    });
  }

  setUserRole(userId: string, role: UserRole | null): Promise<void> {
    return this.#call(() => {
      if (role === null) {
        this.#st("DELETE FROM user_roles WHERE user_id = ?").run(userId);
        return;
      }
      this.#st(
        `INSERT INTO user_roles (user_id, role) VALUES (?, ?)
         ON CONFLICT (user_id) DO UPDATE SET role = excluded.role`,
      ).run(userId, role);
    });
  }

  revokeUserRefreshTokens(userId: string): Promise<number> {
    return this.#call(() => {
      const r = this.#st(
        "UPDATE refresh_tokens SET revoked = 1 WHERE user_id = ? AND revoked = 0",
      ).run(userId);
      return Number(r.changes);
    });
  }

  deleteUser(userId: string): Promise<boolean> {
    return this.#call(() =>
      this.#tx(() => {
        this.#st("DELETE FROM inbox_runs WHERE user_id = ?").run(userId);
        this.#st("DELETE FROM user_inbox_seq WHERE user_id = ?").run(userId);
        this.#counters.forgetInbox(userId);
        this.#st("DELETE FROM acks WHERE user_id = ?").run(userId);
        // Refresh tokens and the role go with the row (ON DELETE CASCADE).
        return Number(this.#st("DELETE FROM users WHERE user_id = ?").run(userId).changes) > 0;
      })
    );
  }

  appendAudit(entry: AuditEntryInput): Promise<number> {
    return this.#call(() => {
      const r = this.#st(
        `INSERT INTO audit_log (ts, admin_id, action, target, details) VALUES (?, ?, ?, ?, ?)`,
      ).run(entry.ts, entry.adminId, entry.action, entry.target, JSON.stringify(entry.details));
      return Number(r.lastInsertRowid);
    });
  }

  listAudit(before: number | null, limit: number): Promise<AuditEntry[]> {
    return this.#call(() => {
      const rows = this.#st(
        `SELECT * FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?`,
      ).all(before ?? Number.MAX_SAFE_INTEGER, limit);
      return rows.map((r) => ({
        id: r.id as number,
        ts: r.ts as number,
        adminId: r.admin_id as string,
        action: r.action as string,
        target: r.target as string,
        details: JSON.parse(r.details as string),
      }));
    });
  }

  listSnapshotActors(kind: string, after: string | null, limit: number): Promise<string[]> {
    return this.#call(() => {
      // A range on the primary key: `kind/` up to (not including) `kind0` ('0' follows '/').
      const rows = this.#st(
        `SELECT actor_id FROM snapshots WHERE actor_id > ? AND actor_id < ?
         ORDER BY actor_id LIMIT ?`,
      ).all(after ?? `${kind}/`, `${kind}0`, limit);
      return rows.map((r) => r.actor_id as string);
    });
  }

  // ---- message features (media, reactions, edits, hiding, read receipts) ----

  createMedia(media: MediaRecord): Promise<void> {
    return this.#call(() => {
      this.#st(
        `INSERT INTO media (media_id, owner, mime, size, width, height, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        media.mediaId,
        media.owner,
        media.mime,
        media.size,
        media.width,
        media.height,
        media.createdAt,
      );
    });
  }

  getMedia(mediaId: string): Promise<MediaRecord | null> {
    return this.#call(() => {
      const row = this.#st("SELECT * FROM media WHERE media_id = ?").get(mediaId);
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
    return this.#call(() =>
      this.#tx(() => {
        this.#fence(actorId, epoch);
        this.#st(
          `INSERT INTO media_refs (media_id, conv, mid) VALUES (?, ?, ?)
           ON CONFLICT DO NOTHING`,
        ).run(mediaId, conv, mid);
      })
    );
  }

  mediaConversations(mediaId: string): Promise<string[]> {
    return this.#call(() =>
      this.#st("SELECT DISTINCT conv FROM media_refs WHERE media_id = ? ORDER BY conv")
        .all(mediaId)
        .map((r) => r.conv as string)
    );
  }

  getMessage(conv: string, ref: MessageRef): Promise<StoredMessage | null> {
    return this.#call(() => {
      const row = "mid" in ref
        ? this.#st(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE mid = ? AND conv = ?`)
          .get(ref.mid, conv)
        : this.#st(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE conv = ? AND cseq = ?`)
          .get(conv, ref.cseq);
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
    return this.#call(() =>
      this.#tx(() => {
        this.#fence(actorId, epoch);
        const { changes } = this.#st("UPDATE messages SET body = ? WHERE mid = ? AND conv = ?")
          .run(JSON.stringify(body), mid, conv);
        if (Number(changes) === 0) return false;
        if (dropMediaRefs) this.#st("DELETE FROM media_refs WHERE mid = ?").run(mid);
        return true;
      })
    );
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
    return this.#call(() =>
      this.#tx(() => {
        this.#fence(actorId, epoch);
        if (on) {
          this.#st(
            `INSERT INTO message_reactions (mid, emoji, user_id, ts) VALUES (?, ?, ?, ?)
             ON CONFLICT DO NOTHING`,
          ).run(mid, emoji, userId, ts);
        } else {
          this.#st("DELETE FROM message_reactions WHERE mid = ? AND emoji = ? AND user_id = ?")
            .run(mid, emoji, userId);
        }
        return this.#reactions([mid]).get(mid) ?? [];
      })
    );
  }

  /** Reactions of the given messages, aggregated per emoji (ordered by first reaction). */
  #reactions(mids: string[]): Map<string, ReactionSummary[]> {
    if (mids.length === 0) return new Map();
    const rows = this.#st(
      `SELECT mid, emoji, user_id, ts FROM message_reactions
       WHERE mid IN (SELECT value FROM json_each(?))
       ORDER BY mid, ts, user_id`,
    ).all(JSON.stringify(mids));
    return aggregateReactions(rows);
  }

  hideMessage(
    actorId: string,
    epoch: number,
    userId: string,
    conv: string,
    mid: string,
  ): Promise<void> {
    return this.#call(() =>
      this.#tx(() => {
        this.#fence(actorId, epoch);
        this.#st(
          `INSERT INTO message_hidden (user_id, mid, conv) VALUES (?, ?, ?)
           ON CONFLICT DO NOTHING`,
        ).run(userId, mid, conv);
      })
    );
  }

  historyFor(
    userId: string,
    conv: string,
    before: number | null,
    limit: number,
  ): Promise<HistoryMessage[]> {
    return this.#call(() => {
      if (limit <= 0) return [];
      const rows = this.#st(
        `SELECT ${MESSAGE_COLUMNS} FROM messages m
         WHERE conv = ? AND cseq < ?
           AND NOT EXISTS (SELECT 1 FROM message_hidden h WHERE h.user_id = ? AND h.mid = m.mid)
         ORDER BY cseq DESC
         LIMIT ?`,
      ).all(conv, before ?? Number.MAX_SAFE_INTEGER, userId, limit);
      const messages = rows.map(toMessage);
      const reactions = this.#reactions(messages.map((m) => m.mid));
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
    return this.#call(() =>
      this.#tx(() => {
        this.#fence(actorId, epoch);
        this.#st(
          `INSERT INTO read_cursors (conv, user_id, cseq, ts) VALUES (?, ?, ?, ?)
           ON CONFLICT (conv, user_id) DO UPDATE SET cseq = excluded.cseq, ts = excluded.ts
           WHERE read_cursors.cseq < excluded.cseq`,
        ).run(conv, userId, cseq, ts);
        const row = this.#st("SELECT cseq FROM read_cursors WHERE conv = ? AND user_id = ?")
          .get(conv, userId);
        return row!.cseq as number;
      })
    );
  }

  readCursors(conv: string): Promise<ReadCursor[]> {
    return this.#call(() =>
      this.#st("SELECT user_id, cseq, ts FROM read_cursors WHERE conv = ? ORDER BY user_id")
        .all(conv)
        .map((r) => ({ userId: r.user_id as string, cseq: r.cseq as number, ts: r.ts as number }))
    );
  }

  userReadCursors(userId: string, convs: string[]): Promise<Record<string, number>> {
    return this.#call(() => {
      const out: Record<string, number> = {};
      if (convs.length === 0) return out;
      const rows = this.#st(
        `SELECT conv, cseq FROM read_cursors
         WHERE user_id = ? AND conv IN (SELECT value FROM json_each(?))`,
      ).all(userId, JSON.stringify(convs));
      for (const r of rows) out[r.conv as string] = r.cseq as number;
      return out;
    });
  }

  scanInboxConversations(userId: string, after: number, limit: number): Promise<InboxScan> {
    return this.#call(() => {
      if (limit <= 0) return { convs: [], scanned: 0, lastSeq: after };
      // The first `limit` positions after `after`, then their messages grouped by conversation.
      const { slices } = this.#inboxSlices(userId, after, limit);
      if (slices.length === 0) return { convs: [], scanned: 0, lastSeq: after };
      // value: [conv, first cseq, count, seq - cseq]; a position whose message is missing is not
      // counted, as with the old per-entry rows joined to messages.
      const rows = this.#st(
        `SELECT m.conv AS conv, min(m.cseq) AS first_cseq, max(m.cseq) AS last_cseq,
                max(m.cseq + (s.value ->> 3)) AS last_seq, count(*) AS n
         FROM json_each(?) s
         JOIN messages m ON m.conv = s.value ->> 0
           AND m.cseq >= s.value ->> 1 AND m.cseq < (s.value ->> 1) + (s.value ->> 2)
         GROUP BY m.conv
         ORDER BY m.conv`,
      ).all(JSON.stringify(slices));
      return toInboxScan(rows, after);
    });
  }

  messagesAt(refs: { conv: string; cseq: number }[]): Promise<StoredMessage[]> {
    return this.#call(() => {
      if (refs.length === 0) return [];
      const rows = this.#st(
        `SELECT ${MESSAGE_COLUMNS} FROM messages
         WHERE (conv, cseq) IN (
           SELECT json_extract(value, '$.conv'), json_extract(value, '$.cseq')
           FROM json_each(?))`,
      ).all(JSON.stringify(refs));
      return rows.map(toMessage);
    });
  }

  unreadCounts(
    userId: string,
    ranges: { conv: string; after: number; upTo: number }[],
    cap: number,
  ): Promise<Record<string, number>> {
    return this.#call(() => {
      const out: Record<string, number> = {};
      const count = this.#st(
        `SELECT count(*) AS n FROM (
           SELECT 1 FROM messages m
           WHERE m.conv = ? AND m.cseq > ? AND m.cseq <= ? AND m.sender <> ?
             AND NOT EXISTS (
               SELECT 1 FROM message_hidden h WHERE h.user_id = ? AND h.mid = m.mid)
           LIMIT ?)`,
      );
      for (const r of ranges) {
        out[r.conv] = r.upTo <= r.after
          ? 0
          : Number(count.get(r.conv, r.after, r.upTo, userId, userId, cap)!.n);
      }
      return out;
    });
  }

  // ---- social: profiles, user search, follows ----

  getProfiles(userIds: string[]): Promise<Profile[]> {
    return this.#call(() => {
      if (userIds.length === 0) return [];
      const rows = this.#st(
        `SELECT ${PROFILE_COLUMNS} FROM users u LEFT JOIN profiles p ON p.user_id = u.user_id
         WHERE u.user_id IN (SELECT value FROM json_each(?))`,
      ).all(JSON.stringify(userIds));
      return rows.map(toProfile);
    });
  }

  updateProfile(userId: string, patch: ProfilePatch, at: number): Promise<Profile | null> {
    return this.#call(() =>
      this.#tx(() => {
        const exists = this.#st("SELECT 1 FROM users WHERE user_id = ?").get(userId);
        if (!exists) return null;
        const name = patch.displayName ?? null;
        // NULL keeps the stored value; the search key follows the display name.
        this.#st(
          `INSERT INTO profiles (user_id, display_name, display_key, avatar, bio, updated_at)
           VALUES (?1, coalesce(?2, ''), coalesce(?3, ''), coalesce(?4, ''), coalesce(?5, ''), ?6)
           ON CONFLICT (user_id) DO UPDATE SET
             display_name = coalesce(?2, display_name),
             display_key = coalesce(?3, display_key),
             avatar = coalesce(?4, avatar),
             bio = coalesce(?5, bio),
             updated_at = ?6`,
        ).run(
          userId,
          name,
          name === null ? null : searchKey(name),
          patch.avatar ?? null,
          patch.bio ?? null,
          at,
        );
        const row = this.#st(
          `SELECT ${PROFILE_COLUMNS} FROM users u LEFT JOIN profiles p ON p.user_id = u.user_id
           WHERE u.user_id = ?`,
        ).get(userId);
        return row ? toProfile(row) : null;
      })
    );
  }

  searchUsers(prefix: string, after: SearchCursor | null, limit: number): Promise<SearchPage> {
    return this.#call(() => {
      const lo = searchKey(prefix);
      const hi = prefixUpperBound(lo);
      if (hi === null || limit <= 0) return { users: [], next: null };
      // Each stream starts at the cursor (or the prefix) and reads at most limit + 1 rows of
      // one index range; the merged first limit + 1 are then the true next page.
      const ak = after?.key ?? "";
      const aid = after?.userId ?? "";
      const start = compareCodePoints(ak, lo) > 0 ? ak : lo;
      const byName = this.#st(
        `SELECT ${PROFILE_COLUMNS}, u.username AS key FROM users u
         LEFT JOIN profiles p ON p.user_id = u.user_id
         WHERE u.username >= ? AND u.username < ? AND (u.username > ? OR u.user_id > ?)
           AND u.disabled = 0
         ORDER BY u.username, u.user_id
         LIMIT ?`,
      ).all(start, hi, ak, aid, limit + 1);
      const byDisplay = this.#st(
        `SELECT ${PROFILE_COLUMNS}, p.display_key AS key FROM profiles p
         JOIN users u ON u.user_id = p.user_id
         WHERE p.display_key >= ? AND p.display_key < ? AND (p.display_key > ? OR p.user_id > ?)
           AND u.disabled = 0 AND NOT (u.username >= ? AND u.username < ?)
         ORDER BY p.display_key, p.user_id
         LIMIT ?`,
      ).all(start, hi, ak, aid, lo, hi, limit + 1);
      return mergeSearchStreams(
        [...byName, ...byDisplay].map((r) => ({ key: r.key as string, profile: toProfile(r) })),
        limit,
      );
    });
  }

  follow(follower: string, followee: string, at: number): Promise<boolean> {
    return this.#call(() => {
      const { changes } = this.#st(
        `INSERT INTO follows (follower, followee, created_at) VALUES (?, ?, ?)
         ON CONFLICT (follower, followee) DO NOTHING`,
      ).run(follower, followee, at);
      return Number(changes) === 1;
    });
  }

  unfollow(follower: string, followee: string): Promise<boolean> {
    return this.#call(() => {
      const { changes } = this.#st("DELETE FROM follows WHERE follower = ? AND followee = ?")
        .run(follower, followee);
      return Number(changes) === 1;
    });
  }

  followCounts(userId: string): Promise<{ followers: number; following: number }> {
    return this.#call(() => {
      const row = this.#st(
        `SELECT (SELECT count(*) FROM follows WHERE followee = ?1) AS followers,
                (SELECT count(*) FROM follows WHERE follower = ?1) AS following`,
      ).get(userId)!;
      return { followers: Number(row.followers), following: Number(row.following) };
    });
  }

  listFollows(
    userId: string,
    kind: "followers" | "following",
    after: FollowCursor | null,
    limit: number,
  ): Promise<FollowEntry[]> {
    return this.#call(() => {
      if (limit <= 0) return [];
      const [self, other] = kind === "followers"
        ? ["followee", "follower"]
        : ["follower", "followee"];
      const ts = after?.ts ?? Number.MAX_SAFE_INTEGER;
      const id = after?.userId ?? "\u{10FFFF}";
      const rows = this.#st(
        `SELECT ${other} AS user_id, created_at FROM follows
         WHERE ${self} = ? AND (created_at < ? OR (created_at = ? AND ${other} < ?))
         ORDER BY created_at DESC, ${other} DESC
         LIMIT ?`,
      ).all(userId, ts, ts, id, limit);
      return rows.map((r) => ({ userId: r.user_id as string, ts: r.created_at as number }));
    });
  }
}

function toUser(row: Row): UserRecord {
  return {
    userId: row.user_id as string,
    username: row.username as string,
    passwordHash: row.password_hash as string,
    createdAt: row.created_at as number,
    disabled: row.disabled === 1,
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
    revoked: row.revoked === 1,
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
    body: JSON.parse(row.body as string),
    cmid: row.cmid as string,
  };
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

/** Rows `(mid, emoji, user_id)` ordered by mid, then reaction time → summaries per message. */
function aggregateReactions(rows: Row[]): Map<string, ReactionSummary[]> {
  const out = new Map<string, ReactionSummary[]>();
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

function toInboxScan(rows: Row[], after: number): InboxScan {
  let scanned = 0;
  let lastSeq = after;
  const convs = rows.map((r) => {
    scanned += Number(r.n);
    lastSeq = Math.max(lastSeq, r.last_seq as number);
    return {
      conv: r.conv as string,
      firstCseq: r.first_cseq as number,
      lastCseq: r.last_cseq as number,
      lastSeq: r.last_seq as number,
    };
  });
  return { convs, scanned, lastSeq };
}

// SQLite primary result codes that mean the data cannot be reached right now, rather than that
// the request is wrong: BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN.
const UNAVAILABLE_CODES = new Set([5, 6, 7, 8, 10, 13, 14]);
const UNAVAILABLE_MESSAGES = [
  "database is locked",
  "database table is locked",
  "disk I/O error",
  "database or disk is full",
  "unable to open database file",
  "attempt to write a readonly database",
  "out of memory",
];

/** Maps a node:sqlite error to the port's error classes; others are returned unchanged. */
function translateError(err: unknown): unknown {
  if (err instanceof ImError || !(err instanceof Error)) return err;
  const { errcode, code } = err as { errcode?: unknown; code?: unknown };
  if (err.message.includes("UNIQUE constraint failed: users.username")) {
    return new ImError("username_taken", "Username is already taken", { cause: err });
  }
  const unavailable = (typeof errcode === "number" && UNAVAILABLE_CODES.has(errcode & 0xff)) ||
    // Errors of exec() carry only SQLite's message; a closed database is an invalid state.
    UNAVAILABLE_MESSAGES.some((m) => err.message.includes(m)) ||
    (code === "ERR_INVALID_STATE" && err.message.includes("not open"));
  if (unavailable) {
    return new UnavailableError(`SQLite store unavailable: ${err.message}`, { cause: err });
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
