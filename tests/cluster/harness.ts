/**
 * Real node processes for cluster tests: each node is `deno run main.ts` with its own port,
 * sharing a private Redis, a private NATS and a fresh Postgres database.
 *
 * @module
 */

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** A node process. */
export class NodeProcess {
  #child: Deno.ChildProcess;
  #stderr = "";
  readonly exited: Promise<Deno.CommandStatus>;

  private constructor(
    readonly port: number,
    readonly env: Record<string, string>,
    child: Deno.ChildProcess,
  ) {
    this.#child = child;
    this.exited = child.status;
    (async () => {
      const dec = new TextDecoder();
      for await (const chunk of child.stderr) {
        this.#stderr += dec.decode(chunk);
        if (this.#stderr.length > 2_000_000) this.#stderr = this.#stderr.slice(-1_000_000);
      }
    })();
    child.stdout.cancel();
  }

  /** Base URL. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Process id (for SIGSTOP/SIGCONT/SIGKILL). */
  get pid(): number {
    return this.#child.pid;
  }

  /** What the node logged (JSON lines). */
  get log(): string {
    return this.#stderr;
  }

  /**
   * Starts a node and waits until `/healthz` answers 200. Without a DATA_DIR in `env` the node
   * gets a directory of its own (removed when it exits): nodes share nothing on disk, as on
   * separate machines.
   */
  static async start(env: Record<string, string>): Promise<NodeProcess> {
    const port = freePort();
    const ownDir = env.DATA_DIR ? null : Deno.makeTempDirSync({ prefix: "im_node_" });
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN],
      env: {
        PORT: String(port),
        HOST: "127.0.0.1",
        LOG_LEVEL: "info",
        ...(ownDir ? { DATA_DIR: ownDir } : {}),
        ...env,
      },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const node = new NodeProcess(port, env, child);
    if (ownDir) {
      // Synchronous: the removal is done by the time whoever awaits the exit goes on.
      node.exited.finally(() => {
        try {
          Deno.removeSync(ownDir, { recursive: true });
        } catch { /* already gone */ }
      });
    }
    const end = Date.now() + 30_000;
    while (Date.now() < end) {
      try {
        const r = await fetch(`${node.url}/healthz`);
        await r.body?.cancel();
        if (r.status === 200) return node;
      } catch { /* not yet listening */ }
      const exited = await Promise.race([
        node.exited.then(() => true),
        sleep(100).then(() => false),
      ]);
      if (exited) throw new Error(`node exited at start:\n${node.log}`);
    }
    node.kill("SIGKILL");
    throw new Error(`node did not become healthy:\n${node.log}`);
  }

  /** Sends a signal (ignores a process that is gone). */
  kill(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch { /* already exited */ }
  }

  /** SIGTERM and wait for exit (SIGKILL after `ms`). */
  async stop(ms = 15_000): Promise<void> {
    this.kill("SIGTERM");
    const t = setTimeout(() => this.kill("SIGKILL"), ms);
    await this.exited;
    clearTimeout(t);
  }
}

/** A free TCP port on loopback. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
