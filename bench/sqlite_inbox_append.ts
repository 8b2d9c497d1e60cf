/**
 * `deno run -A bench/sqlite_inbox_append.ts [STORE_MODULE]`
 *
 * Micro-benchmark of the SQLite store's `append` (not part of `deno task bench`): 300 messages to
 * a 1,000-member group (one per call), 300 calls of 90 direct messages among 100 users, and
 * 2,000 calls of 15 direct messages among 50 fixed pairs (the batches scenario 1 makes at a
 * moderate rate), each in a fresh temporary database file, printing the time and the process's
 * CPU time per message (the first two runs then time pages of readInbox, which is excluded from
 * their per-message figures). STORE_MODULE (default
 * `../db/store_sqlite.ts`) may name another copy of the adapter, e.g. an older revision
 * extracted with `git show`, so a before/after comparison runs on the same machine in one sitting.
 * Bounded: 57,300 messages in all.
 *
 * @module
 */
import process from "node:process";
import type { AppendRequest, Store } from "../db/store.ts";

const target = Deno.args[0]
  ? new URL(Deno.args[0], `file://${Deno.cwd()}/`).href
  : new URL("../db/store_sqlite.ts", import.meta.url).href;
const { openSqliteStore } = await import(target) as {
  openSqliteStore: (path: string) => Store;
};

async function run(
  label: string,
  fn: (store: Store) => Promise<number>,
  then?: (store: Store) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "im_bench_inbox_" });
  const store = openSqliteStore(`${dir}/im.sqlite3`);
  try {
    await store.migrate();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const n = await fn(store);
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    console.log(
      `${label}: ${(ms * 1000 / n).toFixed(1)} µs/message, CPU ${
        ((cpu.user + cpu.system) / n).toFixed(1)
      } µs (user ${(cpu.user / n).toFixed(1)}) (${n} messages, ${ms.toFixed(0)} ms)`,
    );
    await then?.(store);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
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

await run("group of 1,000, one message per append", async (store) => {
  const members = Array.from({ length: 1000 }, (_, i) => `u_${i}`);
  for (let i = 0; i < 300; i++) await store.append([request("g:g", members[i], members)]);
  return 300;
}, (store) => readPages(store, 10));

await run("direct among 100, 90 messages per append", async (store) => {
  let seed = 1;
  const rnd = (n: number) =>
    Math.floor((seed = (seed * 1103515245 + 12345) % 2147483648) / 65536) % n;
  for (let b = 0; b < 300; b++) {
    const batch: AppendRequest[] = [];
    for (let j = 0; j < 90; j++) {
      const a = rnd(100), c = (a + 1 + rnd(99)) % 100;
      const conv = a < c ? `d:u_${a}:u_${c}` : `d:u_${c}:u_${a}`;
      batch.push(request(conv, `u_${a}`, [`u_${a}`, `u_${c}`]));
    }
    await store.append(batch);
  }
  return 300 * 90;
}, (store) => readPages(store, 100));

await run("direct among 50 fixed pairs, 15 messages per append", async (store) => {
  let k = 0;
  for (let b = 0; b < 2000; b++) {
    const batch: AppendRequest[] = [];
    for (let j = 0; j < 15; j++, k++) {
      const a = (k * 7) % 100, c = a % 2 === 0 ? a + 1 : a - 1;
      const conv = a < c ? `d:u_${a}:u_${c}` : `d:u_${c}:u_${a}`;
      batch.push(request(conv, `u_${a}`, [`u_${a}`, `u_${c}`]));
    }
    await store.append(batch);
  }
  return 2000 * 15;
});
