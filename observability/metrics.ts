/**
 * A small metrics registry rendered in the Prometheus text format at `/metrics`.
 *
 * Counters only grow; gauges are sampled by a callback at scrape time; histograms use fixed
 * buckets. Label values are escaped. Nothing here allocates per observation beyond a map lookup.
 *
 * @module
 */

type Labels = Record<string, string>;

function labelKey(labels?: Labels): string {
  if (!labels) return "";
  const keys = Object.keys(labels);
  // One label (`{op}` on every frame in and out) is the hot case: no sort, no array.
  if (keys.length === 1) return `${keys[0]}="${escapeLabel(labels[keys[0]])}"`;
  keys.sort();
  return keys.map((k) => `${k}="${escapeLabel(labels[k])}"`).join(",");
}

const NEEDS_ESCAPE = /[\\\n"]/;

function escapeLabel(v: string): string {
  if (!NEEDS_ESCAPE.test(v)) return v;
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

/** A monotonically growing counter, optionally labelled. */
export class Counter {
  readonly #values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  /** Adds `n` (default 1). */
  inc(labels?: Labels, n = 1): void {
    const k = labelKey(labels);
    this.#values.set(k, (this.#values.get(k) ?? 0) + n);
  }
  /** The current value for `labels`. */
  get(labels?: Labels): number {
    return this.#values.get(labelKey(labels)) ?? 0;
  }
  /** The values of every label set. */
  values(): IterableIterator<number> {
    return this.#values.values();
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.#values.size === 0) lines.push(`${this.name} 0`);
    for (const [k, v] of this.#values) lines.push(`${this.name}${k ? `{${k}}` : ""} ${v}`);
    return lines.join("\n");
  }
}

/** A gauge read from a callback at scrape time. */
export class Gauge {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly read: () => number | Array<[Labels, number]>,
  ) {}
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    const v = this.read();
    if (typeof v === "number") lines.push(`${this.name} ${v}`);
    else for (const [l, n] of v) lines.push(`${this.name}{${labelKey(l)}} ${n}`);
    return lines.join("\n");
  }
}

/** A histogram with fixed upper bounds (seconds or any unit the name says), optionally labelled. */
export class Histogram {
  readonly #series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {}
  /** Records one observation (in the series of `labels`). */
  observe(value: number, labels?: Labels): void {
    const k = labelKey(labels);
    let s = this.#series.get(k);
    if (!s) {
      s = { counts: new Array(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.#series.set(k, s);
    }
    s.sum += value;
    s.count++;
    for (let i = 0; i < this.buckets.length; i++) {
      if (value <= this.buckets[i]) {
        s.counts[i]++;
        return;
      }
    }
  }
  /** Number of observations (of the series of `labels`). */
  count(labels?: Labels): number {
    return this.#series.get(labelKey(labels))?.count ?? 0;
  }
  /** Sum of the observations (of the series of `labels`). */
  sum(labels?: Labels): number {
    return this.#series.get(labelKey(labels))?.sum ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    const series = this.#series.size ? this.#series : new Map([["", {
      counts: new Array(this.buckets.length).fill(0),
      sum: 0,
      count: 0,
    }]]);
    for (const [k, s] of series) {
      const pre = k ? `${k},` : "";
      const braces = k ? `{${k}}` : "";
      let cumulative = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += s.counts[i];
        lines.push(`${this.name}_bucket{${pre}le="${this.buckets[i]}"} ${cumulative}`);
      }
      lines.push(`${this.name}_bucket{${pre}le="+Inf"} ${s.count}`);
      lines.push(`${this.name}_sum${braces} ${s.sum}`);
      lines.push(`${this.name}_count${braces} ${s.count}`);
    }
    return lines.join("\n");
  }
}

/** Holds every metric of a node and renders them. */
export class MetricsRegistry {
  readonly #metrics: Array<Counter | Gauge | Histogram> = [];
  /** Registers and returns a counter. */
  counter(name: string, help: string): Counter {
    const c = new Counter(name, help);
    this.#metrics.push(c);
    return c;
  }
  /** Registers a gauge sampled at scrape time. */
  gauge(name: string, help: string, read: Gauge["read"]): Gauge {
    const g = new Gauge(name, help, read);
    this.#metrics.push(g);
    return g;
  }
  /** Registers and returns a histogram. */
  histogram(name: string, help: string, buckets: number[]): Histogram {
    const h = new Histogram(name, help, buckets);
    this.#metrics.push(h);
    return h;
  }
  /** The Prometheus text exposition of every metric. */
  render(): string {
    return this.#metrics.map((m) => m.render()).join("\n") + "\n";
  }
}
