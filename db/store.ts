/**
 * The storage port: everything the IM keeps durably.
 *
 * Two adapters implement it: `store_sqlite.ts` (the embedded default, `node:sqlite`, WAL) and
 * `store_postgres.ts` (`npm:postgres`). `store_contract.ts` is the one suite both pass.
 *
 * Guarantees every adapter keeps:
 * - A promise that resolves means the write is committed (durable), never merely buffered.
 * - **Fencing.** The store keeps, per actor id, the highest epoch it has seen. A fenced write
 *   (`fence`, `saveSnapshot`, `append`, `saveAck`) with an epoch lower than the stored one is
 *   rejected ({@link FencedError} or an `append` result of status `fenced`); an accepted write
 *   raises the stored epoch to its own. The check is part of the database write itself.
 * - `append` is one transaction for the whole batch (group commit). Per request it:
 *   de-duplicates by `(from, cmid)` with no time window; assigns the conversation's next `cseq`
 *   (from 1, +1, gapless); assigns every recipient's next inbox `seq` (per user, from 1, +1,
 *   gapless, never reused). A fenced request is skipped without failing the others.
 * - A dependency failure surfaces as {@link UnavailableError}; nothing half-written is visible.
 *
 * @module
 */
import type { FencedError, UnavailableError } from "../actors/errors.ts";

export type { FencedError, UnavailableError };

/** A registered account. */
export interface UserRecord {
  userId: string;
  /** Unique, 3–32 chars of `a-z 0-9 _ . -`. */
  username: string;
  /** Encoded salted KDF output (format owned by gateway/password.ts). */
  passwordHash: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
  /** Disabled accounts cannot log in and their tokens are refused. */
  disabled: boolean;
}

/** A refresh token, stored only as the SHA-256 hash of its secret. */
export interface RefreshTokenRecord {
  /** Hex SHA-256 of the token secret. */
  tokenHash: string;
  userId: string;
  device: string;
  /** All tokens rotated from one login share a family; reuse of a rotated one revokes it. */
  familyId: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  /** Set when rotated (used once). */
  usedAt: number | null;
  revoked: boolean;
}

/** The addressee of a message, as the sender gave it. */
export type Recipient = { user: string } | { group: string };

/** A stored message, as history returns it (msg-shaped, without the per-user `seq`). */
export interface StoredMessage {
  /** Server message id, unique. */
  mid: string;
  /** Conversation id: `d:<userA>:<userB>` (sorted) for a direct chat, `g:<groupId>` for a group. */
  conv: string;
  /** Conversation sequence, from 1, gapless. */
  cseq: number;
  /** Sender user id (set by the server). */
  from: string;
  to: Recipient;
  /** Server time, milliseconds since the epoch. */
  ts: number;
  /** The message body (a JSON-compatible map, e.g. `{type: "text", text}`). */
  body: Record<string, unknown>;
  /** The sender's client message id. */
  cmid: string;
}

/** One inbox entry: a message as it entered one user's inbox. */
export interface InboxEntry {
  seq: number;
  message: StoredMessage;
}

/** One message to store, with the fencing epoch of the actor that writes it. */
export interface AppendRequest {
  /** Writer actor id, e.g. `group/g_1` or `direct/u_a:u_b`. */
  actorId: string;
  epoch: number;
  /** Pre-generated server message id (kept only if the message is new). */
  mid: string;
  conv: string;
  from: string;
  to: Recipient;
  cmid: string;
  ts: number;
  body: Record<string, unknown>;
  /** User ids whose inbox receives the message (the sender included); duplicates ignored. */
  recipients: string[];
}

/** Outcome of one {@link AppendRequest}. */
export type AppendResult =
  | {
    status: "stored";
    message: StoredMessage;
    /** Inbox `seq` assigned per recipient user id. */
    seqs: Record<string, number>;
  }
  /** `(from, cmid)` was stored before: the earlier message, unchanged; nothing written. */
  | { status: "duplicate"; message: StoredMessage }
  /** The actor's epoch is stale: nothing written. */
  | { status: "fenced"; storedEpoch: number };

/** A device's cumulative ack cursor. */
export interface AckCursor {
  device: string;
  seq: number;
}

/** A persisted actor snapshot. */
export interface Snapshot {
  epoch: number;
  data: Uint8Array;
}

/** A role an account may hold (the admin console and `/v1/admin/...` need `admin`). */
export type UserRole = "admin";

/** An audit log entry as an admin action writes it. */
export interface AuditEntryInput {
  /** Milliseconds since the epoch. */
  ts: number;
  /** The admin's user id. */
  adminId: string;
  /** What was done, e.g. `user.logout`, `config.update`. */
  action: string;
  /** What it was done to (a user id, group id, `cluster`), or "" when nothing in particular. */
  target: string;
  /** Parameters of the action (JSON-compatible; never a token, password or message text). */
  details: Record<string, unknown>;
}

/** A stored audit log entry. */
export interface AuditEntry extends AuditEntryInput {
  /** Ascending in insertion order, unique. */
  id: number;
}

/** The storage port. See the module doc for the guarantees. */
export interface Store {
  /** Applies pending versioned migrations (idempotent, safe to call from several nodes). */
  migrate(): Promise<void>;
  /** Releases connections / file handles. */
  close(): Promise<void>;
  /** Which adapter this is (`sqlite` or `postgres`), for logs and metrics. */
  readonly kind: string;

  // ---- accounts ----
  /** Creates an account. Rejects with ImError code `username_taken` when the name exists. */
  createUser(user: UserRecord): Promise<void>;
  getUserByUsername(username: string): Promise<UserRecord | null>;
  getUser(userId: string): Promise<UserRecord | null>;
  /** Of the given ids, those that name existing accounts. */
  existingUsers(userIds: string[]): Promise<string[]>;
  setUserDisabled(userId: string, disabled: boolean): Promise<void>;

  // ---- refresh tokens ----
  saveRefreshToken(token: RefreshTokenRecord): Promise<void>;
  getRefreshToken(tokenHash: string): Promise<RefreshTokenRecord | null>;
  /**
   * Marks the token used, atomically: resolves `true` for exactly one caller, `false` when it was
   * already used or revoked (a reuse).
   */
  useRefreshToken(tokenHash: string, at: number): Promise<boolean>;
  /** Revokes every token of a family (login). */
  revokeRefreshFamily(familyId: string): Promise<void>;

  // ---- actors: fencing and snapshots ----
  /** The highest epoch seen for the actor (0 when none). */
  storedEpoch(actorId: string): Promise<number>;
  /**
   * Raises the actor's stored epoch to `epoch`. Rejects with FencedError when the store already
   * holds a higher one. Called on activation, before the actor's first write.
   */
  fence(actorId: string, epoch: number): Promise<void>;
  /** Replaces the actor's snapshot; fenced. */
  saveSnapshot(actorId: string, epoch: number, data: Uint8Array): Promise<void>;
  loadSnapshot(actorId: string): Promise<Snapshot | null>;

  // ---- messages ----
  /** Stores a batch in one transaction; results in request order. See the module doc. */
  append(requests: AppendRequest[]): Promise<AppendResult[]>;
  /** The message stored for `(from, cmid)`, if any. */
  findByCmid(from: string, cmid: string): Promise<StoredMessage | null>;
  /** Inbox entries with `seq > after`, ascending, at most `limit`. */
  readInbox(userId: string, after: number, limit: number): Promise<InboxEntry[]>;
  /** The user's latest inbox seq (0 when empty). */
  latestSeq(userId: string): Promise<number>;
  /** Messages of a conversation with `cseq < before` (all when null), newest first, at most `limit`. */
  history(conv: string, before: number | null, limit: number): Promise<StoredMessage[]>;
  /** The conversation's latest cseq (0 when none). */
  latestCseq(conv: string): Promise<number>;

  // ---- ack cursors ----
  /** Moves a device's cursor forward (never back); fenced by the user actor's epoch. */
  saveAck(
    actorId: string,
    epoch: number,
    userId: string,
    device: string,
    seq: number,
  ): Promise<void>;
  loadAcks(userId: string): Promise<AckCursor[]>;

  // ---- administration ----
  /** The role of an account, or null for an ordinary user. */
  getUserRole(userId: string): Promise<UserRole | null>;
  /** Grants `role` to an existing account (replacing its role) or, with null, removes it. */
  setUserRole(userId: string, role: UserRole | null): Promise<void>;
  /** Revokes every refresh token of an account (forced logout); resolves how many were live. */
  revokeUserRefreshTokens(userId: string): Promise<number>;
  /**
   * Deletes an account: its row (so the username is free again), refresh tokens, role, ack
   * cursors and inbox entries. Messages it sent stay in their conversations. Resolves false when
   * there was no such account.
   */
  deleteUser(userId: string): Promise<boolean>;
  /** Appends an audit log entry (committed when the promise resolves); resolves its id. */
  appendAudit(entry: AuditEntryInput): Promise<number>;
  /** Audit entries with `id < before` (all when null), newest first, at most `limit`. */
  listAudit(before: number | null, limit: number): Promise<AuditEntry[]>;
  /**
   * Ids of the actors of `kind` that have a snapshot (`kind/key`), ascending, those after
   * `after` (paging; null from the start), at most `limit`.
   */
  listSnapshotActors(kind: string, after: string | null, limit: number): Promise<string[]>;
}
