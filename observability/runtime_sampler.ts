/**
 * Samples what a node's process looks like once per interval: event-loop lag, CPU use, and the
 * per-second rate of any counters it is given (e.g. messages stored).
 *
 * Event-loop lag is how late a timer fires compared with when it was due: a busy loop (long
 * synchronous work, GC pauses) shows up here before anything else. CPU is the process's user +
 * system time over wall time (1.0 = one core busy). Readings are of the last interval; `stop()`
 * clears the timer (the sampler never keeps a process alive: its timer is unref'd).
 *
 * @module
 */
import process from "node:process";

/** The latest readings. */
export interface RuntimeSample {
  /** Event-loop lag of the last interval, ms (the worst of its ticks). */
  eventLoopLagMs: number;
  /** CPU time over wall time in the last interval (1 = one core). */
  cpu: number;
  /** Per-second rates of the tracked counters over the last interval. */
  rates: Record<string, number>;
  /** Resident memory, bytes. */
  rssBytes: number;
  /** V8 heap in use, bytes. */
  heapUsedBytes: number;
}

/** Samples event-loop lag, CPU and counter rates. */
export class RuntimeSampler {
  readonly #intervalMs: number;
  readonly #counters: Record<string, () => number>;
  #timer: ReturnType<typeof setInterval> | undefined;
  #expected = 0;
  #worstLag = 0;
  #lastCpu = process.cpuUsage();
  #lastWall = performance.now();
  #lastCounts: Record<string, number> = {};
  #sample: RuntimeSample = {
    eventLoopLagMs: 0,
    cpu: 0,
    rates: {},
    rssBytes: 0,
    heapUsedBytes: 0,
  };
  #ticks = 0;

  /**
   * `counters`: name → current value of a growing counter; their rates appear in `rates`.
   * The lag is measured every `tickMs`; CPU and rates every `ticksPerSample` ticks.
   */
  constructor(
    counters: Record<string, () => number> = {},
    options: { tickMs?: number; ticksPerSample?: number } = {},
  ) {
    this.#counters = counters;
    this.#intervalMs = options.tickMs ?? 250;
    this.#ticksPerSample = options.ticksPerSample ?? 4;
    for (const [k, read] of Object.entries(counters)) this.#lastCounts[k] = read();
  }
  readonly #ticksPerSample: number;

  /** Starts sampling (idempotent). */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#expected = performance.now() + this.#intervalMs;
    this.#timer = setInterval(() => this.#tick(), this.#intervalMs);
    Deno.unrefTimer(this.#timer as unknown as number);
  }

  /** Stops sampling. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** The latest readings (memory is read now). */
  read(): RuntimeSample {
    const mem = Deno.memoryUsage();
    return { ...this.#sample, rssBytes: mem.rss, heapUsedBytes: mem.heapUsed };
  }

  #tick(): void {
    const now = performance.now();
    this.#worstLag = Math.max(this.#worstLag, Math.max(0, now - this.#expected));
    this.#expected = now + this.#intervalMs;
    if (++this.#ticks < this.#ticksPerSample) return;
    this.#ticks = 0;
    const wallMs = now - this.#lastWall;
    const cpu = process.cpuUsage(this.#lastCpu);
    const rates: Record<string, number> = {};
    for (const [k, read] of Object.entries(this.#counters)) {
      const v = read();
      rates[k] = wallMs > 0 ? ((v - (this.#lastCounts[k] ?? 0)) * 1000) / wallMs : 0;
      this.#lastCounts[k] = v;
    }
    this.#sample = {
      ...this.#sample,
      eventLoopLagMs: this.#worstLag,
      cpu: wallMs > 0 ? (cpu.user + cpu.system) / 1000 / wallMs : 0,
      rates,
    };
    this.#worstLag = 0;
    this.#lastCpu = process.cpuUsage();
    this.#lastWall = now;
  }
}
