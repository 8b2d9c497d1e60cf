/**
 * Private Redis and NATS server processes for tests that stop or restart a dependency (the
 * machine's shared services must never be restarted by a test).
 *
 * Each server listens on a free loopback port, is ready (answers) when the promise resolves,
 * and is killed by its pid on `stop()`. `restart()` stops it and starts a new process on the
 * same port, so clients configured with the old url can reconnect.
 *
 * @module
 */

/** A private redis-server. */
export interface RedisService {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** The current process id (changes on restart). */
  readonly pid: number;
  /** Kills the server and waits until it has exited. */
  stop(): Promise<void>;
  /** Stops the server (if running) and starts a fresh one (empty data) on the same port. */
  restart(): Promise<void>;
}

/** A private nats-server. */
export interface NatsService {
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** The current process id (changes on restart). */
  readonly pid: number;
  /** Kills the server and waits until it has exited. */
  stop(): Promise<void>;
  /** Stops the server (if running) and starts a fresh one on the same port. */
  restart(): Promise<void>;
}

/** A port that was free a moment ago (the OS picks it). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `probe` succeeds or the process exits or the time runs out. */
async function waitReady(
  what: string,
  child: Deno.ChildProcess,
  probe: () => Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  let exited = false;
  child.status.then(() => exited = true);
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (exited) throw new Error(`${what} exited during start-up`);
    if (await probe()) return;
    await sleep(25);
  }
  throw new Error(`${what} did not answer within ${timeoutMs} ms`);
}

/** Sends `send` to 127.0.0.1:port and resolves whether the answer contains `expect`. */
async function answers(port: number, send: string, expect: string): Promise<boolean> {
  let conn: Deno.TcpConn | undefined;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    if (send) await conn.write(new TextEncoder().encode(send));
    const buf = new Uint8Array(4096);
    let text = "";
    const end = Date.now() + 1_000;
    while (!text.includes(expect) && Date.now() < end) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return text.includes(expect);
  } catch {
    // Connection refused: the server is not listening yet.
    return false;
  } finally {
    conn?.close();
  }
}

/** A child process that can be stopped and started again on one port. */
class Managed {
  #child: Deno.ChildProcess | null = null;
  constructor(
    readonly name: string,
    readonly port: number,
    readonly spawn: () => Deno.ChildProcess,
    readonly probe: () => Promise<boolean>,
  ) {}

  get pid(): number {
    return this.#child?.pid ?? -1;
  }

  async start(): Promise<void> {
    const child = this.spawn();
    this.#child = child;
    try {
      await waitReady(`${this.name} on port ${this.port}`, child, this.probe);
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = null;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited: nothing to kill.
    }
    await child.status;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }
}

/** Starts a private redis-server (no persistence) on a free port. */
export async function startRedis(): Promise<RedisService> {
  const port = freePort();
  const m = new Managed(
    "redis-server",
    port,
    () =>
      new Deno.Command("redis-server", {
        args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn(),
    () => answers(port, "PING\r\n", "+PONG"),
  );
  await m.start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return m.pid;
    },
    stop: () => m.stop(),
    restart: () => m.restart(),
  };
}

/** Starts a private nats-server on a free port. */
export async function startNats(): Promise<NatsService> {
  const port = freePort();
  const m = new Managed(
    "nats-server",
    port,
    () =>
      new Deno.Command("nats-server", {
        args: ["-a", "127.0.0.1", "-p", String(port)],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn(),
    () => answers(port, "", "INFO "),
  );
  await m.start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    get pid() {
      return m.pid;
    },
    stop: () => m.stop(),
    restart: () => m.restart(),
  };
}
