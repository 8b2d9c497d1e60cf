/**
 * The storage port: everything the IM keeps durably.
 *
 * Two adapters implement it: `store_sqlite.ts` (the embedded default, `node:sqlite`, WAL) and
 * `store_postgres.ts` (`npm:postgres`). `store_contract.ts` is the one suite both pass.
 *
 * Guarantees every adapter keeps:
 * - A promise that resolves means the write is committed (durable), never merely buffered.
 * - **Fencing.** The store keeps, per actor id, the highest epoch it has seen. A fenced write
 *   (`fence`, `saveSnapshot`, `append`, `saveAck`, each entry of `saveAcks`) with an epoch lower
 *   than the stored one is rejected ({@link FencedError}, or an `append` / `saveAcks` result of
 *   `fenced`); an accepted write raises the stored epoch to its own. The check is part of the
 *   database write itself.
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

/** One cursor of a {@link Store.saveAcks} batch, fenced by the epoch of the user actor that sent it. */
export interface AckWrite {
  /** The user actor (`user/<userId>`) whose epoch fences the entry. */
  actorId: string;
  epoch: number;
  userId: string;
  device: string;
  seq: number;
}

/**
 * Outcome of one {@link AckWrite}: `ok` (the cursor is at least `seq` now) or `fenced` (the
 * actor's stored epoch is newer: nothing was written for the entry).
 */
export type AckWriteResult = "ok" | "fenced";

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

// ---- message features (media, reactions, edits, hiding, read receipts): types ----

/** An uploaded media item (its bytes live in the blob store under `mediaId`). */
export interface MediaRecord {
  /** `md_` + 20 base32 characters. */
  mediaId: string;
  /** The uploader. */
  owner: string;
  /** The media type sniffed from the bytes (e.g. `image/png`). */
  mime: string;
  /** Bytes. */
  size: number;
  /** Pixel size of images (null for other media). */
  width: number | null;
  height: number | null;
  /** Milliseconds since the epoch. */
  createdAt: number;
}

/** A message of a conversation, by server id or by conversation sequence. */
export type MessageRef = { mid: string } | { cseq: number };

/** The reactions of one emoji on one message: how many, and who (in the order they reacted). */
export interface ReactionSummary {
  emoji: string;
  count: number;
  users: string[];
}

/** A history entry as one user sees it: the message with its reactions. */
export interface HistoryMessage extends StoredMessage {
  /** Per emoji, ordered by the first reaction; empty when none. */
  reactions: ReactionSummary[];
}

/** A user's cumulative read position in a conversation. */
export interface ReadCursor {
  userId: string;
  /** Every message up to this `cseq` is read. */
  cseq: number;
  /** When it last moved, ms since the epoch. */
  ts: number;
}

/** One conversation found in a slice of a user's inbox. */
export interface InboxConversation {
  conv: string;
  /** Lowest and highest `cseq` of the conversation's messages in the slice. */
  firstCseq: number;
  lastCseq: number;
  /** Highest inbox `seq` of those messages. */
  lastSeq: number;
}

/** What {@link Store.scanInboxConversations} found. */
export interface InboxScan {
  convs: InboxConversation[];
  /** Inbox entries read (fewer than the limit: the scan reached the end). */
  scanned: number;
  /** Highest `seq` read (the `after` given when nothing was read). */
  lastSeq: number;
}

/** The storage port. See the module doc for the guarantees. */
export interface Store {
  /** Applies pending versioned migrations (idempotent, safe to call from several nodes). */
  migrate(): Promise<void>;
  /** Releases connections / file handles. */
  close(): Promise<void>;
  /** Which adapter this is (`sqlite` or `postgres`), for logs and metrics. */
  readonly kind: string;
  /**
   * True when a call runs to completion on the caller's thread, commit and fsync included (the
   * in-thread SQLite store): nothing else runs meanwhile, so batching must wait for arrivals.
   */
  readonly blocksThread?: boolean;
  /**
   * True when calls run one at a time, in the order they were made, each to completion (the
   * SQLite stores): a caller may issue the next write before the previous one has answered and
   * still get them committed in that order.
   */
  readonly serialCalls?: boolean;

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
  /**
   * Inbox entries with `seq > after`, ascending, at most `limit`; entries the user hid
   * ({@link Store.hideMessage}) are skipped.
   */
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
  /**
   * Writes many cursors in one transaction (the node's ack writer batches every user actor's
   * cursors into one call): each entry as {@link Store.saveAck} would (forward only, fenced by
   * its actor's epoch). Results in request order. A stale entry is skipped (`fenced`) without
   * failing the others; an accepted one raises its actor's stored epoch to its own. Several
   * entries may name one actor or one device (the highest `seq` of the accepted ones wins).
   */
  saveAcks(batch: AckWrite[]): Promise<AckWriteResult[]>;
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

  // ---- message features (media, reactions, edits, hiding, read receipts) ----
  // Writes made by a conversation actor are fenced by its epoch (FencedError when stale).
  /** Records an uploaded media item. */
  createMedia(media: MediaRecord): Promise<void>;
  getMedia(mediaId: string): Promise<MediaRecord | null>;
  /** Records that message `mid` of `conv` carries `mediaId` (idempotent); fenced. */
  addMediaRef(
    actorId: string,
    epoch: number,
    mediaId: string,
    conv: string,
    mid: string,
  ): Promise<void>;
  /** The conversations a media item was sent in (by a message still carrying it). */
  mediaConversations(mediaId: string): Promise<string[]>;
  /** One message of `conv`, or null (a message of another conversation is never returned). */
  getMessage(conv: string, ref: MessageRef): Promise<StoredMessage | null>;
  /**
   * Replaces the body of message `mid` of `conv` (edit, recall); with `dropMediaRefs` also
   * forgets which media it carried, in the same transaction. Fenced. Resolves false when there
   * is no such message.
   */
  updateMessageBody(
    actorId: string,
    epoch: number,
    conv: string,
    mid: string,
    body: Record<string, unknown>,
    dropMediaRefs?: boolean,
  ): Promise<boolean>;
  /**
   * Adds (`on`) or removes `userId`'s reaction `emoji` on message `mid` (idempotent both ways)
   * and resolves the message's reactions after the change. Fenced.
   */
  setReaction(
    actorId: string,
    epoch: number,
    mid: string,
    userId: string,
    emoji: string,
    on: boolean,
    ts: number,
  ): Promise<ReactionSummary[]>;
  /**
   * Hides message `mid` of `conv` from `userId` only ("delete for me", idempotent): it leaves
   * that user's `historyFor` and `readInbox` (its inbox `seq` is skipped, never reused). Fenced.
   */
  hideMessage(
    actorId: string,
    epoch: number,
    userId: string,
    conv: string,
    mid: string,
  ): Promise<void>;
  /** {@link Store.history} as `userId` sees it: without messages they hid, with reactions. */
  historyFor(
    userId: string,
    conv: string,
    before: number | null,
    limit: number,
  ): Promise<HistoryMessage[]>;
  /**
   * Moves `userId`'s read cursor in `conv` forward to `cseq` (never back) and resolves the
   * cursor after the call. Fenced.
   */
  saveReadCursor(
    actorId: string,
    epoch: number,
    conv: string,
    userId: string,
    cseq: number,
    ts: number,
  ): Promise<number>;
  /** Every read cursor of a conversation. */
  readCursors(conv: string): Promise<ReadCursor[]>;
  /** `userId`'s read cursor in each of `convs` that has one. */
  userReadCursors(userId: string, convs: string[]): Promise<Record<string, number>>;
  /**
   * The conversations of `userId`'s inbox entries with `seq > after`, reading at most `limit`
   * entries in `seq` order (incremental: call again from `lastSeq` while `scanned === limit`).
   */
  scanInboxConversations(userId: string, after: number, limit: number): Promise<InboxScan>;
  /** The messages at the given (conv, cseq) positions that exist, in no particular order. */
  messagesAt(refs: { conv: string; cseq: number }[]): Promise<StoredMessage[]>;
  /**
   * Per conversation, how many messages with `after < cseq <= upTo` were sent by someone other
   * than `userId` and not hidden by them, counting at most `cap` per conversation.
   */
  unreadCounts(
    userId: string,
    ranges: { conv: string; after: number; upTo: number }[],
    cap: number,
  ): Promise<Record<string, number>>;
  // ---- social: profiles, user search, follows (migration 2; see "Social" below) ----
  /**
   * The profiles of the given ids that name existing accounts (disabled ones included), in no
   * particular order. An account that never set a profile has empty fields.
   */
  getProfiles(userIds: string[]): Promise<Profile[]>;
  /**
   * Sets the fields `patch` names (others keep their value) and answers the whole profile, or
   * null when the account does not exist. The display name's search key is written with it.
   */
  updateProfile(userId: string, patch: ProfilePatch, at: number): Promise<Profile | null>;
  /**
   * Enabled accounts whose username or display name starts with `prefix` (compared after
   * {@link searchKey}), ordered by the matching key then user id, those after `after`, at most
   * `limit`; `next` is the cursor of the last one when more may follow. Each account appears at
   * most once per search (by its username when both match). Reads only index ranges: the work
   * is bounded by `limit`, not by how many accounts match.
   */
  searchUsers(prefix: string, after: SearchCursor | null, limit: number): Promise<SearchPage>;
  /** Records that `follower` follows `followee`; true when the edge is new. Both must exist. */
  follow(follower: string, followee: string, at: number): Promise<boolean>;
  /** Removes the edge; true when it existed. */
  unfollow(follower: string, followee: string): Promise<boolean>;
  /** How many accounts follow `userId` and how many it follows. */
  followCounts(userId: string): Promise<{ followers: number; following: number }>;
  /**
   * One page of `userId`'s followers (`kind` "followers") or followees ("following"), newest
   * edge first (ties by user id, descending), those strictly after `after`, at most `limit`.
   */
  listFollows(
    userId: string,
    kind: "followers" | "following",
    after: FollowCursor | null,
    limit: number,
  ): Promise<FollowEntry[]>;
}

// ---- Social (profiles, search, follows) ----

/** The public profile of an account. */
export interface Profile {
  userId: string;
  username: string;
  /** 0-64 characters; "" when unset. */
  displayName: string;
  /** An avatar URL or media id; "" when unset. Opaque to the server. */
  avatar: string;
  /** 0-500 characters; "" when unset. */
  bio: string;
}

/** Profile fields to change; an absent field keeps its value, "" clears it. */
export interface ProfilePatch {
  displayName?: string;
  avatar?: string;
  bio?: string;
}

/** Where a user search page ends: the matching key and user id of its last entry. */
export interface SearchCursor {
  key: string;
  userId: string;
}

/** One page of {@link Store.searchUsers}. */
export interface SearchPage {
  users: Profile[];
  /** Pass back as `after` for the next page; null when this was the last page. */
  next: SearchCursor | null;
}

/** One follow edge as seen from one side: the other account and when the edge was made. */
export interface FollowEntry {
  userId: string;
  ts: number;
}

/** Where a follow page ends: the `ts` and user id of its last entry. */
export type FollowCursor = FollowEntry;

/**
 * The search key of a username or display name: NFKC-normalised, lower-cased. Both adapters
 * store display names' keys with it and compare prefixes with it, so a search is a range read.
 */
export function searchKey(text: string): string {
  return text.normalize("NFKC").toLowerCase();
}

/**
 * The smallest string above every string that starts with `prefix` (code point order, which is
 * the byte order of UTF-8 both adapters compare in); null for an empty prefix.
 */
export function prefixUpperBound(prefix: string): string | null {
  const cps = [...prefix];
  if (cps.length === 0) return null;
  let last = cps.pop()!.codePointAt(0)! + 1;
  if (last === 0xd800) last = 0xe000; // surrogates are not characters: skip them
  // Past the last code point: every string with this prefix is below the shorter prefix's bound.
  if (last > 0x10ffff) return prefixUpperBound(cps.join(""));
  return cps.join("") + String.fromCodePoint(last);
}

/**
 * One search page from the adapters' two ordered streams (by username, by display key), each
 * read up to `limit + 1` entries past the cursor: ordered by (key, userId) in code point order,
 * the first `limit`, and the cursor of the last one when more follow.
 */
export function mergeSearchStreams(
  entries: { key: string; profile: Profile }[],
  limit: number,
): SearchPage {
  const all = [...entries].sort((x, y) =>
    compareCodePoints(x.key, y.key) || compareCodePoints(x.profile.userId, y.profile.userId)
  );
  const page = all.slice(0, limit);
  const last = page.at(-1);
  return {
    users: page.map((e) => e.profile),
    next: all.length > limit && last ? { key: last.key, userId: last.profile.userId } : null,
  };
}

/** Code point order: the byte order of UTF-8, which SQLite (BINARY) and Postgres ("C") use. */
export function compareCodePoints(a: string, b: string): number {
  if (a === b) return 0;
  const x = [...a], y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i].codePointAt(0)! - y[i].codePointAt(0)!;
  }
  return x.length - y.length;
}
