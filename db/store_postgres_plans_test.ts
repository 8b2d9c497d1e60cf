/**
 * The plans Postgres caches for the append functions' statements. A PL/pgSQL statement's plan is
 * made once per connection (after five calls, a generic plan with the statistics of that
 * moment) and kept while the tables grow: a plan made on a fresh database must already look
 * messages up by index. The plans are read from auto_explain, sent to the session as log
 * messages, with the generic plan forced.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { imAppendBatch, openPostgresStore } from "./store_postgres.ts";
import { createTempDatabase } from "../tests/support/postgres.ts";
import type { AppendRequest, Store } from "./store.ts";

function directMessage(k: number): AppendRequest {
  return {
    actorId: "conv/d:a:b",
    epoch: 1,
    mid: `m${k}`,
    conv: "d:a:b",
    from: k % 2 ? "a" : "b",
    to: { user: k % 2 ? "b" : "a" },
    cmid: `c${k}`,
    ts: 1,
    body: { type: "text", text: "hello" },
    recipients: ["a", "b"],
  };
}

/** Calls `fn` on a connection to a freshly migrated database that logs every plan to it. */
async function withPlansLogged(
  fn: (sql: postgres.Sql, plans: string[]) => Promise<void>,
): Promise<void> {
  const db = await createTempDatabase();
  const store = openPostgresStore(db.url, { max: 1 });
  const plans: string[] = [];
  const sql = postgres(db.url, {
    max: 1,
    onnotice: (n) => {
      if (String(n.message).includes("plan:")) plans.push(String(n.message));
    },
  });
  try {
    await store.migrate();
    await sql`LOAD 'auto_explain'`;
    await sql`SET auto_explain.log_min_duration = 0`;
    await sql`SET auto_explain.log_nested_statements = on`;
    await sql`SET plan_cache_mode = force_generic_plan`;
    await sql`SET client_min_messages = log`;
    await fn(sql, plans);
  } finally {
    await sql.end({ timeout: 5 });
    await store.close();
    await db.drop();
  }
}

/** Every explained plan that reads messages (at least one per call) reads it through an index. */
function assertMessagesByIndex(plans: string[]): void {
  const withMessages = plans.filter((p) => / on messages\b/.test(p));
  assert.ok(withMessages.length >= 3, "the statements reading messages were explained");
  for (const plan of withMessages) assert.doesNotMatch(plan, /Seq Scan on messages/, plan);
}

Deno.test("im_append's plan made on an empty database looks messages up by index, never scans them", async () => {
  await withPlansLogged(async (sql, plans) => {
    for (let k = 0; k < 3; k++) {
      const batch = imAppendBatch([directMessage(2 * k), directMessage(2 * k + 1)]);
      await sql`SELECT im_append(${batch}::text::json)`;
    }
    assertMessagesByIndex(plans);
  });
});

Deno.test("im_append_lock's plan made on an empty database looks messages up by index, never scans them", async () => {
  await withPlansLogged(async (sql, plans) => {
    for (let k = 0; k < 3; k++) {
      const keys = JSON.stringify([
        ["conv/d:a:b"],
        ["d:a:b"],
        [["a", 1], ["b", 1]],
        [["a", `c${k}`], ["b", `c${k}`]],
      ]);
      await sql.begin((tx) => [
        tx`SELECT im_append_lock(k -> 0, k -> 1, k -> 2, k -> 3)
           FROM (SELECT ${keys}::text::jsonb AS k) p`,
      ]);
    }
    assertMessagesByIndex(plans);
  });
});

Deno.test("the store's reads of messages, inboxes, reactions and users, planned on an empty database, use indexes", async () => {
  const db = await createTempDatabase();
  const plans: string[] = [];
  const setup = openPostgresStore(db.url, { max: 1 });
  let store: Store | undefined;
  try {
    await setup.migrate();
    await setup.close();
    // Every later session of this database logs its plans to itself.
    const admin = postgres(db.url, { max: 1, onnotice: () => {} });
    for (
      const setting of [
        "session_preload_libraries = 'auto_explain'",
        "auto_explain.log_min_duration = 0",
        "auto_explain.log_nested_statements = on",
        "plan_cache_mode = force_generic_plan",
        "client_min_messages = log",
      ]
    ) await admin.unsafe(`ALTER DATABASE ${db.name} SET ${setting}`);
    await admin.end({ timeout: 5 });
    store = openPostgresStore(db.url, {
      max: 1,
      onNotice: (n) => {
        if (String(n.message).includes("plan:")) plans.push(String(n.message));
      },
    });
    for (const [id, name] of [["a", "alice"], ["b", "bob"]]) {
      await store.createUser({
        userId: id,
        username: name,
        passwordHash: "x",
        createdAt: 1,
        disabled: false,
      });
    }
    for (let k = 0; k < 6; k += 2) {
      await store.append([directMessage(k), directMessage(k + 1)]);
      await store.existingUsers(["a", "b", "nobody"]);
      await store.getProfiles(["a", "b"]);
      await store.readInbox("a", 0, 10);
      await store.scanInboxConversations("a", 0, 10);
      await store.messagesAt([{ conv: "d:a:b", cseq: 1 }]);
      await store.history("d:a:b", null, 10);
      await store.historyFor("a", "d:a:b", null, 10);
      await store.unreadCounts("a", [{ conv: "d:a:b", after: 0, upTo: 2 }], 10);
      await store.findByCmid("a", "c1");
    }
    assert.equal((await store.readInbox("a", 0, 10)).length, 6, "the reads work");
    assert.deepEqual((await store.existingUsers(["b", "a", "b", "nobody"])).sort(), ["a", "b"]);
    const tables = "messages|inbox_runs|message_reactions|users|profiles";
    const reading = plans.filter((p) => new RegExp(` on (${tables})\\b`).test(p));
    assert.ok(reading.length >= 3 * 9, `the reads were explained (${reading.length} plans)`);
    for (const plan of reading) {
      assert.doesNotMatch(plan, new RegExp(`Seq Scan on (${tables})\\b`), plan);
    }
  } finally {
    await store?.close();
    await db.drop();
  }
});
