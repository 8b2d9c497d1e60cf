/**
 * The Postgres store's inboxes as runs (schema version 6): runs form and break per conversation
 * and cseq across batches, hidden entries, concurrent writers, and the conversion of an inbox
 * written as one row per entry, which must read back identically.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { imAppendBatch, INT8_AS_NUMBER, openPostgresStore } from "./store_postgres.ts";
import { POSTGRES_MIGRATIONS } from "./migrations_postgres.ts";
import { createTempDatabase, type TempDatabase } from "../tests/support/postgres.ts";
import type { AppendRequest, AppendResult, InboxScan, Store } from "./store.ts";
import {
  assertInboxes,
  assertRunsMatch,
  checkHiddenEntries,
  checkRunLayout,
  inboxAnswers,
  InboxModel,
  mixedBatches,
  msg,
} from "./testing_inbox.ts";

/** A connection that reads int8 as numbers, like the store's. */
function connect(url: string): postgres.Sql {
  return postgres(url, {
    max: 2,
    onnotice: () => {},
    types: INT8_AS_NUMBER,
  }) as unknown as postgres.Sql;
}

/** Runs `fn` with a fresh database and a direct connection to it, dropping both after. */
async function withDatabase(
  fn: (db: TempDatabase, sql: postgres.Sql) => Promise<void>,
): Promise<void> {
  const db = await createTempDatabase();
  const sql = connect(db.url);
  try {
    await fn(db, sql);
  } finally {
    await sql.end({ timeout: 5 });
    await db.drop();
  }
}

async function openStore(
  url: string,
  migrations = POSTGRES_MIGRATIONS,
  nodeNumberingMinEntries?: number,
): Promise<Store> {
  const store = openPostgresStore(url, { max: 4, migrations, nodeNumberingMinEntries });
  await store.migrate();
  return store;
}

/**
 * A user's runs as [seq_start, conv, cseq_start, count]: the closed ones stored in inbox_runs,
 * then the open tail kept in user_inbox_seq (which must not also be in inbox_runs).
 */
async function runsOf(sql: postgres.Sql, user: string): Promise<unknown[]> {
  const runs = (await sql`
    SELECT seq_start, conv, cseq_start, count FROM inbox_runs WHERE user_id = ${user}
    ORDER BY seq_start`).map((r) => [r.seq_start, r.conv, r.cseq_start, r.count]);
  const [t] = await sql`
    SELECT last_seq, tail_seq_start, tail_conv, tail_cseq FROM user_inbox_seq
    WHERE user_id = ${user}`;
  if (t && t.tail_conv !== "") {
    const count = t.last_seq - t.tail_seq_start + 1;
    assert.ok(!runs.some((r) => r[0] === t.tail_seq_start), "the tail is stored once");
    runs.push([t.tail_seq_start, t.tail_conv, t.tail_cseq - count + 1, count]);
  }
  return runs;
}

// Both ways of numbering a batch (im_append, or the node between two calls) write this layout.
for (const [path, nodeNumberingMinEntries] of [["im_append", Infinity], ["node", 0]] as const) {
  Deno.test(`Postgres inbox runs extend only with the same conversation's next cseq and map every seq to its message (numbered by ${path})`, async () => {
    await withDatabase(async (db, sql) => {
      const store = await openStore(db.url, POSTGRES_MIGRATIONS, nodeNumberingMinEntries);
      try {
        await checkRunLayout(store, (user) => runsOf(sql, user));
      } finally {
        await store.close();
      }
    });
  });

  Deno.test(`Postgres: hidden inbox messages are skipped inside and across runs and limit counts only returned entries (numbered by ${path})`, async () => {
    await withDatabase(async (db) => {
      const store = await openStore(db.url, POSTGRES_MIGRATIONS, nodeNumberingMinEntries);
      try {
        await checkHiddenEntries(store);
      } finally {
        await store.close();
      }
    });
  });
}

Deno.test("Postgres inbox runs stay exact under concurrent append batches from two stores over the same users, one numbering in im_append and one in the node", async () => {
  await withDatabase(async (db, sql) => {
    // As in a cluster half upgraded to schema 7: both lock the same rows in the same order.
    const one = await openStore(db.url, POSTGRES_MIGRATIONS, Infinity);
    const two = await openStore(db.url, POSTGRES_MIGRATIONS, 0);
    const model = new InboxModel();
    try {
      const users = ["u_a", "u_b", "u_c", "u_d"];
      let n = 0;
      // Each store writes its own conversations; the users' inboxes interleave them.
      const writer = async (store: Store, convs: string[], seed: number) => {
        const rnd = (k: number) =>
          Math.floor((seed = (seed * 1103515245 + 12345) % 2147483648) / 65536) % k;
        for (let b = 0; b < 40; b++) {
          const reqs: AppendRequest[] = [];
          for (let i = 0, size = 1 + rnd(3); i < size; i++) {
            const conv = convs[rnd(convs.length)];
            const members = conv.startsWith("d:")
              ? ["u_a", "u_b"]
              : users.filter(() => rnd(3) !== 0);
            reqs.push(msg(conv, "u_a", members, ++n));
          }
          model.record(await store.append(reqs));
        }
      };
      await Promise.all([
        writer(one, ["g:g_1", "g:g_2"], 3),
        writer(two, ["g:g_3", "d:u_a:u_b"], 5),
      ]);
      // The two writers' batches did interleave in u_a's inbox (many runs, not two).
      assert.ok((await runsOf(sql, "u_a")).length > 10);
      await assertInboxes(one, model);
      for (const u of users) await assertRunsMatch((user) => runsOf(sql, user), model, u);
    } finally {
      await one.close();
      await two.close();
    }
  });
});

/**
 * An append as nodes before schema 7 made every append: one call of `im_append` (today's nodes
 * still do so for small batches).
 */
async function legacyAppend(sql: postgres.Sql, requests: AppendRequest[]) {
  const [{ results }] = await sql`
    SELECT im_append(${imAppendBatch(requests)}::text::json) AS results`;
  return results as AppendResult[];
}

/** A message's fields as the store answers them, from a row of the old queries. */
function legacyMessage(r: postgres.Row) {
  return {
    mid: r.mid,
    conv: r.conv,
    cseq: r.cseq,
    from: r.sender,
    to: r.to_kind === "user" ? { user: r.to_id } : { group: r.to_id },
    ts: r.ts,
    body: r.body,
    cmid: r.cmid,
  };
}

/**
 * What the store before version 6 answered (one inbox row per entry): its queries, kept here
 * verbatim, in the shape {@link inboxAnswers} gives. The old scan did not order its
 * conversations: they are sorted here as the store now sorts them.
 */
async function legacyInboxAnswers(sql: postgres.Sql, users: string[]): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const user of users) {
    const [row] = await sql`SELECT last_seq FROM user_inbox_seq WHERE user_id = ${user}`;
    const last = row ? (row.last_seq as number) : 0;
    out.push(["latestSeq", user, last]);
    for (let after = 0; after <= last + 1; after++) {
      for (const limit of [1, 2, 3, 5, 1000]) {
        const read = await sql`
          SELECT i.seq AS seq, m.mid, m.conv, m.cseq, m.sender, m.cmid, m.to_kind, m.to_id, m.ts,
                 m.body
          FROM inbox i JOIN messages m ON m.mid = i.mid
          WHERE i.user_id = ${user} AND i.seq > ${after}
            AND NOT EXISTS (
              SELECT 1 FROM message_hidden h WHERE h.user_id = i.user_id AND h.mid = i.mid)
          ORDER BY i.seq
          LIMIT ${limit}`;
        out.push([
          "readInbox",
          user,
          after,
          limit,
          read.map((r) => ({ seq: r.seq, message: legacyMessage(r) })),
        ]);
        const rows = await sql`
          SELECT m.conv, min(m.cseq) AS first_cseq, max(m.cseq) AS last_cseq,
                 max(i.seq) AS last_seq, count(*)::int AS n
          FROM (SELECT seq, mid FROM inbox WHERE user_id = ${user} AND seq > ${after}
                ORDER BY seq LIMIT ${limit}) i
          JOIN messages m ON m.mid = i.mid
          GROUP BY m.conv`;
        let scanned = 0;
        let lastSeq = after;
        const convs = [...rows].sort((x, y) => x.conv < y.conv ? -1 : x.conv > y.conv ? 1 : 0)
          .map((r) => {
            scanned += r.n as number;
            lastSeq = Math.max(lastSeq, r.last_seq as number);
            return {
              conv: r.conv,
              firstCseq: r.first_cseq,
              lastCseq: r.last_cseq,
              lastSeq: r.last_seq,
            };
          });
        const scan: InboxScan = { convs, scanned, lastSeq };
        out.push(["scan", user, after, limit, scan]);
      }
    }
  }
  return out;
}

Deno.test("Postgres migration 6 converts an inbox written as rows into runs that read back identically", async () => {
  await withDatabase(async (db, sql) => {
    const version6 = POSTGRES_MIGRATIONS.findIndex((m) => m.version === 6);
    assert.ok(version6 > 0);
    const model = new InboxModel();
    // u_f only ever receives a fenced request: a counter row at 0 and no inbox.
    const users = ["u_a", "u_b", "u_c", "u_d", "u_e", "u_f"];
    let n = 0;
    let hiddenMid = "";
    const old = await openStore(db.url, POSTGRES_MIGRATIONS.slice(0, version6));
    try {
      // The mix written by the old im_append (one inbox row per recipient), called as the nodes
      // of that version called it.
      const batches = mixedBatches(users.slice(0, 5), 40, () => ++n);
      for (const [batch, reqs] of batches.entries()) {
        if (batch === 20) {
          // A duplicate and a fenced request take no seq.
          reqs.push(reqs[0]);
          await old.fence("conv/g:g_9", 2);
          reqs.push(msg("g:g_9", "u_a", ["u_a", "u_f"], ++n));
        }
        model.record(await legacyAppend(sql, reqs));
      }
      // u_b hid one group message (in the middle of a run, most likely).
      const hidden = [...model.entries.get("u_b")!.values()].find((e) => e.conv.startsWith("g:"))!;
      hiddenMid = hidden.mid;
      await old.hideMessage(`conv/${hidden.conv}`, 1, "u_b", hidden.conv, hidden.mid);
      const [{ rows }] = await sql`SELECT count(*)::int AS rows FROM inbox`;
      assert.ok(rows > 100, `${rows} inbox rows`);
      assert.equal(await old.latestSeq("u_f"), 0);
    } finally {
      await old.close();
    }
    const before = await legacyInboxAnswers(sql, users);

    const store = await openStore(db.url);
    try {
      // Item by item: a diff of the whole list would take minutes to print.
      const after = await inboxAnswers(store, users);
      assert.equal(after.length, before.length);
      for (let i = 0; i < after.length; i++) assert.deepEqual(after[i], before[i]);
      const [{ gone }] = await sql`SELECT to_regclass('inbox') IS NULL AS gone`;
      assert.equal(gone, true);
      const [{ runs }] = await sql`SELECT count(*)::int AS runs FROM inbox_runs`;
      const entries = [...model.entries.values()].reduce((s, m) => s + m.size, 0);
      assert.ok(runs > 0 && runs < entries, `${runs} runs for ${entries} entries`);
      for (const u of users) await assertRunsMatch((user) => runsOf(sql, user), model, u);
      // Each inbox's last run became its tail (kept only in the counter row).
      const tails = await sql`
        SELECT user_id, tail_conv FROM user_inbox_seq ORDER BY user_id`;
      assert.deepEqual(
        tails.map((t) => [t.user_id, t.tail_conv !== ""]),
        users.map((u) => [u, u !== "u_f"]),
      );
      assert.deepEqual(await runsOf(sql, "u_f"), []);
      // Appends after the conversion extend and close the converted tails correctly.
      for (let i = 0; i < 5; i++) {
        model.record(await store.append([msg("g:g_0", "u_a", users, ++n)]));
        model.record(await store.append([msg("d:u_a:u_b", "u_a", ["u_a", "u_b"], ++n)]));
        model.record(await store.append([msg("g:g_0", "u_c", users.slice(2), ++n)]));
      }
      model.hidden.add(`u_b ${hiddenMid}`);
      await assertInboxes(store, model);
      for (const u of users) await assertRunsMatch((user) => runsOf(sql, user), model, u);
    } finally {
      await store.close();
    }
  });
});
