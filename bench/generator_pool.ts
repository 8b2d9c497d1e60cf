/**
 * The orchestrator's side of the load generators: starts `bench/generator.ts` processes and
 * talks to them with JSON lines (see that file for the commands).
 *
 * @module
 */

const GENERATOR = new URL("./generator.ts", import.meta.url).pathname;

/** One generator process. */
export class Generator {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #nextId = 1;
  #waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #stderr = "";
  readonly exited: Promise<Deno.CommandStatus>;

  constructor(readonly index: number) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", GENERATOR],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#writer = this.#child.stdin.getWriter();
    this.exited = this.#child.status;
    this.#readReplies();
    (async () => {
      const dec = new TextDecoder();
      for await (const chunk of child.stderr) {
        this.#stderr = (this.#stderr + dec.decode(chunk)).slice(-20_000);
      }
    })();
    this.exited.then((s) => {
      for (const w of this.#waiting.values()) {
        w.reject(new Error(`generator ${index} exited (${s.code}): ${this.#stderr.slice(-2000)}`));
      }
      this.#waiting.clear();
    });
  }

  /** Process id (for CPU accounting). */
  get pid(): number {
    return this.#child.pid;
  }

  async #readReplies(): Promise<void> {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of this.#child.stdout) {
      buf += dec.decode(chunk, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.trim()) continue;
        const msg = JSON.parse(line);
        const w = this.#waiting.get(msg.re);
        if (!w) continue;
        this.#waiting.delete(msg.re);
        if (msg.error) w.reject(new Error(`generator ${this.index}: ${msg.error}`));
        else w.resolve(msg);
      }
    }
  }

  /** Sends a command and resolves with its answer. */
  call<T = Record<string, unknown>>(cmd: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.#nextId++;
    const p = new Promise<T>((resolve, reject) => {
      this.#waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
    });
    const line = JSON.stringify({ id, cmd, ...params }) + "\n";
    this.#writer.write(new TextEncoder().encode(line)).catch(() => {});
    return p;
  }

  /** Asks the process to exit, and kills it if it has not after 5 s. */
  async stop(): Promise<void> {
    this.call("exit").catch(() => {});
    const t = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 5_000);
    await this.exited;
    clearTimeout(t);
    await this.#writer.close().catch(() => {});
  }
}

/** A set of generator processes. */
export class GeneratorPool {
  readonly gens: Generator[];
  constructor(n: number) {
    this.gens = Array.from({ length: n }, (_, i) => new Generator(i));
  }

  /** Process ids of every generator. */
  get pids(): number[] {
    return this.gens.map((g) => g.pid);
  }

  /** Which generator holds client `key` (clients are spread round-robin). */
  genOf(key: number): Generator {
    return this.gens[key % this.gens.length];
  }

  /** Stops every generator. */
  async stop(): Promise<void> {
    await Promise.all(this.gens.map((g) => g.stop()));
  }
}
