/**
 * Versioned schema of the SQLite store.
 *
 * Versions are applied in ascending order, each exactly once, each in its own transaction that
 * also records it in `schema_migrations`. A version, once released, never changes: schema changes
 * go into a new version appended to {@link SQLITE_MIGRATIONS}.
 *
 * @module
 */

/** One schema version: `sql` may hold several statements. */
export interface SqliteMigration {
  version: number;
  description: string;
  sql: string;
}

/** Every schema version, ascending. */
export const SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
  {
    version: 1,
    description: "accounts, refresh tokens, fencing epochs, snapshots, messages, inboxes, acks",
    // STRICT tables make SQLite reject values of the wrong type instead of storing them silently.
    // WITHOUT ROWID clusters the small hot tables by their key, so an inbox page is one range read.
    sql: `
      CREATE TABLE users (
        user_id TEXT PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0
      ) STRICT;

      CREATE TABLE refresh_tokens (
        token_hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
        device TEXT NOT NULL,
        family_id TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER,
        revoked INTEGER NOT NULL DEFAULT 0
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
      CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

      CREATE TABLE actor_epochs (
        actor_id TEXT PRIMARY KEY,
        epoch INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE snapshots (
        actor_id TEXT PRIMARY KEY,
        epoch INTEGER NOT NULL,
        data BLOB NOT NULL
      ) STRICT;

      CREATE TABLE conversations (
        conv TEXT PRIMARY KEY,
        last_cseq INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE messages (
        mid TEXT PRIMARY KEY,
        conv TEXT NOT NULL REFERENCES conversations (conv),
        cseq INTEGER NOT NULL,
        sender TEXT NOT NULL,
        cmid TEXT NOT NULL,
        to_kind TEXT NOT NULL CHECK (to_kind IN ('user', 'group')),
        to_id TEXT NOT NULL,
        ts INTEGER NOT NULL,
        body TEXT NOT NULL,
        UNIQUE (conv, cseq),
        UNIQUE (sender, cmid)
      ) STRICT;

      CREATE TABLE user_inbox_seq (
        user_id TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE inbox (
        user_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        mid TEXT NOT NULL REFERENCES messages (mid),
        PRIMARY KEY (user_id, seq)
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE acks (
        user_id TEXT NOT NULL,
        device TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (user_id, device)
      ) STRICT, WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    description: "social: profiles (display name, avatar, bio, search key) and follows",
    // Profiles live beside `users` (no ALTER of a released table); a user search reads the
    // username index and the display-key index as two ranges. Both tables go with their account.
    sql: `
      CREATE TABLE profiles (
        user_id TEXT PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
        display_name TEXT NOT NULL DEFAULT '',
        display_key TEXT NOT NULL DEFAULT '',
        avatar TEXT NOT NULL DEFAULT '',
        bio TEXT NOT NULL DEFAULT '',
        updated_at INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX profiles_display_key ON profiles (display_key, user_id);

      CREATE TABLE follows (
        follower TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
        followee TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (follower, followee)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX follows_followee ON follows (followee, created_at, follower);
      CREATE INDEX follows_follower ON follows (follower, created_at, followee);
    `,
  },
  {
    version: 3,
    description:
      "message features: media, media references, reactions, hidden messages, read cursors",
    sql: `
      CREATE TABLE media (
        media_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        mime TEXT NOT NULL,
        size INTEGER NOT NULL,
        width INTEGER,
        height INTEGER,
        created_at INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;

      -- Which conversation (and message) carries a media item: who may download it.
      CREATE TABLE media_refs (
        media_id TEXT NOT NULL,
        conv TEXT NOT NULL,
        mid TEXT NOT NULL,
        PRIMARY KEY (media_id, conv, mid)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX media_refs_mid ON media_refs (mid);

      CREATE TABLE message_reactions (
        mid TEXT NOT NULL,
        emoji TEXT NOT NULL,
        user_id TEXT NOT NULL,
        ts INTEGER NOT NULL,
        PRIMARY KEY (mid, emoji, user_id)
      ) STRICT, WITHOUT ROWID;

      -- "Delete for me": per user, never shown to that user again.
      CREATE TABLE message_hidden (
        user_id TEXT NOT NULL,
        mid TEXT NOT NULL,
        conv TEXT NOT NULL,
        PRIMARY KEY (user_id, mid)
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE read_cursors (
        conv TEXT NOT NULL,
        user_id TEXT NOT NULL,
        cseq INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        PRIMARY KEY (conv, user_id)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX read_cursors_user ON read_cursors (user_id, conv);
    `,
  },
  {
    version: 5,
    description: "administration: account roles and the audit log",
    sql: `
      CREATE TABLE user_roles (
        user_id TEXT PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
        role TEXT NOT NULL
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts INTEGER NOT NULL,
        admin_id TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        details TEXT NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 6,
    description:
      "inboxes as runs: inbox_runs replaces the per-recipient inbox rows; user_inbox_seq keeps the tail run",
    // A run maps the user's seqs seq_start .. seq_start+count-1 to the messages of `conv` with
    // cseq cseq_start .. cseq_start+count-1. A group message then updates each member's tail run
    // (a few compact pages) instead of inserting one row per member (one page per member). The
    // tail columns let append extend a run without reading it: tail_cseq is the cseq at
    // last_seq, tail_conv '' means "no run to extend" (no conversation id is empty).
    // The conversion is gaps-and-islands: an entry starts a new run unless the previous entry of
    // the same user is seq - 1, the same conversation and cseq - 1. `inbox` has no other reader.
    sql: `
      CREATE TABLE inbox_runs (
        user_id TEXT NOT NULL,
        seq_start INTEGER NOT NULL,
        conv TEXT NOT NULL,
        cseq_start INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (user_id, seq_start)
      ) STRICT, WITHOUT ROWID;

      ALTER TABLE user_inbox_seq ADD COLUMN tail_seq_start INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE user_inbox_seq ADD COLUMN tail_conv TEXT NOT NULL DEFAULT '';
      ALTER TABLE user_inbox_seq ADD COLUMN tail_cseq INTEGER NOT NULL DEFAULT 0;

      INSERT INTO inbox_runs (user_id, seq_start, conv, cseq_start, count)
      WITH entries AS (
        SELECT i.user_id, i.seq, m.conv, m.cseq,
               lag(i.seq) OVER w AS prev_seq, lag(m.conv) OVER w AS prev_conv,
               lag(m.cseq) OVER w AS prev_cseq
        FROM inbox i JOIN messages m ON m.mid = i.mid
        WINDOW w AS (PARTITION BY i.user_id ORDER BY i.seq)
      ),
      islands AS (
        SELECT user_id, seq, conv, cseq,
               sum(CASE WHEN prev_seq = seq - 1 AND prev_conv = conv AND prev_cseq = cseq - 1
                        THEN 0 ELSE 1 END)
                 OVER (PARTITION BY user_id ORDER BY seq ROWS UNBOUNDED PRECEDING) AS island
        FROM entries
      )
      SELECT user_id, min(seq), min(conv), min(cseq), count(*)
      FROM islands GROUP BY user_id, island;

      -- The tail is the run ending at last_seq; without one (no entries) nothing is extended.
      UPDATE user_inbox_seq SET
        tail_seq_start = r.seq_start,
        tail_conv = r.conv,
        tail_cseq = r.cseq_start + r.count - 1
      FROM inbox_runs r
      WHERE r.user_id = user_inbox_seq.user_id
        AND r.seq_start + r.count - 1 = user_inbox_seq.last_seq;

      DROP TABLE inbox;
    `,
  },
  {
    version: 7,
    description: "the open tail run of each inbox lives only in user_inbox_seq",
    // Extending a run then writes the counter row alone, not the counter row and the run: one row
    // per member for a group message instead of two. Version 6 stored the tail in both places
    // (with its count kept current), so dropping its inbox_runs copy loses nothing.
    sql: `
      DELETE FROM inbox_runs
      WHERE EXISTS (
        SELECT 1 FROM user_inbox_seq s
        WHERE s.user_id = inbox_runs.user_id AND s.tail_conv <> ''
          AND s.tail_seq_start = inbox_runs.seq_start
      );
    `,
  },
];
