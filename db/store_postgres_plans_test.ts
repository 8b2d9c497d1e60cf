/**
 * The plans Postgres caches for the append functions' statements. A PL/pgSQL statement's plan is
 * made once per connection (after five calls, a generic plan with the statistics of that
 * moment) and kept while the tables grow: a plan made on a fresh database must already look
 * messages up by index. The plans are read from auto_explain, sent to this session as log
 * messages, with the generic plan forced.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { imAppendBatch, openPostgresStore } from "./store_postgres.ts";
import { createTempDatabase } from "../tests/support/postgres.ts";
import type { AppendRequest } from "./store.ts";

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
