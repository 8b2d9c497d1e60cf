/**
 * Versioned schema of the Postgres store, including the server-side functions that make every
 * fenced write a single statement.
 *
 * Versions are applied in ascending order, each exactly once, each in its own transaction that
 * holds `pg_advisory_xact_lock` (so nodes starting together do not race) and records it in
 * `schema_migrations`. A released version never changes: changes go into a new version.
 *
 * @module
 */

/** One schema version: `sql` may hold several statements (run with the simple protocol). */
export interface PostgresMigration {
  version: number;
  description: string;
  sql: string;
}

/** Key of the advisory lock that serialises migrations across nodes. */
export const MIGRATION_LOCK_KEY = 7_346_100_001;

const SCHEMA_V1 = `
  -- Ids compare byte-wise (COLLATE "C"): faster btree comparisons, and the lock order used by
  -- im_append is the same on every node whatever the database's default collation.
  CREATE TABLE users (
    user_id text COLLATE "C" PRIMARY KEY,
    username text COLLATE "C" NOT NULL,
    password_hash text NOT NULL,
    created_at bigint NOT NULL,
    disabled boolean NOT NULL DEFAULT false,
    CONSTRAINT users_username_key UNIQUE (username)
  );

  CREATE TABLE refresh_tokens (
    token_hash text COLLATE "C" PRIMARY KEY,
    user_id text COLLATE "C" NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    device text NOT NULL,
    family_id text COLLATE "C" NOT NULL,
    expires_at bigint NOT NULL,
    used_at bigint,
    revoked boolean NOT NULL DEFAULT false
  );
  CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
  CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

  -- Counter-like tables are updated in place all the time: leave room for HOT updates.
  CREATE TABLE actor_epochs (
    actor_id text COLLATE "C" PRIMARY KEY,
    epoch bigint NOT NULL
  ) WITH (fillfactor = 70);

  CREATE TABLE snapshots (
    actor_id text COLLATE "C" PRIMARY KEY,
    epoch bigint NOT NULL,
    data bytea NOT NULL
  );

  CREATE TABLE conversations (
    conv text COLLATE "C" PRIMARY KEY,
    last_cseq bigint NOT NULL
  ) WITH (fillfactor = 70);

  CREATE TABLE messages (
    mid text COLLATE "C" PRIMARY KEY,
    conv text COLLATE "C" NOT NULL REFERENCES conversations (conv),
    cseq bigint NOT NULL,
    sender text COLLATE "C" NOT NULL,
    cmid text COLLATE "C" NOT NULL,
    to_kind text NOT NULL CHECK (to_kind IN ('user', 'group')),
    to_id text NOT NULL,
    ts bigint NOT NULL,
    -- json keeps the body text exactly as sent (jsonb cannot hold the NUL escape \\u0000).
    body json NOT NULL,
    CONSTRAINT messages_conv_cseq_key UNIQUE (conv, cseq),
    CONSTRAINT messages_sender_cmid_key UNIQUE (sender, cmid)
  );

  CREATE TABLE user_inbox_seq (
    user_id text COLLATE "C" PRIMARY KEY,
    last_seq bigint NOT NULL
  ) WITH (fillfactor = 70);

  -- No foreign key to messages: im_append writes both in one statement, and a per-row RI
  -- trigger would cost more than the insert itself on the hottest table.
  CREATE TABLE inbox (
    user_id text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    mid text COLLATE "C" NOT NULL,
    PRIMARY KEY (user_id, seq)
  );

  CREATE TABLE acks (
    user_id text COLLATE "C" NOT NULL,
    device text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (user_id, device)
  ) WITH (fillfactor = 70);

  -- Raises the actor's epoch to p_epoch unless a higher one is stored, and returns the stored
  -- epoch afterwards: the write was accepted iff the result equals p_epoch. The comparison is
  -- the upsert's own WHERE clause, so there is no window between check and write.
  CREATE FUNCTION im_fence(p_actor text, p_epoch bigint) RETURNS bigint
  LANGUAGE plpgsql AS $fn$
  DECLARE
    v_stored bigint;
  BEGIN
    INSERT INTO actor_epochs AS e (actor_id, epoch) VALUES (p_actor, p_epoch)
    ON CONFLICT (actor_id) DO UPDATE SET epoch = excluded.epoch
    WHERE e.epoch <= excluded.epoch
    RETURNING e.epoch INTO v_stored;
    IF FOUND THEN
      RETURN v_stored;
    END IF;
    -- Rejected: ON CONFLICT has locked the row, so this reads the epoch that fenced us.
    SELECT e.epoch INTO v_stored FROM actor_epochs e WHERE e.actor_id = p_actor;
    RETURN v_stored;
  END
  $fn$;

  CREATE FUNCTION im_save_snapshot(p_actor text, p_epoch bigint, p_data bytea) RETURNS bigint
  LANGUAGE plpgsql AS $fn$
  DECLARE
    v_stored bigint := im_fence(p_actor, p_epoch);
  BEGIN
    IF v_stored > p_epoch THEN
      RETURN v_stored;
    END IF;
    INSERT INTO snapshots AS s (actor_id, epoch, data) VALUES (p_actor, p_epoch, p_data)
    ON CONFLICT (actor_id) DO UPDATE SET epoch = excluded.epoch, data = excluded.data;
    RETURN v_stored;
  END
  $fn$;

  CREATE FUNCTION im_save_ack(
    p_actor text, p_epoch bigint, p_user text, p_device text, p_seq bigint
  ) RETURNS bigint
  LANGUAGE plpgsql AS $fn$
  DECLARE
    v_stored bigint := im_fence(p_actor, p_epoch);
  BEGIN
    IF v_stored > p_epoch THEN
      RETURN v_stored;
    END IF;
    INSERT INTO acks AS a (user_id, device, seq) VALUES (p_user, p_device, p_seq)
    ON CONFLICT (user_id, device) DO UPDATE SET seq = excluded.seq
    WHERE a.seq < excluded.seq;
    RETURN v_stored;
  END
  $fn$;

  -- Stores a batch of requests in the caller's transaction and returns the AppendResults (a
  -- json array in request order). See db/store.ts for the semantics. p_batch is a json array
  -- built by store_postgres.ts: AppendRequest fields plus idx, toKind, toId, recipients
  -- de-duplicated, and the body as its JSON text in bodyText.
  --
  -- Locks: every counter row the batch may touch is locked up front, table by table
  -- (actor_epochs, conversations, user_inbox_seq) and within a table in byte order of the key,
  -- so concurrent batches from different nodes queue instead of deadlocking. The locking reads
  -- also fetch the counters, so the one set-based statement that follows decides fencing and
  -- duplicates, numbers messages and inbox entries with window functions, and writes everything
  -- while touching the large tables only through their unique indexes (lookups, inserts and
  -- ON CONFLICT upserts): its plan cannot degrade into scans as the tables grow.
  --
  -- A (from, cmid) inserted concurrently by a batch that locked a different conversation is
  -- detected by ON CONFLICT and raised as serialization_failure: the whole transaction rolls
  -- back (no gap in any counter) and the client retries, then seeing it as a duplicate.
  --
  -- Bodies travel as JSON text and stay json, never jsonb, never taken apart: valid JSON (and
  -- so a message body) may contain the escape \\u0000, which jsonb and every json accessor
  -- reject. Casting text to json only validates it and keeps the text as given.
  CREATE FUNCTION im_append(p_batch json) RETURNS json
  LANGUAGE plpgsql AS $fn$
  DECLARE
    v_keys text[];
    v_actor_ids text[];
    v_actor_epochs bigint[];
    v_conv_ids text[];
    v_conv_cseqs bigint[];
    v_user_ids text[];
    v_user_seqs bigint[];
    v_results json;
    v_expected bigint;
    v_inserted bigint;
  BEGIN
    v_keys := ARRAY(
      SELECT DISTINCT r."actorId" COLLATE "C" AS k
      FROM json_to_recordset(p_batch) AS r("actorId" text)
      ORDER BY k);
    INSERT INTO actor_epochs (actor_id, epoch)
      SELECT k, 0 FROM unnest(v_keys) k ORDER BY k ON CONFLICT DO NOTHING;
    SELECT array_agg(x.actor_id), array_agg(x.epoch) INTO v_actor_ids, v_actor_epochs
    FROM (SELECT actor_id, epoch FROM actor_epochs WHERE actor_id = ANY (v_keys)
          ORDER BY actor_id FOR UPDATE) x;

    v_keys := ARRAY(
      SELECT DISTINCT r.conv COLLATE "C" AS k
      FROM json_to_recordset(p_batch) AS r(conv text)
      ORDER BY k);
    INSERT INTO conversations (conv, last_cseq)
      SELECT k, 0 FROM unnest(v_keys) k ORDER BY k ON CONFLICT DO NOTHING;
    SELECT array_agg(x.conv), array_agg(x.last_cseq) INTO v_conv_ids, v_conv_cseqs
    FROM (SELECT conv, last_cseq FROM conversations WHERE conv = ANY (v_keys)
          ORDER BY conv FOR UPDATE) x;

    v_keys := ARRAY(
      SELECT DISTINCT u COLLATE "C" AS k
      FROM json_to_recordset(p_batch) AS r(recipients text[]), unnest(r.recipients) u
      ORDER BY k);
    INSERT INTO user_inbox_seq (user_id, last_seq)
      SELECT k, 0 FROM unnest(v_keys) k ORDER BY k ON CONFLICT DO NOTHING;
    SELECT array_agg(x.user_id), array_agg(x.last_seq) INTO v_user_ids, v_user_seqs
    FROM (SELECT user_id, last_seq FROM user_inbox_seq WHERE user_id = ANY (v_keys)
          ORDER BY user_id FOR UPDATE) x;

    WITH req AS MATERIALIZED (
      SELECT r.idx, r."actorId" AS actor_id, r.epoch, r.mid, r.conv, r."from" AS sender,
             r.cmid, r."toKind" AS to_kind, r."toId" AS to_id, r.ts,
             r."bodyText"::json AS body, r.recipients
      FROM json_to_recordset(p_batch) AS r(
        idx int, "actorId" text, epoch bigint, mid text, conv text, "from" text, cmid text,
        "toKind" text, "toId" text, ts bigint, "bodyText" text, recipients text[])
    ),
    -- The epoch each request meets: the stored one, raised by the earlier requests of the
    -- same actor in this batch (a fenced one never raises it, being below the running max).
    checked AS MATERIALIZED (
      SELECT q.*,
             GREATEST(e.epoch, COALESCE(max(q.epoch) OVER (
               PARTITION BY q.actor_id ORDER BY q.idx
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)) AS met_epoch
      FROM req q
      JOIN unnest(v_actor_ids, v_actor_epochs) AS e(actor_id, epoch) ON e.actor_id = q.actor_id
    ),
    accepted AS MATERIALIZED (
      SELECT * FROM checked WHERE epoch >= met_epoch
    ),
    -- One index lookup per request (LATERAL): (from, cmid) stored by an earlier batch.
    prior AS MATERIALIZED (
      SELECT a.idx, m.message
      FROM accepted a
      CROSS JOIN LATERAL (
        SELECT json_build_object(
                 'mid', m.mid, 'conv', m.conv, 'cseq', m.cseq, 'from', m.sender,
                 'to', json_build_object(m.to_kind, m.to_id), 'ts', m.ts, 'body', m.body,
                 'cmid', m.cmid) AS message
        FROM messages m WHERE m.sender = a.sender AND m.cmid = a.cmid
      ) m
    ),
    -- Accepted and not stored before; within the batch the first (from, cmid) wins.
    fresh AS MATERIALIZED (
      SELECT a.*, first_value(a.idx) OVER (PARTITION BY a.sender, a.cmid ORDER BY a.idx)
               AS first_idx
      FROM accepted a
      WHERE NOT EXISTS (SELECT 1 FROM prior p WHERE p.idx = a.idx)
    ),
    news AS MATERIALIZED (
      SELECT f.*, c.last_cseq + row_number() OVER (PARTITION BY f.conv ORDER BY f.idx) AS cseq
      FROM fresh f
      JOIN unnest(v_conv_ids, v_conv_cseqs) AS c(conv, last_cseq) ON c.conv = f.conv
      WHERE f.idx = f.first_idx
    ),
    new_messages AS MATERIALIZED (
      SELECT n.idx, json_build_object(
               'mid', n.mid, 'conv', n.conv, 'cseq', n.cseq, 'from', n.sender,
               'to', json_build_object(n.to_kind, n.to_id), 'ts', n.ts, 'body', n.body,
               'cmid', n.cmid) AS message
      FROM news n
    ),
    ins_messages AS (
      INSERT INTO messages (mid, conv, cseq, sender, cmid, to_kind, to_id, ts, body)
      SELECT mid, conv, cseq, sender, cmid, to_kind, to_id, ts, body FROM news ORDER BY idx
      ON CONFLICT (sender, cmid) DO NOTHING
      RETURNING 1
    ),
    recipients AS MATERIALIZED (
      SELECT n.idx, n.mid, u.user_id
      FROM news n CROSS JOIN LATERAL unnest(n.recipients) AS u(user_id)
    ),
    seqs AS MATERIALIZED (
      SELECT r.idx, r.mid, r.user_id,
             s.last_seq + row_number() OVER (PARTITION BY r.user_id ORDER BY r.idx) AS seq
      FROM recipients r
      JOIN unnest(v_user_ids, v_user_seqs) AS s(user_id, last_seq) ON s.user_id = r.user_id
    ),
    ins_inbox AS (
      INSERT INTO inbox (user_id, seq, mid)
      SELECT user_id, seq, mid FROM seqs ORDER BY user_id, seq
    ),
    seq_maps AS MATERIALIZED (
      SELECT idx, json_object_agg(user_id, seq) AS seqs FROM seqs GROUP BY idx
    ),
    -- Counter write-backs as upserts of rows known to exist: the arbiter index finds each.
    upd_convs AS (
      INSERT INTO conversations AS c (conv, last_cseq)
      SELECT conv, max(cseq) FROM news GROUP BY conv
      ON CONFLICT (conv) DO UPDATE SET last_cseq = excluded.last_cseq
    ),
    upd_users AS (
      INSERT INTO user_inbox_seq AS s (user_id, last_seq)
      SELECT user_id, max(seq) FROM seqs GROUP BY user_id
      ON CONFLICT (user_id) DO UPDATE SET last_seq = excluded.last_seq
    ),
    upd_epochs AS (
      INSERT INTO actor_epochs AS e (actor_id, epoch)
      SELECT actor_id, max(epoch) FROM accepted GROUP BY actor_id
      ON CONFLICT (actor_id) DO UPDATE SET epoch = excluded.epoch
      WHERE e.epoch < excluded.epoch
    ),
    results AS (
      SELECT c.idx, CASE
        WHEN c.epoch < c.met_epoch THEN
          json_build_object('status', 'fenced', 'storedEpoch', c.met_epoch)
        WHEN p.idx IS NOT NULL THEN
          json_build_object('status', 'duplicate', 'message', p.message)
        WHEN own.idx IS NOT NULL THEN
          json_build_object('status', 'stored', 'message', own.message,
                            'seqs', COALESCE(sm.seqs, '{}'::json))
        ELSE
          json_build_object('status', 'duplicate', 'message', first.message)
        END AS result
      FROM checked c
      LEFT JOIN prior p ON p.idx = c.idx
      LEFT JOIN new_messages own ON own.idx = c.idx
      LEFT JOIN seq_maps sm ON sm.idx = c.idx
      LEFT JOIN fresh f ON f.idx = c.idx
      LEFT JOIN new_messages first ON first.idx = f.first_idx
    )
    SELECT COALESCE(json_agg(result ORDER BY idx), '[]'::json),
           (SELECT count(*) FROM news),
           (SELECT count(*) FROM ins_messages)
    INTO v_results, v_expected, v_inserted
    FROM results;

    IF v_inserted <> v_expected THEN
      RAISE EXCEPTION 'a (from, cmid) of this batch was stored concurrently; retry'
        USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN v_results;
  END
  $fn$;
`;

// Version 6: each user's inbox as runs (see the migration's description below). im_append as in
// version 1 up to the stored messages; then each entry's seq, and whether it starts a new run or
// continues the one before it, are found with window functions over the recipients ordered by
// (user_id, idx), and only the closed runs and the counter rows are written.
const IM_APPEND_RUNS = `
  -- Stores a batch of requests in the caller's transaction and returns the AppendResults (a
  -- json array in request order). See db/store.ts for the semantics. p_batch is a json array
  -- built by store_postgres.ts: AppendRequest fields plus idx, toKind, toId, recipients
  -- de-duplicated, and the body as its JSON text in bodyText.
  --
  -- Locks: every counter row the batch may touch is locked up front, table by table
  -- (actor_epochs, conversations, user_inbox_seq) and within a table in byte order of the key,
  -- so concurrent batches from different nodes queue instead of deadlocking. The locking reads
  -- also fetch the counters (and each user's open tail run), so the one set-based statement that
  -- follows decides fencing and duplicates, numbers messages and inbox entries with window
  -- functions, and writes everything while touching the large tables only through their unique
  -- indexes (lookups, inserts and ON CONFLICT upserts): its plan cannot degrade into scans as
  -- the tables grow.
  --
  -- Inbox runs: an entry continues the run before it (the user's previous entry in this batch,
  -- or else the stored tail) when it is the same conversation's next cseq; otherwise it starts a
  -- run, and the run before it, now closed, is inserted into inbox_runs. The user's last run
  -- becomes the tail in user_inbox_seq. A user whose entries all continue the tail costs one
  -- counter row update.
  --
  -- A (from, cmid) inserted concurrently by a batch that locked a different conversation is
  -- detected by ON CONFLICT and raised as serialization_failure: the whole transaction rolls
  -- back (no gap in any counter) and the client retries, then seeing it as a duplicate.
  --
  -- Bodies travel as JSON text and stay json, never jsonb, never taken apart: valid JSON (and
  -- so a message body) may contain the escape \\u0000, which jsonb and every json accessor
  -- reject. Casting text to json only validates it and keeps the text as given.
  CREATE OR REPLACE FUNCTION im_append(p_batch json) RETURNS json
  LANGUAGE plpgsql AS $fn$
  DECLARE
    v_keys text[];
    v_actor_ids text[];
    v_actor_epochs bigint[];
    v_conv_ids text[];
    v_conv_cseqs bigint[];
    v_user_ids text[];
    v_user_seqs bigint[];
    v_tail_starts bigint[];
    v_tail_convs text[];
    v_tail_cseqs bigint[];
    v_results json;
    v_expected bigint;
    v_inserted bigint;
  BEGIN
    v_keys := ARRAY(
      SELECT DISTINCT r."actorId" COLLATE "C" AS k
      FROM json_to_recordset(p_batch) AS r("actorId" text)
      ORDER BY k);
    INSERT INTO actor_epochs (actor_id, epoch)
      SELECT k, 0 FROM unnest(v_keys) k ORDER BY k ON CONFLICT DO NOTHING;
    SELECT array_agg(x.actor_id), array_agg(x.epoch) INTO v_actor_ids, v_actor_epochs
    FROM (SELECT actor_id, epoch FROM actor_epochs WHERE actor_id = ANY (v_keys)
          ORDER BY actor_id FOR UPDATE) x;

    v_keys := ARRAY(
      SELECT DISTINCT r.conv COLLATE "C" AS k
      FROM json_to_recordset(p_batch) AS r(conv text)
      ORDER BY k);
    INSERT INTO conversations (conv, last_cseq)
      SELECT k, 0 FROM unnest(v_keys) k ORDER BY k ON CONFLICT DO NOTHING;
    SELECT array_agg(x.conv), array_agg(x.last_cseq) INTO v_conv_ids, v_conv_cseqs
    FROM (SELECT conv, last_cseq FROM conversations WHERE conv = ANY (v_keys)
          ORDER BY conv FOR UPDATE) x;

    v_keys := ARRAY(
      SELECT DISTINCT u COLLATE "C" AS k
      FROM json_to_recordset(p_batch) AS r(recipients text[]), unnest(r.recipients) u
      ORDER BY k);
    -- A counter row is made with the user's first entry: nearly always every row exists, and
    -- one index probe per row is cheaper than an insert attempt per row.
    IF (SELECT count(*) FROM user_inbox_seq WHERE user_id = ANY (v_keys))
       < cardinality(v_keys) THEN
      INSERT INTO user_inbox_seq (user_id, last_seq)
        SELECT k, 0 FROM unnest(v_keys) k ORDER BY k ON CONFLICT DO NOTHING;
    END IF;
    SELECT array_agg(x.user_id), array_agg(x.last_seq), array_agg(x.tail_seq_start),
           array_agg(x.tail_conv), array_agg(x.tail_cseq)
    INTO v_user_ids, v_user_seqs, v_tail_starts, v_tail_convs, v_tail_cseqs
    FROM (SELECT user_id, last_seq, tail_seq_start, tail_conv, tail_cseq FROM user_inbox_seq
          WHERE user_id = ANY (v_keys) ORDER BY user_id FOR UPDATE) x;

    WITH req AS MATERIALIZED (
      SELECT r.idx, r."actorId" AS actor_id, r.epoch, r.mid, r.conv, r."from" AS sender,
             r.cmid, r."toKind" AS to_kind, r."toId" AS to_id, r.ts,
             r."bodyText"::json AS body, r.recipients
      FROM json_to_recordset(p_batch) AS r(
        idx int, "actorId" text, epoch bigint, mid text, conv text, "from" text, cmid text,
        "toKind" text, "toId" text, ts bigint, "bodyText" text, recipients text[])
    ),
    -- The epoch each request meets: the stored one, raised by the earlier requests of the
    -- same actor in this batch (a fenced one never raises it, being below the running max).
    checked AS MATERIALIZED (
      SELECT q.*,
             GREATEST(e.epoch, COALESCE(max(q.epoch) OVER (
               PARTITION BY q.actor_id ORDER BY q.idx
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)) AS met_epoch
      FROM req q
      JOIN unnest(v_actor_ids, v_actor_epochs) AS e(actor_id, epoch) ON e.actor_id = q.actor_id
    ),
    accepted AS MATERIALIZED (
      SELECT * FROM checked WHERE epoch >= met_epoch
    ),
    -- One index lookup per request (LATERAL): (from, cmid) stored by an earlier batch. LIMIT
    -- keeps the planner from pulling the subquery up into a join: a plan cached while messages
    -- was small (every fresh database) then hashed the batch and scanned all of messages on
    -- every call until autovacuum's next ANALYZE (schema version 9).
    prior AS MATERIALIZED (
      SELECT a.idx, m.message
      FROM accepted a
      CROSS JOIN LATERAL (
        SELECT json_build_object(
                 'mid', m.mid, 'conv', m.conv, 'cseq', m.cseq, 'from', m.sender,
                 'to', json_build_object(m.to_kind, m.to_id), 'ts', m.ts, 'body', m.body,
                 'cmid', m.cmid) AS message
        FROM messages m WHERE m.sender = a.sender AND m.cmid = a.cmid LIMIT 1
      ) m
    ),
    -- Accepted and not stored before; within the batch the first (from, cmid) wins.
    fresh AS MATERIALIZED (
      SELECT a.*, first_value(a.idx) OVER (PARTITION BY a.sender, a.cmid ORDER BY a.idx)
               AS first_idx
      FROM accepted a
      WHERE NOT EXISTS (SELECT 1 FROM prior p WHERE p.idx = a.idx)
    ),
    news AS MATERIALIZED (
      SELECT f.*, c.last_cseq + row_number() OVER (PARTITION BY f.conv ORDER BY f.idx) AS cseq
      FROM fresh f
      JOIN unnest(v_conv_ids, v_conv_cseqs) AS c(conv, last_cseq) ON c.conv = f.conv
      WHERE f.idx = f.first_idx
    ),
    new_messages AS MATERIALIZED (
      SELECT n.idx, json_build_object(
               'mid', n.mid, 'conv', n.conv, 'cseq', n.cseq, 'from', n.sender,
               'to', json_build_object(n.to_kind, n.to_id), 'ts', n.ts, 'body', n.body,
               'cmid', n.cmid) AS message
      FROM news n
    ),
    ins_messages AS (
      INSERT INTO messages (mid, conv, cseq, sender, cmid, to_kind, to_id, ts, body)
      SELECT mid, conv, cseq, sender, cmid, to_kind, to_id, ts, body FROM news ORDER BY idx
      ON CONFLICT (sender, cmid) DO NOTHING
      RETURNING 1
    ),
    recipients AS MATERIALIZED (
      SELECT n.idx, n.conv, n.cseq, u.user_id COLLATE "C" AS user_id
      FROM news n CROSS JOIN LATERAL unnest(n.recipients) AS u(user_id)
    ),
    -- Each entry's seq, and whether it starts a run: it does unless it is the next cseq of the
    -- conversation of the user's previous entry (in this batch, else the stored tail: its
    -- tail_cseq is the cseq at last_seq, and tail_conv '' continues nothing).
    seqs AS MATERIALIZED (
      SELECT r.idx, r.user_id, r.conv, r.cseq,
             s.last_seq + row_number() OVER w AS seq,
             CASE WHEN r.conv = COALESCE(lag(r.conv) OVER w, s.tail_conv)
                   AND r.cseq - 1 = COALESCE(lag(r.cseq) OVER w, s.tail_cseq)
                  THEN 0 ELSE 1 END AS starts,
             s.last_seq AS old_last_seq, s.tail_seq_start, s.tail_conv, s.tail_cseq
      FROM recipients r
      JOIN unnest(v_user_ids, v_user_seqs, v_tail_starts, v_tail_convs, v_tail_cseqs)
        AS s(user_id, last_seq, tail_seq_start, tail_conv, tail_cseq) ON s.user_id = r.user_id
      WINDOW w AS (PARTITION BY r.user_id ORDER BY r.idx)
    ),
    -- The first seq of each entry's run (the latest start so far, else the stored tail's), and
    -- whether the user's next entry starts a run (null: this is the user's last entry).
    runs AS MATERIALIZED (
      SELECT q.*,
             COALESCE(max(CASE WHEN q.starts = 1 THEN q.seq END) OVER w, q.tail_seq_start)
               AS run_start,
             lead(q.starts) OVER w AS next_starts
      FROM seqs q
      WINDOW w AS (PARTITION BY q.user_id ORDER BY q.idx ROWS UNBOUNDED PRECEDING)
    ),
    -- Closed runs: each run followed by a start in this batch, and the stored tail when the
    -- user's first entry starts a run. Within a run cseq - seq is constant.
    ins_runs AS (
      INSERT INTO inbox_runs (user_id, seq_start, conv, cseq_start, count)
      SELECT user_id, run_start, conv, cseq - (seq - run_start), seq - run_start + 1
      FROM runs WHERE next_starts = 1
      UNION ALL
      SELECT user_id, tail_seq_start, tail_conv, tail_cseq - (old_last_seq - tail_seq_start),
             old_last_seq - tail_seq_start + 1
      FROM runs WHERE seq = old_last_seq + 1 AND starts = 1 AND tail_conv <> ''
      ORDER BY 1, 2
    ),
    seq_maps AS MATERIALIZED (
      SELECT idx, json_object_agg(user_id, seq) AS seqs FROM seqs GROUP BY idx
    ),
    -- Counter write-backs as upserts of rows known to exist: the arbiter index finds each.
    upd_convs AS (
      INSERT INTO conversations AS c (conv, last_cseq)
      SELECT conv, max(cseq) FROM news GROUP BY conv
      ON CONFLICT (conv) DO UPDATE SET last_cseq = excluded.last_cseq
    ),
    -- Each user's last entry: its seq is the new last_seq, its run the new tail.
    upd_users AS (
      INSERT INTO user_inbox_seq AS s (user_id, last_seq, tail_seq_start, tail_conv, tail_cseq)
      SELECT user_id, seq, run_start, conv, cseq FROM runs WHERE next_starts IS NULL
      ORDER BY user_id
      ON CONFLICT (user_id) DO UPDATE SET
        last_seq = excluded.last_seq, tail_seq_start = excluded.tail_seq_start,
        tail_conv = excluded.tail_conv, tail_cseq = excluded.tail_cseq
    ),
    upd_epochs AS (
      INSERT INTO actor_epochs AS e (actor_id, epoch)
      SELECT actor_id, max(epoch) FROM accepted GROUP BY actor_id
      ON CONFLICT (actor_id) DO UPDATE SET epoch = excluded.epoch
      WHERE e.epoch < excluded.epoch
    ),
    results AS (
      SELECT c.idx, CASE
        WHEN c.epoch < c.met_epoch THEN
          json_build_object('status', 'fenced', 'storedEpoch', c.met_epoch)
        WHEN p.idx IS NOT NULL THEN
          json_build_object('status', 'duplicate', 'message', p.message)
        WHEN own.idx IS NOT NULL THEN
          json_build_object('status', 'stored', 'message', own.message,
                            'seqs', COALESCE(sm.seqs, '{}'::json))
        ELSE
          json_build_object('status', 'duplicate', 'message', first.message)
        END AS result
      FROM checked c
      LEFT JOIN prior p ON p.idx = c.idx
      LEFT JOIN new_messages own ON own.idx = c.idx
      LEFT JOIN seq_maps sm ON sm.idx = c.idx
      LEFT JOIN fresh f ON f.idx = c.idx
      LEFT JOIN new_messages first ON first.idx = f.first_idx
    )
    SELECT COALESCE(json_agg(result ORDER BY idx), '[]'::json),
           (SELECT count(*) FROM news),
           (SELECT count(*) FROM ins_messages)
    INTO v_results, v_expected, v_inserted
    FROM results;

    IF v_inserted <> v_expected THEN
      RAISE EXCEPTION 'a (from, cmid) of this batch was stored concurrently; retry'
        USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN v_results;
  END
  $fn$;
`;

// Version 7: append in two calls with the numbering in between done by the node (as the SQLite
// store does): see the migration's description below.
const IM_APPEND_TWO_STEP = `
  -- Step 1 of an append (store_postgres.ts, inside its transaction): locks every counter row the
  -- batch may touch, in im_append's order (actor_epochs, conversations, user_inbox_seq; within a
  -- table in byte order of the key), making the missing ones, and returns them with the messages
  -- already stored under the batch's (from, cmid) pairs:
  -- {epochs: [[actor, epoch]], convs: [[conv, last_cseq]],
  --  users: [[user, last_seq, tail_seq_start, tail_conv, tail_cseq]] (as advanced, see below),
  --  prior: [{mid, conv, cseq, sender, cmid, to_kind, to_id, ts, body}]}.
  -- The same order as im_append, so nodes of either version queue behind each other instead of
  -- deadlocking while a cluster is upgraded.
  CREATE FUNCTION im_append_lock(p_actors jsonb, p_convs jsonb, p_users jsonb, p_cmids jsonb)
  RETURNS json
  LANGUAGE plpgsql AS $fn$
  DECLARE
    v_keys text[];
    v_epochs json;
    v_convs json;
    v_users json;
    v_prior json;
  BEGIN
    v_keys := ARRAY(
      SELECT DISTINCT k COLLATE "C" AS k FROM jsonb_array_elements_text(p_actors) k ORDER BY k);
    INSERT INTO actor_epochs (actor_id, epoch)
      SELECT k, 0 FROM unnest(v_keys) k ORDER BY k ON CONFLICT DO NOTHING;
    SELECT json_agg(json_build_array(x.actor_id, x.epoch)) INTO v_epochs
    FROM (SELECT actor_id, epoch FROM actor_epochs WHERE actor_id = ANY (v_keys)
          ORDER BY actor_id FOR UPDATE) x;

    v_keys := ARRAY(
      SELECT DISTINCT k COLLATE "C" AS k FROM jsonb_array_elements_text(p_convs) k ORDER BY k);
    INSERT INTO conversations (conv, last_cseq)
      SELECT k, 0 FROM unnest(v_keys) k ORDER BY k ON CONFLICT DO NOTHING;
    SELECT json_agg(json_build_array(x.conv, x.last_cseq)) INTO v_convs
    FROM (SELECT conv, last_cseq FROM conversations WHERE conv = ANY (v_keys)
          ORDER BY conv FOR UPDATE) x;

    -- Each user's counter row is advanced at once by the entries the node expects to give them
    -- (p_users: [[user, n]], counting every request of the batch as new), and so is its tail's
    -- last cseq (the cseq at last_seq): when the entries extend the user's open run, as for the
    -- members of a group only that group writes to, this is the row's final state and step 2
    -- leaves it alone. The upsert takes the row locks in byte order (its input is sorted) and
    -- makes missing rows; the node takes n off the returned values to get the stored ones.
    WITH advanced AS (
      INSERT INTO user_inbox_seq AS s (user_id, last_seq)
        SELECT (u ->> 0) COLLATE "C", (u ->> 1)::bigint
        FROM jsonb_array_elements(p_users) u ORDER BY 1
      ON CONFLICT (user_id) DO UPDATE SET
        last_seq = s.last_seq + excluded.last_seq,
        tail_cseq = CASE WHEN s.tail_conv = '' THEN s.tail_cseq
                         ELSE s.tail_cseq + excluded.last_seq END
      RETURNING s.user_id, s.last_seq, s.tail_seq_start, s.tail_conv, s.tail_cseq
    )
    SELECT json_agg(json_build_array(a.user_id, a.last_seq, a.tail_seq_start, a.tail_conv,
                                     a.tail_cseq)) INTO v_users
    FROM advanced a;

    -- One index lookup per pair: LIMIT keeps the LATERAL subquery from being pulled up into a
    -- join the planner could run as a scan of messages ((sender, cmid) is unique anyway).
    SELECT json_agg(json_build_object(
             'mid', m.mid, 'conv', m.conv, 'cseq', m.cseq, 'sender', m.sender, 'cmid', m.cmid,
             'to_kind', m.to_kind, 'to_id', m.to_id, 'ts', m.ts, 'body', m.body))
    INTO v_prior
    FROM jsonb_array_elements(p_cmids) p
    CROSS JOIN LATERAL (
      SELECT * FROM messages m WHERE m.sender = p ->> 0 AND m.cmid = p ->> 1 LIMIT 1
    ) m;

    RETURN json_build_object(
      'epochs', COALESCE(v_epochs, '[]'::json), 'convs', COALESCE(v_convs, '[]'::json),
      'users', COALESCE(v_users, '[]'::json), 'prior', COALESCE(v_prior, '[]'::json));
  END
  $fn$;

  -- Step 2: writes what the node numbered, in the same transaction (the rows are still locked).
  -- p_messages: [[mid, conv, cseq, sender, cmid, to_kind, to_id, ts, bodyText]];
  -- p_runs (closed runs): [[user, seq_start, conv, cseq_start, count]];
  -- p_users (the counter rows whose final state is not the advanced one of step 1):
  -- [[user, last_seq, tail_seq_start, tail_conv, tail_cseq]];
  -- p_convs: [[conv, last_cseq]]; p_epochs (raised): [[actor, epoch]].
  -- A (from, cmid) inserted concurrently by a batch that locked a different conversation is
  -- detected by ON CONFLICT and raised as serialization_failure: the whole transaction rolls
  -- back (no gap in any counter) and the call is retried, then seeing it as a duplicate.
  --
  -- The arguments are jsonb, parsed once per call (a json argument is parsed again by every
  -- operator applied to it, and that was an eighth of Postgres's time here). Bodies ride as
  -- strings holding their JSON text and are stored cast to json, never jsonb (see im_append): a
  -- body's \\u0000 escape stays six plain characters of that string, which jsonb accepts.
  CREATE FUNCTION im_append_write(p_messages jsonb, p_runs jsonb, p_users jsonb, p_convs jsonb,
                                   p_epochs jsonb)
  RETURNS void
  LANGUAGE plpgsql AS $fn$
  DECLARE
    v_inserted bigint;
  BEGIN
    WITH ins AS (
      INSERT INTO messages (mid, conv, cseq, sender, cmid, to_kind, to_id, ts, body)
      SELECT r ->> 0, r ->> 1, (r ->> 2)::bigint, r ->> 3, r ->> 4, r ->> 5, r ->> 6,
             (r ->> 7)::bigint, (r ->> 8)::json
      FROM jsonb_array_elements(p_messages) WITH ORDINALITY AS e(r, n) ORDER BY n
      ON CONFLICT (sender, cmid) DO NOTHING
      RETURNING 1
    )
    SELECT count(*) INTO v_inserted FROM ins;
    IF v_inserted <> jsonb_array_length(p_messages) THEN
      RAISE EXCEPTION 'a (from, cmid) of this batch was stored concurrently; retry'
        USING ERRCODE = 'serialization_failure';
    END IF;

    INSERT INTO inbox_runs (user_id, seq_start, conv, cseq_start, count)
      SELECT r ->> 0, (r ->> 1)::bigint, r ->> 2, (r ->> 3)::bigint, (r ->> 4)::bigint
      FROM jsonb_array_elements(p_runs) r;
    -- The node sends the rows sorted by key (neighbouring writes share pages); every row is
    -- locked already, so the order cannot deadlock.
    -- Counter write-backs as upserts of rows known to exist: the arbiter index finds each.
    INSERT INTO conversations AS c (conv, last_cseq)
      SELECT r ->> 0, (r ->> 1)::bigint FROM jsonb_array_elements(p_convs) r
      ON CONFLICT (conv) DO UPDATE SET last_cseq = excluded.last_cseq;
    INSERT INTO user_inbox_seq AS s (user_id, last_seq, tail_seq_start, tail_conv, tail_cseq)
      SELECT r ->> 0, (r ->> 1)::bigint, (r ->> 2)::bigint, r ->> 3, (r ->> 4)::bigint
      FROM jsonb_array_elements(p_users) r
      ON CONFLICT (user_id) DO UPDATE SET
        last_seq = excluded.last_seq, tail_seq_start = excluded.tail_seq_start,
        tail_conv = excluded.tail_conv, tail_cseq = excluded.tail_cseq;
    INSERT INTO actor_epochs AS e (actor_id, epoch)
      SELECT r ->> 0, (r ->> 1)::bigint FROM jsonb_array_elements(p_epochs) r
      ON CONFLICT (actor_id) DO UPDATE SET epoch = excluded.epoch
      WHERE e.epoch < excluded.epoch;
  END
  $fn$;
`;

/** Every schema version, ascending. */
export const POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    description: "accounts, refresh tokens, fencing, snapshots, messages, inboxes, acks, im_append",
    sql: SCHEMA_V1,
  },
  {
    version: 2,
    description: "social: profiles (display name, avatar, bio, search key) and follows",
    // Profiles live beside users (no ALTER of a released table); a user search reads the
    // username index and the display-key index as two ranges. Both tables go with their account.
    sql: `
      CREATE TABLE profiles (
        user_id text COLLATE "C" PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
        display_name text NOT NULL DEFAULT '',
        display_key text COLLATE "C" NOT NULL DEFAULT '',
        avatar text NOT NULL DEFAULT '',
        bio text NOT NULL DEFAULT '',
        updated_at bigint NOT NULL
      );
      CREATE INDEX profiles_display_key ON profiles (display_key, user_id);

      CREATE TABLE follows (
        follower text COLLATE "C" NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
        followee text COLLATE "C" NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
        created_at bigint NOT NULL,
        PRIMARY KEY (follower, followee)
      );
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
        media_id text COLLATE "C" PRIMARY KEY,
        owner text COLLATE "C" NOT NULL,
        mime text NOT NULL,
        size bigint NOT NULL,
        width integer,
        height integer,
        created_at bigint NOT NULL
      );

      -- Which conversation (and message) carries a media item: who may download it.
      CREATE TABLE media_refs (
        media_id text COLLATE "C" NOT NULL,
        conv text COLLATE "C" NOT NULL,
        mid text COLLATE "C" NOT NULL,
        PRIMARY KEY (media_id, conv, mid)
      );
      CREATE INDEX media_refs_mid ON media_refs (mid);

      CREATE TABLE message_reactions (
        mid text COLLATE "C" NOT NULL,
        emoji text COLLATE "C" NOT NULL,
        user_id text COLLATE "C" NOT NULL,
        ts bigint NOT NULL,
        PRIMARY KEY (mid, emoji, user_id)
      );

      -- "Delete for me": per user, never shown to that user again.
      CREATE TABLE message_hidden (
        user_id text COLLATE "C" NOT NULL,
        mid text COLLATE "C" NOT NULL,
        conv text COLLATE "C" NOT NULL,
        PRIMARY KEY (user_id, mid)
      );

      CREATE TABLE read_cursors (
        conv text COLLATE "C" NOT NULL,
        user_id text COLLATE "C" NOT NULL,
        cseq bigint NOT NULL,
        ts bigint NOT NULL,
        PRIMARY KEY (conv, user_id)
      ) WITH (fillfactor = 70);
      CREATE INDEX read_cursors_user ON read_cursors (user_id, conv);
    `,
  },
  {
    version: 5,
    description: "administration: account roles and the audit log",
    sql: `
      CREATE TABLE user_roles (
        user_id text COLLATE "C" PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
        role text NOT NULL
      );

      CREATE TABLE audit_log (
        id bigserial PRIMARY KEY,
        ts bigint NOT NULL,
        admin_id text NOT NULL,
        action text NOT NULL,
        target text NOT NULL,
        details jsonb NOT NULL
      );
    `,
  },
  {
    version: 6,
    description:
      "inboxes as runs: inbox_runs replaces the per-recipient inbox rows; user_inbox_seq keeps the open tail run",
    // A run maps the user's seqs seq_start .. seq_start+count-1 to the messages of conv with
    // cseq cseq_start .. cseq_start+count-1, as in the SQLite store (its versions 6 and 7). A
    // group message then updates each member's counter row instead of inserting one inbox row
    // (and index entry) per member. inbox_runs holds the closed runs; the open tail run of each
    // user lives only in user_inbox_seq: tail_seq_start, tail_conv ('' = no run to extend) and
    // tail_cseq (the cseq at last_seq); its count is last_seq - tail_seq_start + 1.
    //
    // The conversion is gaps-and-islands: an entry starts a new run unless the previous entry of
    // the same user is seq - 1, the same conversation and cseq - 1. The run ending at last_seq
    // becomes the tail; the others are stored. Appends wait for the conversion (table locks
    // taken first, in im_append's order: counters, then inbox), then run the new im_append.
    sql: `
      LOCK TABLE user_inbox_seq, inbox IN ACCESS EXCLUSIVE MODE;

      CREATE TABLE inbox_runs (
        user_id text COLLATE "C" NOT NULL,
        seq_start bigint NOT NULL,
        conv text COLLATE "C" NOT NULL,
        cseq_start bigint NOT NULL,
        count bigint NOT NULL,
        PRIMARY KEY (user_id, seq_start)
      );

      ALTER TABLE user_inbox_seq
        ADD COLUMN tail_seq_start bigint NOT NULL DEFAULT 0,
        ADD COLUMN tail_conv text COLLATE "C" NOT NULL DEFAULT '',
        ADD COLUMN tail_cseq bigint NOT NULL DEFAULT 0;

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
      ),
      runs AS MATERIALIZED (
        SELECT user_id, min(seq) AS seq_start, min(conv) AS conv, min(cseq) AS cseq_start,
               count(*) AS count
        FROM islands GROUP BY user_id, island
      ),
      -- The tail is the run ending at last_seq; without one nothing is extended.
      tails AS (
        UPDATE user_inbox_seq s SET
          tail_seq_start = r.seq_start,
          tail_conv = r.conv,
          tail_cseq = r.cseq_start + r.count - 1
        FROM runs r
        WHERE r.user_id = s.user_id AND r.seq_start + r.count - 1 = s.last_seq
        RETURNING s.user_id, s.tail_seq_start
      )
      INSERT INTO inbox_runs (user_id, seq_start, conv, cseq_start, count)
      SELECT r.user_id, r.seq_start, r.conv, r.cseq_start, r.count
      FROM runs r
      WHERE NOT EXISTS (
        SELECT 1 FROM tails t WHERE t.user_id = r.user_id AND t.tail_seq_start = r.seq_start)
      ORDER BY r.user_id, r.seq_start;

      DROP TABLE inbox;
    ` + IM_APPEND_RUNS,
  },
  {
    version: 7,
    description: "append in two calls: the node numbers messages and inbox entries in between",
    // im_append numbered every (message, recipient) pair in SQL: a 1,000-member group message
    // cost Postgres ~4 µs per delivery in json expansion, sorts and window functions. Now Postgres
    // only locks and returns the counter rows (one per member per batch) and writes back what the
    // node computed; the pairs are numbered in the node's memory, as the SQLite store does. The
    // layout is unchanged and im_append stays: nodes of both versions can run side by side.
    sql: IM_APPEND_TWO_STEP,
  },
  {
    version: 8,
    description: "media bytes in Postgres: the blob store every node of a cluster shares",
    // Read and written by media/blob_store_postgres.ts only (the Store keeps the media records).
    // Uploads are already-compressed images: EXTERNAL keeps them out of line without trying to
    // compress them again.
    sql: `
      CREATE TABLE media_blobs (
        media_id text PRIMARY KEY,
        data bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      ALTER TABLE media_blobs ALTER COLUMN data SET STORAGE EXTERNAL;
    `,
  },
  {
    version: 9,
    description: "im_append looks up earlier (from, cmid) pairs by index, never by a scan",
    // Version 6's im_append let the planner turn its per-request lookup of messages into a hash
    // join. The plan a connection caches after five calls is made with the statistics of that
    // moment: on a database whose messages table was still small, a sequential scan of
    // messages, which every later call repeated while the table grew (a batch of 70 direct
    // messages: 7.7 ms at 18,000 stored messages, 19.5 ms at 73,000) until autovacuum analyzed
    // the table. Same signature and result: nodes of every version call it alike.
    sql: IM_APPEND_RUNS,
  },
];
