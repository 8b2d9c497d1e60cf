/**
 * `deno run -A bench/direct_probe.ts [--rates=4000,8000] [--duration=8000] [--system=sqlite]`
 *
 * Scenario 1's direct messages at fixed offered rates, for looking into one system (not part of
 * `deno task bench`): 50 pairs of users on one fresh server, the same generators and open-loop
 * load, then per rate the `ok` latency, the server's CPU per send, and how that CPU splits over
 * the server's threads (main thread, workers: the SQLite writer and checkpointer, V8's helpers),
 * user and system time, from `/proc/<pid>/task` over the measured window. A rate of 0 measures
 * the maximum (closed loop, the window search of `deno task bench`).
 *
 * `--system`: `sqlite` (ours, embedded store; default), `postgres` (ours on a fresh database of
 * the local Postgres), `bare` (the bare Deno echo). Bounded: one phase per rate, each
 * `--duration` ms plus a 2 s drain.
 *
 * @module
 */
import {
  closeClients,
  cpuPerDelivery,
  type Deployment,
  generators,
  type LoadResult,
  prime,
  runLoad,
  saturate,
} from "./harness.ts";
import { type ThreadCpu, threadCpuDelta, threadCpuMs } from "./proc_stat.ts";
import { connectPairs } from "./scenarios/direct.ts";
import { nodeEnv, type ServerProcess, startBare, startOurNode } from "./systems.ts";
import { createTempDatabase, type TempDatabase } from "../tests/support/postgres.ts";

function option(name: string, fallback: string): string {
  const arg = Deno.args.find((a) => a.startsWith(`--${name}=`));
  return arg ? arg.slice(name.length + 3) : fallback;
}

const rates = option("rates", "4000,8000").split(",").map(Number);
const durationMs = Number(option("duration", "8000"));
const system = option("system", "sqlite");
if (!["sqlite", "postgres", "bare"].includes(system)) throw new Error(`unknown --system=${system}`);
if (rates.some((r) => !Number.isFinite(r) || r < 0) || !(durationMs >= 2000)) {
  throw new Error("--rates must be sends/s (0: the maximum), --duration at least 2000 ms");
}

/** "name user+system ms/s" of each thread group over `seconds`, busiest first. */
function threads(used: Map<string, ThreadCpu>, seconds: number): string {
  return [...used].sort((a, b) => b[1].user + b[1].system - a[1].user - a[1].system)
    .map(([name, c]) =>
      `${name.trim() || "?"} ${(c.user / seconds).toFixed(0)}+${(c.system / seconds).toFixed(0)}`
    ).join(", ");
}

const dir = Deno.makeTempDirSync({ prefix: "direct_probe_" });
let db: TempDatabase | undefined;
let server: ServerProcess | undefined;
const pool = generators(2);
try {
  if (system === "bare") server = await startBare();
  else {
    db = system === "postgres" ? await createTempDatabase() : undefined;
    server = await startOurNode(
      nodeEnv({ DATA_DIR: dir, ...(db ? { DATABASE_URL: db.url } : {}) }),
    );
  }
  const dep: Deployment = {
    label: system,
    kind: system === "bare" ? "bare" : "im",
    servers: [server],
    extra: [],
  };
  const senders = await connectPairs(dep, pool, 50, "dp_");
  const phase = { durationMs, warmupMs: 1000, drainMs: 2000 };
  await prime(dep, pool, senders, false);
  console.log(
    `${system}: 50 pairs; per rate: ok/s, ok latency ms p50/p90/p99/max, server CPU-µs per ` +
      `send, threads (user+system CPU-ms per s)`,
  );
  for (const rate of rates) {
    const pid = server.pid;
    // One reading per phase (the maximum's search runs several, doubling the window from 4).
    const used: Map<string, ThreadCpu>[] = [];
    const during = async (startAt: number) => {
      const wait = (until: number) =>
        new Promise((r) =>
          setTimeout(r, Math.max(0, until - performance.timeOrigin - performance.now()))
        );
      await wait(startAt + phase.warmupMs);
      const before = threadCpuMs(pid);
      await wait(startAt + durationMs);
      used.push(threadCpuDelta(before, threadCpuMs(pid)));
    };
    const r: LoadResult = rate === 0
      ? await saturate(dep, pool, { mode: "closed", window: 4, senders, ...phase, during })
      : await runLoad(dep, pool, { mode: "open", rate, senders, ...phase, during });
    const phaseUsed = used[rate === 0 ? Math.log2((r.window ?? 4) / 4) : 0] ?? new Map();
    const l = r.okLatency;
    console.log(
      `${rate === 0 ? `max (window ${r.window})` : rate}: ${r.okPerSec.toFixed(0)} ok/s, ` +
        `${l.p50}/${l.p90}/${l.p99}/${l.max} ms, ${(cpuPerDelivery(r).server * 2).toFixed(1)} ` +
        `CPU-µs/send; ${threads(phaseUsed, (durationMs - phase.warmupMs) / 1000)}` +
        (Object.keys(r.errors).length ? `; errors ${JSON.stringify(r.errors)}` : ""),
    );
  }
  await closeClients(pool);
} finally {
  await pool.stop();
  await server?.stop();
  await db?.drop();
  Deno.removeSync(dir, { recursive: true });
}
