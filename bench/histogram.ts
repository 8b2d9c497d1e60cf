/**
 * Latency histograms for the load generator: HdrHistogram (3 significant digits) over
 * microseconds, mergeable across generator processes through a compact encoding.
 *
 * Values are recorded in microseconds from 1 µs to 10 minutes; anything outside is clamped, so a
 * pathological sample still counts instead of throwing away the run.
 *
 * @module
 */
import * as hdr from "hdr-histogram-js";

/** Highest value tracked: 10 minutes in µs. */
const HIGHEST_US = 600_000_000;

/** Percentiles of one histogram, in milliseconds (3 significant digits). */
export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** A latency histogram in microseconds. */
export class LatencyHistogram {
  readonly #h: hdr.Histogram;
  /** Exact maximum (the encoding only keeps the bucket's upper edge). */
  #maxUs = 0;

  constructor(h?: hdr.Histogram, maxUs?: number) {
    this.#h = h ?? hdr.build({
      bitBucketSize: 64,
      lowestDiscernibleValue: 1,
      highestTrackableValue: HIGHEST_US,
      numberOfSignificantValueDigits: 3,
      useWebAssembly: false,
    });
    this.#maxUs = maxUs ?? (h ? h.maxValue : 0);
  }

  /** Records one latency given in milliseconds (fractions kept to the µs). */
  recordMs(ms: number): void {
    let us = Math.round(ms * 1000);
    if (!(us >= 1)) us = 1; // also catches NaN and clock skew below zero
    if (us > HIGHEST_US) us = HIGHEST_US;
    if (us > this.#maxUs) this.#maxUs = us;
    this.#h.recordValue(us);
  }

  /** Number of recorded values. */
  get count(): number {
    return this.#h.totalCount;
  }

  /** Adds every value of `other` to this histogram. */
  add(other: LatencyHistogram): void {
    this.#h.add(other.#h);
    if (other.#maxUs > this.#maxUs) this.#maxUs = other.#maxUs;
  }

  /** Empties the histogram. */
  reset(): void {
    this.#h.reset();
    this.#maxUs = 0;
  }

  /** A compact string that {@link LatencyHistogram.decode} turns back into an equal histogram. */
  encode(): string {
    return `${this.#maxUs}:${hdr.encodeIntoCompressedBase64(this.#h)}`;
  }

  /** Inverse of {@link LatencyHistogram.encode}. */
  static decode(text: string): LatencyHistogram {
    const colon = text.indexOf(":");
    const h = hdr.decodeFromCompressedBase64(text.slice(colon + 1), 64, false) as hdr.Histogram;
    return new LatencyHistogram(h, Number(text.slice(0, colon)));
  }

  /** Percentiles in milliseconds; all zero when empty. */
  summary(): LatencySummary {
    const h = this.#h;
    if (h.totalCount === 0) return { count: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
    const ms = (us: number) => Math.round(us) / 1000;
    return {
      count: h.totalCount,
      p50: ms(h.getValueAtPercentile(50)),
      p90: ms(h.getValueAtPercentile(90)),
      p99: ms(h.getValueAtPercentile(99)),
      p999: ms(h.getValueAtPercentile(99.9)),
      max: ms(this.#maxUs),
    };
  }
}

/** Merges encoded histograms (from several generators) into one. */
export function mergeEncoded(parts: Iterable<string>): LatencyHistogram {
  const out = new LatencyHistogram();
  for (const p of parts) if (p) out.add(LatencyHistogram.decode(p));
  return out;
}
