import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { UnavailableError } from "../actors/errors.ts";
import { openSqliteStore } from "./store_sqlite.ts";
import { SQLITE_MIGRATIONS } from "./migrations_sqlite.ts";
import { runStoreContract } from "./store_contract.ts";
import type { AppendRequest, StoredMessage } from "./store.ts";
import { request, withDir } from "./testing_sqlite.ts";
import {
  assertInboxes,
  checkHiddenEntries,
  checkRunLayout,
  inboxAnswers,
  InboxModel,
  mixedBatches,
  msg,
} from "./testing_inbox.ts";

runStoreContract("sqlite", async () => {
  const dir = await Deno.makeTempDir({ prefix: "im_store_sqlite_" });
  // A missing parent directory: the adapter creates it.
  const path = `${dir}/data/im.sqlite3`;
  const open = async () => {
    const store = openSqliteStore(path);
    await store.migrate();
    return store;
  };
  const store = await open();
  return {
    store,
    reopen: open,
    cleanup: async () => {
      await store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
});

Deno.test("the SQLite store keeps its file in WAL mode", async () => {
  await withDir(async (dir) => {
    const store = openSqliteStore(`${dir}/im.sqlite3`);
    await store.migrate();
    await store.close();
    const db = new DatabaseSync(`${dir}/im.sqlite3`);
    try {
      assert.deepEqual({ ...db.prepare("PRAGMA journal_mode").get() }, { journal_mode: "wal" });
    } finally {
      db.close();
    }
  });
});

Deno.test("an in-memory SQLite store works without touching the file system", async () => {
  const store = openSqliteStore(":memory:");
  try {
    await store.migrate();
    const [result] = await store.append([request("c1")]);
    assert.equal(result.status, "stored");
    assert.equal(await store.latestSeq("u_2"), 1);
    assert.equal(store.kind, "sqlite");
  } finally {
    await store.close();
  }
});

Deno.test("a write blocked by another connection's lock past the busy timeout rejects with UnavailableError and writes nothing", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/im.sqlite3`;
    const store = openSqliteStore(path, { busyTimeoutMs: 50 });
    const other = new DatabaseSync(path);
    try {
      await store.migrate();
      other.exec("BEGIN IMMEDIATE");
      await assert.rejects(store.append([request("c1")]), UnavailableError);
      await assert.rejects(store.fence("user/x", 1), UnavailableError);
      other.exec("ROLLBACK");
      assert.equal(await store.latestCseq("g:g_1"), 0);
      const [result] = await store.append([request("c1")]);
      assert.equal(result.status === "stored" && result.message.cseq, 1);
    } finally {
      other.close();
      await store.close();
    }
  });
});

Deno.test("a failing SQLite migration rolls back entirely and is not recorded", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/im.sqlite3`;
    const broken = [
      ...SQLITE_MIGRATIONS,
      {
        version: 1000,
        description: "fails halfway",
        sql: "CREATE TABLE half_done (x INTEGER); INSERT INTO no_such_table VALUES (1);",
      },
    ];
    const store = openSqliteStore(path, { migrations: broken });
    await assert.rejects(store.migrate());
    await store.close();
    const db = new DatabaseSync(path);
    try {
      const versions = db.prepare("SELECT version FROM schema_migrations ORDER BY version").all();
      assert.deepEqual(versions.map((r) => r.version), SQLITE_MIGRATIONS.map((m) => m.version));
      const table = db.prepare("SELECT name FROM sqlite_master WHERE name = 'half_done'").get();
      assert.equal(table, undefined);
    } finally {
      db.close();
    }
  });
});

// ---- inbox runs (migration 6): each user's inbox is stored as runs of one conversation ----

/**
 * A user's runs as [seq_start, conv, cseq_start, count]: the closed ones stored in inbox_runs,
 * then the open tail kept in user_inbox_seq (which must not also be in inbox_runs).
 */
function runsOf(path: string, user: string): unknown[] {
  const db = new DatabaseSync(path);
  try {
    const runs = db.prepare(
      `SELECT seq_start, conv, cseq_start, count FROM inbox_runs WHERE user_id = ?
       ORDER BY seq_start`,
    ).all(user).map((r) => [r.seq_start, r.conv, r.cseq_start, r.count]);
    const t = db.prepare(
      "SELECT last_seq, tail_seq_start, tail_conv, tail_cseq FROM user_inbox_seq WHERE user_id = ?",
    ).get(user);
    if (t && t.tail_conv !== "") {
      const count = (t.last_seq as number) - (t.tail_seq_start as number) + 1;
      assert.ok(!runs.some((r) => r[0] === t.tail_seq_start), "the tail is stored once");
      runs.push([t.tail_seq_start, t.tail_conv, (t.tail_cseq as number) - count + 1, count]);
    }
    return runs;
  } finally {
    db.close();
  }
}

Deno.test("inbox runs extend only with the same conversation's next cseq and map every seq to its message", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/im.sqlite3`;
    const store = openSqliteStore(path);
    try {
      await store.migrate();
      await checkRunLayout(store, (user) => Promise.resolve(runsOf(path, user)));
    } finally {
      await store.close();
    }
  });
});

Deno.test("hidden inbox messages are skipped inside and across runs and limit counts only returned entries", async () => {
  await withDir(async (dir) => {
    const store = openSqliteStore(`${dir}/im.sqlite3`);
    try {
      await store.migrate();
      await checkHiddenEntries(store);
    } finally {
      await store.close();
    }
  });
});

/**
 * Writes messages the way the store before migration 6 did (one `inbox` row per recipient),
 * straight into a database at the old schema; the model gets what append would have answered.
 */
function appendOldLayout(db: DatabaseSync, model: InboxModel, reqs: AppendRequest[]): void {
  db.exec("BEGIN IMMEDIATE");
  for (const req of reqs) {
    db.prepare("INSERT INTO conversations (conv, last_cseq) VALUES (?, 0) ON CONFLICT DO NOTHING")
      .run(req.conv);
    const cseq = Number(
      db.prepare("UPDATE conversations SET last_cseq = last_cseq + 1 WHERE conv = ? RETURNING *")
        .get(req.conv)!.last_cseq,
    );
    const to = req.to as { group?: string; user?: string };
    db.prepare(
      `INSERT INTO messages (mid, conv, cseq, sender, cmid, to_kind, to_id, ts, body)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      req.mid,
      req.conv,
      cseq,
      req.from,
      req.cmid,
      to.group ? "group" : "user",
      to.group ?? to.user!,
      req.ts,
      JSON.stringify(req.body),
    );
    const seqs: Record<string, number> = {};
    for (const user of new Set(req.recipients)) {
      const seq = Number(
        db.prepare(
          `INSERT INTO user_inbox_seq (user_id, last_seq) VALUES (?, 1)
           ON CONFLICT (user_id) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq`,
        ).get(user)!.last_seq,
      );
      db.prepare("INSERT INTO inbox (user_id, seq, mid) VALUES (?, ?, ?)").run(user, seq, req.mid);
      seqs[user] = seq;
    }
    model.record([{
      status: "stored",
      message: { mid: req.mid, conv: req.conv, cseq } as StoredMessage,
      seqs,
    }]);
  }
  db.exec("COMMIT");
}

Deno.test("migration 6 converts an inbox written as rows into runs that read back identically", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/im.sqlite3`;
    const version6 = SQLITE_MIGRATIONS.findIndex((m) => m.version === 6);
    assert.ok(version6 > 0);
    const old = openSqliteStore(path, { migrations: SQLITE_MIGRATIONS.slice(0, version6) });
    await old.migrate();
    await old.close();
    const model = new InboxModel();
    const users = ["u_a", "u_b", "u_c", "u_d", "u_e"];
    let n = 0;
    let hiddenMid = "";
    const db = new DatabaseSync(path);
    try {
      for (const reqs of mixedBatches(users, 40, () => ++n)) appendOldLayout(db, model, reqs);
      // u_b hid one group message (in the middle of a run, most likely).
      const hidden = [...model.entries.get("u_b")!.values()].find((e) => e.conv.startsWith("g:"))!;
      hiddenMid = hidden.mid;
      db.prepare("INSERT INTO message_hidden (user_id, mid, conv) VALUES ('u_b', ?, ?)")
        .run(hidden.mid, hidden.conv);
      const oldRows = Number(db.prepare("SELECT count(*) AS n FROM inbox").get()!.n);
      assert.ok(oldRows > 100);
    } finally {
      db.close();
    }
    // What the store answered on the old layout: its queries, kept here verbatim.
    const legacy = legacyInboxQueries(path);
    const before = legacy.answers(users);
    legacy.close();

    const store = openSqliteStore(path);
    try {
      await store.migrate();
      // Item by item: a diff of the whole list would take minutes to print.
      const after = await inboxAnswers(store, users);
      assert.equal(after.length, before.length);
      for (let i = 0; i < after.length; i++) assert.deepEqual(after[i], before[i]);
      const check = new DatabaseSync(path);
      try {
        assert.equal(
          check.prepare("SELECT name FROM sqlite_master WHERE name = 'inbox'").get(),
          undefined,
        );
        const runs = Number(check.prepare("SELECT count(*) AS n FROM inbox_runs").get()!.n);
        const entries = [...model.entries.values()].reduce((s, m) => s + m.size, 0);
        assert.ok(runs > 0 && runs < entries, `${runs} runs for ${entries} entries`);
      } finally {
        check.close();
      }
      // Appends after the conversion extend the converted tails correctly.
      for (let i = 0; i < 5; i++) {
        model.record(await store.append([msg("g:g_0", "u_a", users, ++n)]));
        model.record(await store.append([msg("d:u_a:u_b", "u_a", ["u_a", "u_b"], ++n)]));
      }
      model.hidden.add(`u_b ${hiddenMid}`);
      await assertInboxes(store, model);
    } finally {
      await store.close();
    }
  });
});

Deno.test("migration 7 drops the stored copy of each open tail run and reads back identically", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/im.sqlite3`;
    const users = ["u_a", "u_b", "u_c", "u_d"];
    const model = new InboxModel();
    let n = 0;
    const store = openSqliteStore(path);
    await store.migrate();
    let before: unknown[];
    try {
      for (const reqs of mixedBatches(users, 30, () => ++n)) {
        model.record(await store.append(reqs));
      }
      before = await inboxAnswers(store, users);
    } finally {
      await store.close();
    }
    // Back to the version 6 layout: every tail also stored in inbox_runs with its current count.
    const db = new DatabaseSync(path);
    try {
      const copied = db.prepare(
        `INSERT INTO inbox_runs (user_id, seq_start, conv, cseq_start, count)
         SELECT user_id, tail_seq_start, tail_conv,
                tail_cseq - (last_seq - tail_seq_start), last_seq - tail_seq_start + 1
         FROM user_inbox_seq WHERE tail_conv <> ''`,
      ).run();
      assert.equal(Number(copied.changes), users.length);
      db.prepare("DELETE FROM schema_migrations WHERE version = 7").run();
    } finally {
      db.close();
    }
    const migrated = openSqliteStore(path);
    try {
      await migrated.migrate();
      const after = await inboxAnswers(migrated, users);
      assert.equal(after.length, before.length);
      for (let i = 0; i < after.length; i++) assert.deepEqual(after[i], before[i]);
      for (const u of users) runsOf(path, u); // asserts each tail is stored once
      // Appends after the migration extend and close the tails correctly.
      for (let i = 0; i < 4; i++) {
        model.record(await migrated.append([msg("g:g_0", "u_a", users, ++n)]));
        model.record(await migrated.append([msg("d:u_a:u_b", "u_a", ["u_a", "u_b"], ++n)]));
      }
      await assertInboxes(migrated, model);
      for (const u of users) runsOf(path, u);
    } finally {
      await migrated.close();
    }
  });
});

/**
 * The inbox reads of the store before migration 6 (one row per entry), run on a database at
 * the old schema, in the shape {@link inboxAnswers} gives.
 */
function legacyInboxQueries(path: string) {
  const db = new DatabaseSync(path);
  const read = db.prepare(
    `SELECT i.seq AS seq, m.mid, m.conv, m.cseq, m.sender, m.cmid, m.to_kind, m.to_id, m.ts,
            m.body
     FROM inbox i JOIN messages m ON m.mid = i.mid
     WHERE i.user_id = ? AND i.seq > ?
       AND NOT EXISTS (
         SELECT 1 FROM message_hidden h WHERE h.user_id = i.user_id AND h.mid = i.mid)
     ORDER BY i.seq
     LIMIT ?`,
  );
  const scan = db.prepare(
    `SELECT m.conv AS conv, min(m.cseq) AS first_cseq, max(m.cseq) AS last_cseq,
            max(i.seq) AS last_seq, count(*) AS n
     FROM (SELECT seq, mid FROM inbox WHERE user_id = ? AND seq > ? ORDER BY seq LIMIT ?) i
     JOIN messages m ON m.mid = i.mid
     GROUP BY m.conv`,
  );
  const latest = db.prepare("SELECT last_seq FROM user_inbox_seq WHERE user_id = ?");
  return {
    answers(users: string[]): unknown[] {
      const out: unknown[] = [];
      for (const user of users) {
        const last = Number(latest.get(user)?.last_seq ?? 0);
        out.push(["latestSeq", user, last]);
        for (let after = 0; after <= last + 1; after++) {
          for (const limit of [1, 2, 3, 5, 1000]) {
            out.push([
              "readInbox",
              user,
              after,
              limit,
              read.all(user, after, limit).map((r) => ({
                seq: r.seq,
                message: {
                  mid: r.mid,
                  conv: r.conv,
                  cseq: r.cseq,
                  from: r.sender,
                  to: r.to_kind === "user" ? { user: r.to_id } : { group: r.to_id },
                  ts: r.ts,
                  body: JSON.parse(r.body as string),
                  cmid: r.cmid,
                },
              })),
            ]);
            let scanned = 0;
            let lastSeq = after;
            const convs = scan.all(user, after, limit).map((r) => {
              scanned += Number(r.n);
              lastSeq = Math.max(lastSeq, r.last_seq as number);
              return {
                conv: r.conv,
                firstCseq: r.first_cseq,
                lastCseq: r.last_cseq,
                lastSeq: r.last_seq,
              };
            });
            out.push(["scan", user, after, limit, { convs, scanned, lastSeq }]);
          }
        }
      }
      return out;
    },
    close: () => db.close(),
  };
}
