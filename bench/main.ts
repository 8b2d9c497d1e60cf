/**
 * `deno task bench [--quick] [--only=1,2,...] [--groups=10,1000] [--out=FILE] [--cpu-prof=DIR]
 * [--render=RESULTS.json] [--systems=sqlite,bare]`
 *
 * Runs the benchmark scenarios against our server and the two baselines side by side in one run
 * and writes docs/benchmarks.md (or FILE). `--quick` uses small sizes and short windows (under
 * 90 s; for working on the harness — its numbers are not for claims) and writes only to `--out`
 * when given. `--only` picks scenarios (1 direct, 2 fan-out, 3 idle memory, 4 cluster,
 * 5 failover, 6 slow consumers); `--groups` picks the fan-out group sizes; `--systems` runs
 * scenarios 1, 2 and 6 only on the systems whose label holds one of the words. `--cpu-prof=DIR`
 * runs our single node with `--cpu-prof`.
 * Every run leaves its raw results in bench/.scratch/last_results.json; `--render=FILE` writes
 * the report again from such a file without measuring (after a change to the report's layout).
 *
 * Only loopback addresses are used; every load phase is bounded in count and time; every
 * process started here is stopped by its pid at the end.
 *
 * @module
 */
import {
  type Account,
  accounts,
  closeClients,
  type Deployment,
  generators,
  log,
  type Sizes,
} from "./harness.ts";
import type { GeneratorPool } from "./generator_pool.ts";
import { keptNotes, renderReport, type RunResults } from "./report.ts";
import { directScenario } from "./scenarios/direct.ts";
import { fanoutScenario } from "./scenarios/fanout.ts";
import { idleScenario } from "./scenarios/idle.ts";
import { clusterScenario } from "./scenarios/cluster.ts";
import { failoverScenario } from "./scenarios/failover.ts";
import { slowScenario } from "./scenarios/slow.ts";
import {
  BENCH_JWT_SECRET,
  machine,
  nodeEnv,
  type ServerProcess,
  Services,
  startBare,
  startOurNode,
  startSio,
  versions,
} from "./systems.ts";

/** Sizes of a full run and of `--quick`. */
export function sizesFor(quick: boolean): Sizes {
  return quick
    ? {
      quick,
      durationMs: 800,
      warmupMs: 200,
      drainMs: 300,
      directPairs: 10,
      groupSizes: [10, 100],
      fanoutPool: 100,
      idleOneNode: 200,
      idleCluster: 300,
      clusterPairs: 24,
      failoverPairs: 24,
      slowGroupSize: 40,
      slowGroups: 1,
      generators: 2,
    }
    : {
      quick,
      durationMs: 5000,
      warmupMs: 1000,
      drainMs: 2000,
      directPairs: 50,
      groupSizes: [10, 100, 1000, 10_000],
      fanoutPool: 10_000,
      idleOneNode: 10_000,
      idleCluster: 50_000,
      clusterPairs: 60,
      failoverPairs: 60,
      slowGroupSize: 100,
      slowGroups: 1,
      generators: 2,
    };
}

/** Generators needed to hold `connections` sockets (at most ~9,000 each). */
function gensFor(connections: number, min: number): number {
  return Math.max(min, Math.ceil(connections / 9000));
}

interface Args {
  quick: boolean;
  only: Set<number>;
  out?: string;
  cpuProf?: string;
  /** Re-render the report from a results file of an earlier run (no measuring). */
  render?: string;
  /** Group sizes of the fan-out scenario (overrides the run's sizes; for working on one size). */
  groups?: number[];
  /** Only the single-node systems whose label contains one of these (for working on one). */
  systems?: string[];
}

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, only: new Set([1, 2, 3, 4, 5, 6]) };
  for (const arg of argv) {
    if (arg === "--quick") a.quick = true;
    else if (arg.startsWith("--only=")) a.only = new Set(arg.slice(7).split(",").map(Number));
    else if (arg.startsWith("--out=")) a.out = arg.slice(6);
    else if (arg.startsWith("--cpu-prof=")) a.cpuProf = arg.slice(11);
    else if (arg.startsWith("--render=")) a.render = arg.slice(9);
    else if (arg.startsWith("--groups=")) a.groups = arg.slice(9).split(",").map(Number);
    else if (arg.startsWith("--systems=")) a.systems = arg.slice(10).toLowerCase().split(",");
    else throw new Error(`Unknown argument "${arg}" (see bench/main.ts)`);
  }
  return a;
}

/** Where every run leaves its raw results (for `--render`). */
const RESULTS_FILE = new URL("./.scratch/last_results.json", import.meta.url).pathname;
const REPORT_FILE = new URL("../docs/benchmarks.md", import.meta.url).pathname;

async function writeReport(results: RunResults, out: string): Promise<void> {
  let existing: string | null = null;
  try {
    existing = await Deno.readTextFile(out);
  } catch { /* first run */ }
  await Deno.writeTextFile(out, renderReport(results, keptNotes(existing)));
}

async function main(): Promise<void> {
  const args = parseArgs(Deno.args);
  if (args.render) {
    const results = JSON.parse(await Deno.readTextFile(args.render)) as RunResults;
    const out = args.out ?? REPORT_FILE;
    await writeReport(results, out);
    log(`re-rendered ${out} from ${args.render}`);
    return;
  }
  const sizes = sizesFor(args.quick);
  if (args.groups) sizes.groupSizes = args.groups;
  const started = Date.now();
  const tag = Math.random().toString(36).slice(2, 6);
  const services = new Services();
  await services.start();
  const running: ServerProcess[] = [];
  const dataDirs: string[] = [];
  /** A fresh data directory for one node (removed at the end). */
  const dataDir = () => {
    const dir = Deno.makeTempDirSync({ prefix: "bench_" });
    dataDirs.push(dir);
    return dir;
  };
  const pools: GeneratorPool[] = [];
  const env = nodeEnv();
  const results: RunResults = {
    command: `deno task bench ${Deno.args.join(" ")}`.trim(),
    startedAt: new Date().toISOString().slice(0, 16).replace("T", " ") + " UTC",
    durationSec: 0,
    quick: args.quick,
    machine: machine(),
    load: Deno.loadavg().map((x) => x.toFixed(2)).join(", "),
    versions: { ...(await versions()), "socket.io": "4.8.4", "@socket.io/redis-adapter": "8.3.0" },
    nodeEnv: env,
    direct: [],
    fanout: [],
    idle: [],
    cluster: [],
    failures: [],
  };
  const redisExtra = () => [{ role: "redis", pid: services.redis.pid }];
  // Ctrl-C / SIGTERM: stop every process this run started (by pid), then exit.
  const abort = () => {
    log("interrupted: stopping every process of this run");
    // Calls waiting on the generators fail as they die: nothing left to report.
    globalThis.addEventListener("unhandledrejection", (e) => e.preventDefault());
    for (const srv of running) srv.kill("SIGKILL");
    for (const p of pools) {
      for (const pid of p.pids) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* already gone */ }
      }
    }
    services.stop().finally(() => {
      for (const dir of dataDirs) {
        try {
          Deno.removeSync(dir, { recursive: true });
        } catch { /* already gone */ }
      }
      Deno.exit(130);
    });
  };
  Deno.addSignalListener("SIGINT", abort);
  Deno.addSignalListener("SIGTERM", abort);
  const attempt = async (what: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      log(`FAILED ${what}: ${(err as Error).stack}`);
      results.failures.push(`${what}: ${(err as Error).message.split("\n")[0]}`);
      for (const p of pools) await closeClients(p).catch(() => {});
    }
  };
  const start = async (f: () => Promise<ServerProcess>) => {
    const s = await f();
    running.push(s);
    return s;
  };
  const stop = async (s: ServerProcess) => {
    await s.stop();
    running.splice(running.indexOf(s), 1);
  };
  const newPool = (n: number) => {
    const p = generators(n);
    pools.push(p);
    return p;
  };
  const stopPool = async (p: GeneratorPool) => {
    await p.stop();
    pools.splice(pools.indexOf(p), 1);
  };

  try {
    // ---- One server process: scenarios 1, 2, 6 and 3 (one node).
    const pool = newPool(gensFor(sizes.fanoutPool, sizes.generators));
    const single: Array<{ label: string; make: () => Promise<Deployment> }> = [
      {
        label: "ours (SQLite)",
        make: async () => ({
          label: "ours (SQLite)",
          kind: "im",
          servers: [
            await start(() =>
              startOurNode(
                { ...env, DATA_DIR: dataDir() },
                args.cpuProf,
              )
            ),
          ],
          extra: [],
        }),
      },
      {
        label: "ours (Postgres)",
        make: async () => {
          const db = await services.database();
          return {
            label: "ours (Postgres)",
            kind: "im",
            servers: [
              await start(() =>
                startOurNode(
                  { ...env, DATA_DIR: dataDir(), DATABASE_URL: db.url },
                  args.cpuProf,
                )
              ),
            ],
            extra: [],
            pgDatabase: db.name,
          };
        },
      },
      {
        label: "limit (bare Deno)",
        make: async () => ({
          label: "limit (bare Deno)",
          kind: "bare",
          servers: [await start(startBare)],
          extra: [],
        }),
      },
      {
        label: "peer (Socket.IO)",
        make: async () => ({
          label: "peer (Socket.IO)",
          kind: "sio",
          servers: [await start(() => startSio(services.redis.url, `sio${tag}a`))],
          extra: redisExtra(),
        }),
      },
    ];
    if ([1, 2, 6].some((s) => args.only.has(s))) {
      for (const sys of single) {
        const label = sys.label.toLowerCase();
        if (args.systems && !args.systems.some((s) => label.includes(s))) continue;
        const isPg = sys.label === "ours (Postgres)";
        const wanted = args.only.has(1) || (args.only.has(2) && !(isPg && sizes.quick)) ||
          (args.only.has(6) && isPg);
        if (!wanted) continue;
        let dep: Deployment | undefined;
        await attempt(`start ${sys.label}`, async () => {
          dep = await sys.make();
        });
        if (!dep) continue;
        const d = dep;
        if (args.only.has(1)) {
          await attempt(`1 direct ${sys.label}`, async () => {
            results.direct.push(await directScenario(d, pool, sizes, tag));
          });
        }
        if (args.only.has(2)) {
          // Postgres: the 1,000-member group only (the store comparison), to bound the run time.
          const only = sys.label === "ours (Postgres)" ? (sizes.quick ? [] : [1000]) : undefined;
          if (!only || only.length > 0) {
            await attempt(`2 fan-out ${sys.label}`, async () => {
              results.fanout.push(...await fanoutScenario(d, pool, sizes, tag, only));
            });
          }
        }
        // Slow consumers on the Postgres store: its commits do not hold the event loop, so the
        // node can push enough bytes for stalled sockets to reach the shedding limit in the run.
        if (args.only.has(6) && sys.label === "ours (Postgres)") {
          await attempt("6 slow consumers", async () => {
            results.slow = await slowScenario(d, pool, sizes, tag);
          });
        }
        for (const s of d.servers) await stop(s);
      }
    }
    await stopPool(pool);

    if (args.only.has(3)) {
      const n = sizes.idleOneNode;
      const idlePool = newPool(gensFor(n, 2));
      // Ours: accounts first, then a restart on the same data directory, so the memory measured
      // is that of a fresh process holding the connections (not of the sign-up traffic).
      await attempt("3 idle ours (SQLite)", async () => {
        const dir = dataDir();
        let s = await start(() => startOurNode({ ...env, DATA_DIR: dir }));
        const dep: Deployment = { label: "ours (SQLite)", kind: "im", servers: [s], extra: [] };
        const users = await accounts(dep, idlePool, n, `i${tag}_`);
        if (!sizes.quick) {
          await stop(s);
          s = await start(() => startOurNode({ ...env, DATA_DIR: dir }));
          dep.servers = [s];
        }
        results.idle.push(await idleScenario(dep, idlePool, users, 2000));
        await stop(s);
      });
      for (
        const [label, kind, make] of [
          ["limit (bare Deno)", "bare", startBare],
          ["peer (Socket.IO)", "sio", () => startSio(services.redis.url, `sio${tag}b`)],
        ] as const
      ) {
        await attempt(`3 idle ${label}`, async () => {
          const s = await start(make);
          const dep: Deployment = { label, kind, servers: [s], extra: [] };
          const users = await accounts(dep, idlePool, n, `i${tag}_`);
          results.idle.push(await idleScenario(dep, idlePool, users, 2000));
          await stop(s);
        });
      }
      await stopPool(idlePool);
    }

    // ---- Cluster of 3: scenarios 4, 3 (cluster), 5.
    if ([3, 4, 5].some((s) => args.only.has(s))) {
      const users = Math.max(
        args.only.has(3) ? sizes.idleCluster : 0,
        sizes.clusterPairs * 2,
        sizes.failoverPairs * 2,
      );
      const cpool = newPool(gensFor(users, 2));
      const db = await services.database();
      const prefix = `b${tag}`;
      const clusterEnv = {
        ...env,
        DATABASE_URL: db.url,
        REDIS_URL: services.redis.url,
        NATS_URL: services.nats.url,
        JWT_SECRET: BENCH_JWT_SECRET,
        REDIS_PREFIX: prefix,
        NATS_PREFIX: prefix,
      };
      const startCluster = async () => {
        const nodes = [];
        for (let i = 0; i < 3; i++) {
          nodes.push(
            start(() => startOurNode({ ...clusterEnv, DATA_DIR: dataDir() })),
          );
        }
        return await Promise.all(nodes);
      };
      const dep: Deployment = {
        label: "ours (3 nodes)",
        kind: "im",
        servers: [],
        extra: [...redisExtra(), { role: "nats", pid: services.nats.pid }],
        pgDatabase: db.name,
      };
      let all: Account[] = [];
      await attempt("cluster start", async () => {
        dep.servers = await startCluster();
        log(`cluster up; signing up ${users} users`);
        all = await accounts(dep, cpool, users, `c${tag}_`);
      });
      if (all.length && args.only.has(4)) {
        await attempt("4 cluster ours", async () => {
          results.cluster.push(
            ...await clusterScenario(dep, cpool, sizes, all.slice(0, sizes.clusterPairs * 2)),
          );
        });
      }
      if (all.length && args.only.has(3)) {
        await attempt("3 idle ours (3 nodes)", async () => {
          // A fresh cluster (full runs), so the growth measured is that of the connections.
          if (!sizes.quick) {
            await Promise.all(dep.servers.map(stop));
            dep.servers = await startCluster();
          }
          results.idle.push(await idleScenario(dep, cpool, all.slice(0, sizes.idleCluster), 3000));
        });
      }
      if (all.length && args.only.has(5)) {
        await attempt("5 failover", async () => {
          // A fresh cluster (full runs): the idle scenario's tens of thousands of sessions just
          // closed would otherwise still be winding down on the survivors during the failover.
          if (!sizes.quick) {
            await Promise.all(dep.servers.map(stop));
            dep.servers = await startCluster();
          }
          results.failover = await failoverScenario(
            dep,
            cpool,
            sizes,
            all.slice(0, sizes.failoverPairs * 2),
            services.redis.port,
            `${prefix}:`,
          );
        });
      }
      await Promise.all(dep.servers.filter((s) => running.includes(s)).map(stop));
      // The peer's cluster run is left out of --quick (time).
      if (args.only.has(4) && !sizes.quick) {
        await attempt("4 cluster peer", async () => {
          const servers = [];
          for (let i = 0; i < 3; i++) {
            servers.push(await start(() => startSio(services.redis.url, `sio${tag}c`)));
          }
          const sdep: Deployment = {
            label: "peer (Socket.IO, 3 processes)",
            kind: "sio",
            servers,
            extra: redisExtra(),
          };
          const susers = await accounts(sdep, cpool, sizes.clusterPairs * 2, `c${tag}_`);
          results.cluster.push(...await clusterScenario(sdep, cpool, sizes, susers));
          for (const s of servers) await stop(s);
        });
      }
      await stopPool(cpool);
    }
  } finally {
    for (const s of [...running]) await s.stop().catch(() => {});
    for (const p of [...pools]) await p.stop().catch(() => {});
    await services.stop();
    for (const dir of dataDirs) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }

  results.durationSec = (Date.now() - started) / 1000;
  await Deno.mkdir(new URL("./.scratch/", import.meta.url).pathname, { recursive: true });
  await Deno.writeTextFile(RESULTS_FILE, JSON.stringify(results));
  const out = args.out ?? (args.quick ? undefined : REPORT_FILE);
  if (out) {
    await writeReport(results, out);
    log(`wrote ${out} (${results.durationSec.toFixed(0)} s)`);
  } else {
    console.log(renderReport(results, ""));
    log(
      `done in ${
        results.durationSec.toFixed(0)
      } s (quick mode: report printed, not written; --out=FILE writes it)`,
    );
  }
}

if (import.meta.main) {
  await main();
  Deno.exit(0);
}
