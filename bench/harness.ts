/**
 * What every scenario uses: a deployment (a system under test with its processes), accounts,
 * connected clients spread over the generators, and one measured load phase (rates, latency
 * histograms merged over generators, CPU of every process over the measured window).
 *
 * @module
 */
import { GeneratorPool } from "./generator_pool.ts";
import { type LatencySummary, mergeEncoded } from "./histogram.ts";
import type { ClientSpec, SystemKind, Target } from "./load_clients.ts";
import { CpuMeter, type CpuUsage, type MeteredProcess, rssBytes } from "./proc_stat.ts";
import { postgresBackendPids, type ServerProcess } from "./systems.ts";

/** Sizes and durations of one benchmark run (`--quick` shrinks them). */
export interface Sizes {
  quick: boolean;
  /** Length of a measured load phase, ms (the warm-up is part of it). */
  durationMs: number;
  warmupMs: number;
  drainMs: number;
  directPairs: number;
  groupSizes: number[];
  /** Users connected for the fan-out runs (at least the largest group). */
  fanoutPool: number;
  idleOneNode: number;
  idleCluster: number;
  clusterPairs: number;
  failoverPairs: number;
  slowGroupSize: number;
  slowGroups: number;
  generators: number;
}

/** Writes a progress line to stderr. */
export function log(msg: string): void {
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

/** A system under test: its kind, its server processes and the services it uses. */
export interface Deployment {
  /** Label in the report (e.g. "ours (SQLite)"). */
  label: string;
  kind: SystemKind;
  servers: ServerProcess[];
  /** Other processes to meter: Redis, NATS (role → pid). */
  extra: MeteredProcess[];
  /** Postgres database whose backends are metered. */
  pgDatabase?: string;
}

/** An account usable by a client. */
export interface Account {
  userId: string;
  token: string;
}

/** Creates `n` accounts: registered and logged in on ours, synthetic on the baselines. */
export async function accounts(
  dep: Deployment,
  pool: GeneratorPool,
  n: number,
  prefix: string,
): Promise<Account[]> {
  if (dep.kind !== "im") {
    return Array.from(
      { length: n },
      (_, i) => ({ userId: `${prefix}${i}`, token: `${prefix}${i}` }),
    );
  }
  const names = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  const parts = pool.gens.map((_, g) => names.filter((_, i) => i % pool.gens.length === g));
  const answers = await Promise.all(
    pool.gens.map((gen, g) =>
      gen.call<{ users: Account[] }>("signup", {
        base: dep.servers[g % dep.servers.length].url,
        names: parts[g],
        password: "bench-password-1",
        concurrency: 16,
      })
    ),
  );
  const out: Account[] = new Array(n);
  answers.forEach((a, g) => a.users.forEach((u, j) => out[j * pool.gens.length + g] = u));
  return out;
}

/** A client to open: `key` decides the generator (key % generators). */
export interface ClientPlan {
  key: number;
  account: Account;
  /** Server index in the deployment. */
  server: number;
  rooms?: string[];
}

/**
 * Opens the clients on their generators; throws when more than `maxFailures` fail. Returns how
 * many failed (and the first error) when that many are tolerated.
 */
export async function connectClients(
  dep: Deployment,
  pool: GeneratorPool,
  plans: ClientPlan[],
  concurrency = 32,
  maxFailures = 0,
): Promise<{ failed: number; firstError: string }> {
  const byGen = pool.gens.map(() => [] as ClientSpec[]);
  for (const p of plans) {
    byGen[p.key % pool.gens.length].push({
      key: p.key,
      url: dep.servers[p.server].url,
      user: p.account.userId,
      token: p.account.token,
      rooms: p.rooms,
    });
  }
  const res = await Promise.all(
    pool.gens.map((g, i) =>
      byGen[i].length
        ? g.call<{ connected: number; failed: number; firstError: string }>("connect", {
          system: dep.kind,
          clients: byGen[i],
          concurrency,
        })
        : Promise.resolve({ connected: 0, failed: 0, firstError: "" })
    ),
  );
  const failed = res.reduce((n, r) => n + r.failed, 0);
  const firstError = res.find((r) => r.firstError)?.firstError ?? "";
  if (failed > maxFailures) {
    throw new Error(
      `${failed} of ${plans.length} clients failed to connect: ${
        res.find((r) => r.firstError)?.firstError
      }`,
    );
  }
  return { failed, firstError };
}

/** Closes every client of every generator. */
export async function closeClients(pool: GeneratorPool): Promise<void> {
  await Promise.all(pool.gens.map((g) => g.call("close")));
}

/** Sends one request frame through client `key` and returns the answer. */
export async function request(
  pool: GeneratorPool,
  key: number,
  frame: Record<string, unknown>,
  timeoutMs = 30_000,
): Promise<Record<string, unknown>> {
  const r = await pool.genOf(key).call<{ frame: Record<string, unknown> }>("request", {
    key,
    frame,
    timeoutMs,
  });
  return r.frame;
}

/** What one load phase measured (over its window, warm-up excluded). */
export interface LoadResult {
  mode: "open" | "closed";
  /** Offered sends/s (open loop) — what was scheduled in the window per second. */
  offered: number;
  /** Sends answered `ok` per second (by scheduled time in the window). */
  okPerSec: number;
  /** `msg` frames received per second (all recipients, sender's own devices included). */
  deliveriesPerSec: number;
  okLatency: LatencySummary;
  deliveryLatency: LatencySummary;
  errors: Record<string, number>;
  skipped: number;
  unanswered: number;
  /** CPU ms per role over the window, plus `wallMs`. */
  cpu: CpuUsage;
  windowSec: number;
  /** Closed loop: outstanding sends per sender. */
  window?: number;
  /** Failover mode: every ok (sender index, last attempt at, ok at, mid, conv). */
  oks?: Array<[number, number, number, string, string]>;
}

/** Parameters of a load phase. */
export interface LoadPlan {
  mode: "open" | "closed";
  /** Open loop: total sends/s over all senders. */
  rate?: number;
  /** Closed loop: outstanding sends per sender. */
  window?: number;
  senders: Array<{ key: number; to: Target }>;
  durationMs: number;
  warmupMs: number;
  drainMs: number;
  textBytes?: number;
  retry?: boolean;
  /** Called once the measured window has started (e.g. to kill a node). */
  during?: (startAt: number) => Promise<void>;
}

/** The processes metered for `dep` plus the generators. */
export async function meteredProcesses(
  dep: Deployment,
  pool: GeneratorPool,
): Promise<MeteredProcess[]> {
  const list: MeteredProcess[] = [
    ...dep.servers.map((s) => ({ role: "server", pid: s.pid })),
    ...dep.extra,
    ...pool.pids.map((pid) => ({ role: "generator", pid })),
  ];
  if (dep.pgDatabase) {
    for (const pid of await postgresBackendPids(dep.pgDatabase)) {
      list.push({ role: "postgres", pid });
    }
  }
  return list;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** Runs one load phase on every generator at once and merges what they measured. */
export async function runLoad(
  dep: Deployment,
  pool: GeneratorPool,
  plan: LoadPlan,
): Promise<LoadResult> {
  const n = pool.gens.length;
  const sendersOf = pool.gens.map((_, g) => plan.senders.filter((s) => s.key % n === g));
  const total = plan.senders.length;
  const startAt = performance.timeOrigin + performance.now() + 250;
  let processes = await meteredProcesses(dep, pool);
  const meter = new CpuMeter(() => processes);
  const text = "x".repeat(plan.textBytes ?? 32);
  const answers = pool.gens.map((g, i) =>
    g.call<Record<string, unknown>>("load", {
      mode: plan.mode,
      startAt,
      durationMs: plan.durationMs,
      warmupMs: plan.warmupMs,
      drainMs: plan.drainMs,
      rate: total ? (plan.rate ?? 0) * sendersOf[i].length / total : 0,
      window: plan.window ?? 1,
      senders: sendersOf[i],
      text,
      maxOutstanding: 50_000,
      retry: plan.retry ?? false,
    })
  );
  const wall = () => performance.timeOrigin + performance.now();
  await sleep(startAt + plan.warmupMs - wall());
  meter.start();
  const during = plan.during?.(startAt);
  // Refresh the Postgres backend list mid-window (the pool may open connections under load).
  await sleep((startAt + plan.durationMs - wall()) / 2);
  if (dep.pgDatabase) processes = await meteredProcesses(dep, pool);
  meter.sample();
  await sleep(startAt + plan.durationMs - wall());
  const cpu = meter.stop();
  const res = await Promise.all(answers);
  await during;
  const sum = (k: string) => res.reduce((a, r) => a + (r[k] as number), 0);
  const windowSec = (plan.durationMs - plan.warmupMs) / 1000;
  const errors: Record<string, number> = {};
  for (const r of res) {
    for (const [k, v] of Object.entries(r.errors as Record<string, number>)) {
      errors[k] = (errors[k] ?? 0) + v;
    }
  }
  return {
    mode: plan.mode,
    ...(plan.mode === "closed" ? { window: plan.window ?? 1 } : {}),
    offered: sum("sentInWindow") / windowSec,
    okPerSec: sum("okInWindow") / windowSec,
    deliveriesPerSec: sum("recvInWindow") / windowSec,
    okLatency: mergeEncoded(res.map((r) => r.okHist as string)).summary(),
    deliveryLatency: mergeEncoded(res.map((r) => r.recvHist as string)).summary(),
    errors,
    skipped: sum("skipped"),
    unanswered: sum("unanswered"),
    cpu,
    windowSec,
    oks: plan.retry
      ? res.flatMap((r, g) =>
        (r.oks as Array<[number, number, number, string, string]>).map((o) =>
          [sendersOf[g][o[0]].key, o[1], o[2], o[3], o[4]] as [
            number,
            number,
            number,
            string,
            string,
          ]
        )
      )
      : undefined,
  };
}

/**
 * How {@link saturate} searches: at most `doublings` doublings of the window; one that raises
 * deliveries/s above the best so far by `gain` or more earns another, and the search stops after
 * `patience` doublings in a row that do not.
 */
export const SATURATION_SEARCH = { doublings: 3, gain: 0.1, patience: 2 };

/**
 * Runs `measure` at `start`, then at doubled windows as {@link SATURATION_SEARCH} says, and
 * returns the phase with the most deliveries/s. One phase that gains little (a noisy phase, or a
 * system between two batch sizes) does not end the search: it takes `patience` in a row.
 */
export async function searchWindow<R extends { deliveriesPerSec: number }>(
  start: number,
  measure: (window: number) => Promise<R>,
  search = SATURATION_SEARCH,
): Promise<R> {
  let best = await measure(start);
  let misses = 0;
  for (let i = 1, window = start * 2; i <= search.doublings; i++, window *= 2) {
    const next = await measure(window);
    const gained = next.deliveriesPerSec >= best.deliveriesPerSec * (1 + search.gain);
    if (next.deliveriesPerSec > best.deliveriesPerSec) best = next;
    misses = gained ? 0 : misses + 1;
    if (misses >= search.patience) break;
  }
  return best;
}

/**
 * The maximum rate `dep` sustains, closed loop: a phase at `plan.window` outstanding sends per
 * sender, then at doubled windows ({@link searchWindow}). A system that batches (ours) answers
 * each send later but more per round trip, so a window that saturates one system can leave
 * another idle: each system gets the window that shows its own maximum. The best phase is
 * returned (its `window` says which).
 */
export function saturate(
  dep: Deployment,
  pool: GeneratorPool,
  plan: LoadPlan & { mode: "closed"; window: number },
  search = SATURATION_SEARCH,
): Promise<LoadResult> {
  return searchWindow(plan.window, (window) => runLoad(dep, pool, { ...plan, window }), search);
}

/**
 * An unmeasured closed-loop burst, one outstanding send per sender: activates the actors and
 * warms the code paths, so the measured phases that follow do not pay first-use costs.
 */
export async function prime(
  dep: Deployment,
  pool: GeneratorPool,
  senders: LoadPlan["senders"],
  quick = false,
): Promise<void> {
  await runLoad(dep, pool, {
    mode: "closed",
    window: 1,
    senders,
    durationMs: quick ? 300 : 600,
    warmupMs: 0,
    drainMs: 2000,
  });
}

/** Sum of the servers' resident memory, bytes. */
export function serverRss(dep: Deployment): number {
  return dep.servers.reduce((n, s) => n + (rssBytes(s.pid) ?? 0), 0);
}

/** CPU µs of the servers (and of everything but generators) per delivered message. */
export function cpuPerDelivery(r: LoadResult): { server: number; all: number } {
  const deliveries = r.deliveriesPerSec * r.windowSec;
  if (deliveries === 0) return { server: 0, all: 0 };
  const server = r.cpu.server ?? 0;
  const all = server + (r.cpu.redis ?? 0) + (r.cpu.nats ?? 0) + (r.cpu.postgres ?? 0);
  return { server: (server * 1000) / deliveries, all: (all * 1000) / deliveries };
}

/** Starts a generator pool of `n` processes. */
export function generators(n: number): GeneratorPool {
  return new GeneratorPool(n);
}

/** Waits `ms`. */
export { sleep };
