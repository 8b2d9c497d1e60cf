/**
 * `deno run -A bench/sqlite_thread_cost.ts [K ...]`
 *
 * What running the SQLite store on its own thread costs per commit (not part of `deno task
 * bench`): appends of K direct messages among 50 fixed pairs (default K = 1, 8 and 32), 2,000
 * appends one after another, first with the store on this thread (`openSqliteStore`), then on a
 * worker (`openThreadedSqliteStore`, what a node uses), each on a fresh temporary file. Prints
 * the wall time and the CPU time per commit, split by thread (this one, the store's workers,
 * V8's helpers; user + system µs). Bounded: 2 × 2,200 appends per K.
 *
 * @module
 */
import type { AppendRequest, Store } from "../db/store.ts";
import { openSqliteStore } from "../db/store_sqlite.ts";
import { openThreadedSqliteStore } from "../db/store_sqlite_threaded.ts";
import { threadCpuDelta, threadCpuMs } from "./proc_stat.ts";

const sizes = Deno.args.length ? Deno.args.map(Number) : [1, 8, 32];
if (sizes.some((k) => !Number.isInteger(k) || k < 1 || k > 256)) {
  throw new Error("K must be an integer from 1 to 256");
}
const APPENDS = 2000;
const WARMUP = 200;

async function measure(kind: "this thread" | "worker", k: number): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "im_bench_thread_" });
  const path = `${dir}/im.sqlite3`;
  const store: Store = kind === "worker" ? openThreadedSqliteStore(path) : openSqliteStore(path);
  let n = 0;
  const batch = (): AppendRequest[] =>
    Array.from({ length: k }, () => {
      const a = (n % 50) * 2;
      const i = n++;
      return {
        actorId: `direct/u_${a}:u_${a + 1}`,
        epoch: 1,
        mid: `m_${String(i).padStart(10, "0")}`,
        conv: `d:u_${a}:u_${a + 1}`,
        from: `u_${a}`,
        to: { user: `u_${a + 1}` },
        cmid: `c${i}.${(i * 7919) % 10007}`,
        ts: 1_800_000_000_000 + i,
        body: { type: "text", text: "x".repeat(32) },
        recipients: [`u_${a}`, `u_${a + 1}`],
      };
    });
  try {
    await store.migrate();
    for (let i = 0; i < WARMUP; i++) await store.append(batch());
    const before = threadCpuMs(Deno.pid);
    const t0 = performance.now();
    for (let i = 0; i < APPENDS; i++) await store.append(batch());
    const wall = performance.now() - t0;
    const used = threadCpuDelta(before, threadCpuMs(Deno.pid));
    let total = 0;
    const parts: string[] = [];
    for (const [name, c] of used) {
      total += c.user + c.system;
      const us = (ms: number) => (ms * 1000 / APPENDS).toFixed(0);
      parts.push(`${name.trim()} ${us(c.user)}+${us(c.system)}`);
    }
    return `K=${k}, ${kind}: ${(wall * 1000 / APPENDS).toFixed(0)} µs wall, ${
      (total * 1000 / APPENDS).toFixed(0)
    } CPU-µs per commit (${(total * 1000 / APPENDS / k).toFixed(1)} per message): ${
      parts.join(", ")
    }`;
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

for (const k of sizes) {
  console.log(await measure("this thread", k));
  console.log(await measure("worker", k));
}
