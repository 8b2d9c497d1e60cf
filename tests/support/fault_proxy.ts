/**
 * A small TCP fault proxy for tests: listens on a free loopback port and forwards every
 * connection to a target, with a switchable fault mode.
 *
 * Modes:
 * - `pass`: bytes flow both ways unchanged.
 * - `delay`: every chunk is held `delayMs` before it is forwarded (order kept per direction).
 * - `drop`: a blackhole: connections stay open and bytes are read but discarded both ways, so
 *   peers see silence (timeouts), not errors. New connections are accepted and blackholed too.
 * - `cut`: every open connection is closed at once and new ones are closed on accept (peers see
 *   resets/EOF, like a dead server).
 *
 * Switching back to `pass` lets new connections through; connections that were blackholed stay
 * useless (their streams lost bytes), as after a real network fault, so clients must reconnect.
 *
 * @module
 */

/** The fault modes of {@link FaultProxy}. */
export type FaultMode = "pass" | "delay" | "drop" | "cut";

interface Pair {
  client: Deno.TcpConn;
  server: Deno.TcpConn | null;
  /** Blackholed once: the byte stream is broken for good. */
  broken: boolean;
  closed: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A TCP proxy on 127.0.0.1 with fault modes. `close()` stops it and every connection. */
export class FaultProxy {
  #mode: FaultMode = "pass";
  #delayMs = 0;
  readonly #listener: Deno.TcpListener;
  readonly #pairs = new Set<Pair>();
  readonly #accepting: Promise<void>;
  readonly #tasks = new Set<Promise<void>>();
  #closed = false;

  private constructor(readonly targetHost: string, readonly targetPort: number) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#acceptLoop();
  }

  /** Starts a proxy forwarding to `target` (`host:port` or a port on 127.0.0.1). */
  static start(target: { hostname?: string; port: number }): FaultProxy {
    return new FaultProxy(target.hostname ?? "127.0.0.1", target.port);
  }

  /** The port the proxy listens on (127.0.0.1). */
  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  /** The current mode. */
  get mode(): FaultMode {
    return this.#mode;
  }

  /** Connections currently open through the proxy. */
  get connections(): number {
    return this.#pairs.size;
  }

  /** Switches the mode; `delay` takes the delay in ms. `cut` closes every open connection. */
  set(mode: FaultMode, delayMs = 0): void {
    this.#mode = mode;
    this.#delayMs = delayMs;
    if (mode === "cut") { for (const p of this.#pairs) this.#closePair(p); }
    if (mode === "drop") { for (const p of this.#pairs) p.broken = true; }
  }

  /** Rewrites a URL's host and port to go through this proxy (e.g. a DATABASE_URL). */
  wrapUrl(url: string): string {
    const u = new URL(url);
    u.hostname = "127.0.0.1";
    u.port = String(this.port);
    return u.toString();
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#closed) {
      let client: Deno.TcpConn;
      try {
        client = await this.#listener.accept();
      } catch {
        return; // listener closed
      }
      if (this.#mode === "cut") {
        client.close();
        continue;
      }
      const pair: Pair = { client, server: null, broken: this.#mode === "drop", closed: false };
      this.#pairs.add(pair);
      this.#track(this.#connect(pair));
    }
  }

  #track(p: Promise<void>): void {
    this.#tasks.add(p);
    p.finally(() => this.#tasks.delete(p));
  }

  async #connect(pair: Pair): Promise<void> {
    try {
      pair.server = await Deno.connect({ hostname: this.targetHost, port: this.targetPort });
    } catch {
      this.#closePair(pair);
      return;
    }
    if (pair.closed) {
      pair.server.close();
      return;
    }
    this.#track(this.#pump(pair, pair.client, pair.server));
    this.#track(this.#pump(pair, pair.server, pair.client));
  }

  async #pump(pair: Pair, from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    try {
      while (!pair.closed) {
        const n = await from.read(buf);
        if (n === null) break;
        if (pair.broken || this.#mode === "drop") {
          pair.broken = true;
          continue; // blackhole: read and discard
        }
        const chunk = buf.slice(0, n);
        if (this.#mode === "delay" && this.#delayMs > 0) await sleep(this.#delayMs);
        if (pair.closed || pair.broken) continue;
        let off = 0;
        while (off < chunk.length) off += await to.write(chunk.subarray(off));
      }
    } catch {
      // Reset by a peer or closed by a cut: the pair ends.
    }
    this.#closePair(pair);
  }

  #closePair(pair: Pair): void {
    if (pair.closed) return;
    pair.closed = true;
    this.#pairs.delete(pair);
    try {
      pair.client.close();
    } catch { /* already closed */ }
    try {
      pair.server?.close();
    } catch { /* already closed */ }
  }

  /** Stops listening, closes every connection and waits for the pumps to end. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener.close();
    for (const p of this.#pairs) this.#closePair(p);
    await this.#accepting;
    while (this.#tasks.size) await Promise.allSettled([...this.#tasks]);
  }
}
