/**
 * `deno run -A bench/postgres_inbox_append.ts [STORE_MODULE]`
 *
 * Micro-benchmark of the Postgres store's `append` (not part of `deno task bench`), the
 * counterpart of `sqlite_inbox_append.ts`: 300 messages to a 1,000-member group (one per call),
 * 300 calls of 90 direct messages among 100 users, and 320 messages to a 1,000-member group in
 * calls of 2 and of 16, numbered by `im_append` and by the node, each in a fresh database (made and dropped
 * through `TEST_DATABASE_ADMIN_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`),
 * printing the time per message (each run then times pages of readInbox, which is excluded from
 * its per-message figure). STORE_MODULE (default `../db/store_postgres.ts`) may name another
 * copy of the adapter, e.g. one in a worktree of an older revision, so a before/after comparison
 * runs on the same machine in one sitting. Bounded: 28,580 messages in all, and each run stops
 * early (saying so) after 60 s.
 *
 * @module
 */
import type { AppendRequest, Store } from "../db/store.ts";
import { createTempDatabase } from "../tests/support/postgres.ts";

const target = Deno.args[0]
  ? new URL(Deno.args[0], `file://${Deno.cwd()}/`).href
  : new URL("../db/store_postgres.ts", import.meta.url).href;
const { openPostgresStore } = await import(target) as {
  openPostgresStore: (
    url: string,
    options?: { max?: number; nodeNumberingMinEntries?: number },
  ) => Store;
};

/** Milliseconds one run may take before it stops early. */
const RUN_LIMIT_MS = 60_000;

async function run(
  label: string,
  fn: (store: Store, deadline: number) => Promise<number>,
  then?: (store: Store) => Promise<void>,
  nodeNumberingMinEntries?: number,
): Promise<void> {
  const db = await createTempDatabase();
  const store = openPostgresStore(db.url, { max: 4, nodeNumberingMinEntries });
  try {
    await store.migrate();
    const t0 = performance.now();
    const n = await fn(store, t0 + RUN_LIMIT_MS);
    const ms = performance.now() - t0;
    const early = ms > RUN_LIMIT_MS ? ", stopped at the time limit" : "";
    console.log(
      `${label}: ${(ms * 1000 / n).toFixed(1)} µs/message (${n} messages, ${
        ms.toFixed(0)
      } ms${early})`,
    );
    await then?.(store);
  } finally {
    await store.close();
    await db.drop();
  }
}

/** Times readInbox pages of 100 from the start of the first `users` inboxes (300 entries or more). */
async function readPages(store: Store, users: number): Promise<void> {
  const t0 = performance.now();
  for (let u = 0; u < users; u++) {
    for (let after = 0; after < 300; after += 100) await store.readInbox(`u_${u}`, after, 100);
  }
  const perPage = (performance.now() - t0) * 1000 / (users * 3);
  console.log(`  then readInbox, pages of 100: ${perPage.toFixed(0)} µs/page`);
}

let k = 0;
function request(conv: string, from: string, recipients: string[]): AppendRequest {
  k++;
  return {
    actorId: `conv/${conv}`,
    epoch: 1,
    mid: `m${k}`,
    conv,
    from,
    to: conv.startsWith("g:") ? { group: conv.slice(2) } : { user: recipients[1] },
    cmid: `c${k}`,
    ts: 1,
    body: { type: "text", text: "hello" },
    recipients,
  };
}

await run("group of 1,000, one message per append", async (store, deadline) => {
  const members = Array.from({ length: 1000 }, (_, i) => `u_${i}`);
  let i = 0;
  for (; i < 300 && performance.now() < deadline; i++) {
    await store.append([request("g:g", members[i], members)]);
  }
  return i;
}, (store) => readPages(store, 10));

await run("direct among 100, 90 messages per append", async (store, deadline) => {
  let seed = 1;
  const rnd = (n: number) =>
    Math.floor((seed = (seed * 1103515245 + 12345) % 2147483648) / 65536) % n;
  let b = 0;
  for (; b < 300 && performance.now() < deadline; b++) {
    const batch: AppendRequest[] = [];
    for (let j = 0; j < 90; j++) {
      const a = rnd(100), c = (a + 1 + rnd(99)) % 100;
      const conv = a < c ? `d:u_${a}:u_${c}` : `d:u_${c}:u_${a}`;
      batch.push(request(conv, `u_${a}`, [`u_${a}`, `u_${c}`]));
    }
    await store.append(batch);
  }
  return b * 90;
}, (store) => readPages(store, 100));

// Batches of several messages to one big group, numbered by each path of the store (an older
// STORE_MODULE ignores the option: both lines then time its only path).
for (const perAppend of [2, 16]) {
  for (const [path, minEntries] of [["im_append", Infinity], ["the node", 0]] as const) {
    await run(
      `group of 1,000, ${perAppend} messages per append, numbered by ${path}`,
      async (store, deadline) => {
        const members = Array.from({ length: 1000 }, (_, i) => `u_${i}`);
        let i = 0;
        for (; i < 320 && performance.now() < deadline; i += perAppend) {
          const batch = [];
          for (let j = 0; j < perAppend; j++) batch.push(request("g:g", members[i + j], members));
          await store.append(batch);
        }
        return i;
      },
      undefined,
      minEntries,
    );
  }
}
