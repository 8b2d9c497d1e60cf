/**
 * The systems under test as processes: our node (`main.ts`), the bare Deno baseline and the
 * Socket.IO baseline; and the private services they use (Redis, NATS, a fresh Postgres
 * database), each with its pid for CPU and memory accounting.
 *
 * Every process listens on loopback only, on a free port, and is stopped by its pid.
 *
 * @module
 */
import {
  freePort,
  type NatsService,
  type RedisService,
  startNats,
  startRedis,
} from "../tests/support/services.ts";
import { createTempDatabase, type TempDatabase } from "../tests/support/postgres.ts";
import { adminUrl } from "../tests/support/postgres.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MAIN = `${ROOT}main.ts`;
const BARE = `${ROOT}bench/servers/bare_server.ts`;
const SIO = `${ROOT}bench/servers/sio_server.ts`;

/** The shared JWT secret of benchmark clusters (loopback only, thrown away after the run). */
export const BENCH_JWT_SECRET = "bench-secret-0123456789abcdef0123456789abcdef";

/** A server process. */
export class ServerProcess {
  #child: Deno.ChildProcess;
  #stderr = "";
  readonly exited: Promise<Deno.CommandStatus>;
  /** Our node's id (from its start-up line), "" for the baselines. */
  nodeId = "";

  constructor(
    readonly name: string,
    readonly port: number,
    args: string[],
    env: Record<string, string>,
  ) {
    const child = new Deno.Command(Deno.execPath(), {
      args,
      env: { PORT: String(port), HOST: "127.0.0.1", ...env },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.exited = this.#child.status;
    (async () => {
      const dec = new TextDecoder();
      for await (const chunk of child.stderr) {
        this.#stderr = (this.#stderr + dec.decode(chunk)).slice(-2_000_000);
        const m = /IM node (n_[a-z0-9]+) listening/.exec(this.#stderr);
        if (m) this.nodeId = m[1];
      }
    })();
  }

  get pid(): number {
    return this.#child.pid;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get log(): string {
    return this.#stderr;
  }

  /** Waits until `/healthz` answers 200 (rejects if the process exits or after 60 s). */
  async ready(): Promise<void> {
    let exited = false;
    this.exited.then(() => exited = true);
    const end = Date.now() + 60_000;
    while (Date.now() < end) {
      if (exited) throw new Error(`${this.name} exited at start:\n${this.#stderr.slice(-3000)}`);
      try {
        const r = await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(1000) });
        await r.body?.cancel();
        if (r.status === 200) return;
      } catch { /* not listening yet */ }
      await new Promise((r) => setTimeout(r, 100));
    }
    this.kill("SIGKILL");
    throw new Error(`${this.name} did not become healthy:\n${this.#stderr.slice(-3000)}`);
  }

  kill(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch { /* already exited */ }
  }

  /** SIGTERM, then SIGKILL after `ms`. */
  async stop(ms = 10_000): Promise<void> {
    this.kill("SIGTERM");
    const t = setTimeout(() => this.kill("SIGKILL"), ms);
    await this.exited;
    clearTimeout(t);
  }
}

/** Environment of our node in every benchmark (documented in docs/benchmarks.md). */
export function nodeEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PASSWORD_ITERATIONS: "1000",
    // No rate limits: the generator multiplexes many users' worth of sends per connection/IP.
    RATE_LIMIT_PER_SEC: "1000000",
    USER_RATE_LIMIT_PER_SEC: "1000000",
    MESSAGE_RATE_PER_SEC: "1000000",
    USER_MESSAGE_RATE_PER_SEC: "1000000",
    MAX_UNAUTH_PER_IP: "1000000",
    LOGIN_ATTEMPTS_PER_IP_PER_MIN: "1000000",
    REGISTRATIONS_PER_IP_PER_HOUR: "1000000",
    LOGIN_ATTEMPTS_PER_USER_PER_MIN: "1000000",
    ACCESS_TOKEN_TTL_SEC: "86400",
    GROUP_MAX_MEMBERS: "10001",
    MAX_FRAME_BYTES: "1048576",
    LOG_LEVEL: "warn",
    ...extra,
  };
}

/** Starts one of our nodes. */
export async function startOurNode(
  env: Record<string, string>,
  cpuProf?: string,
): Promise<ServerProcess> {
  const args = ["run", "-A"];
  if (cpuProf) args.push("--cpu-prof", `--cpu-prof-dir=${cpuProf}`);
  args.push(MAIN);
  const s = new ServerProcess("im", freePort(), args, env);
  await s.ready();
  return s;
}

/** Starts the bare Deno baseline. */
export async function startBare(): Promise<ServerProcess> {
  const s = new ServerProcess("bare", freePort(), ["run", "-A", BARE], {});
  await s.ready();
  return s;
}

/** Starts one Socket.IO baseline process. */
export async function startSio(redisUrl: string, prefix: string): Promise<ServerProcess> {
  const s = new ServerProcess("sio", freePort(), ["run", "-A", SIO], {
    REDIS_URL: redisUrl,
    REDIS_PREFIX: prefix,
  });
  await s.ready();
  return s;
}

/** Private Redis and NATS, and fresh Postgres databases, for one benchmark run. */
export class Services {
  redis!: RedisService;
  nats!: NatsService;
  readonly databases: TempDatabase[] = [];

  /** Starts the private Redis and NATS. */
  async start(): Promise<void> {
    this.redis = await startRedis();
    this.nats = await startNats();
  }

  /** A fresh Postgres database (dropped by {@link Services.stop}). */
  async database(): Promise<TempDatabase> {
    const db = await createTempDatabase();
    this.databases.push(db);
    return db;
  }

  /** Stops Redis and NATS, drops the databases. */
  async stop(): Promise<void> {
    for (const db of this.databases) await db.drop().catch(() => {});
    await this.redis?.stop();
    await this.nats?.stop();
  }
}

/** Pids of the Postgres backends serving database `name` right now. */
export async function postgresBackendPids(name: string): Promise<number[]> {
  const out = await new Deno.Command("psql", {
    args: [adminUrl(), "-At", "-c", `SELECT pid FROM pg_stat_activity WHERE datname = '${name}'`],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).map(Number);
}

/** Deno, Node and service versions, for the report. */
export async function versions(): Promise<Record<string, string>> {
  const run = async (cmd: string, args: string[]) => {
    try {
      const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
      return new TextDecoder().decode(o.stdout).split("\n")[0].trim();
    } catch {
      return "n/a";
    }
  };
  return {
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    redis: await run("redis-server", ["--version"]),
    nats: await run("nats-server", ["--version"]),
    postgres: await run("psql", [adminUrl(), "-At", "-c", "SHOW server_version"]),
  };
}

/** CPU model and memory of this machine, for the report. */
export function machine(): string {
  const cpu = /model name\s*:\s*(.+)/.exec(Deno.readTextFileSync("/proc/cpuinfo"))?.[1] ?? "?";
  const mem = Number(/MemTotal:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/meminfo"))?.[1] ?? 0);
  return `${navigator.hardwareConcurrency} × ${cpu}, ${
    (mem / 1048576).toFixed(0)
  } GiB RAM, ${Deno.build.os} ${Deno.osRelease()}`;
}
