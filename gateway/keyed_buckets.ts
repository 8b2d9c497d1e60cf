/**
 * Token buckets by key (a username, a client address), with bounded memory: at most `maxKeys`
 * buckets are kept; buckets that have refilled are forgotten first (forgetting a full bucket
 * changes nothing), then the oldest.
 *
 * @module
 */
import { TokenBucket } from "./rate_limit.ts";

/** One {@link TokenBucket} per key, each `ratePerSecond` with at most `burst` held. */
export class KeyedBuckets {
  readonly #map = new Map<string, TokenBucket>();
  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly maxKeys: number,
    private readonly now: () => number,
  ) {}

  /** The key's bucket (a new one starts full). */
  get(key: string): TokenBucket {
    let b = this.#map.get(key);
    if (!b) {
      if (this.#map.size >= this.maxKeys) this.#prune();
      b = new TokenBucket(this.ratePerSecond, this.burst, this.now);
      this.#map.set(key, b);
    }
    return b;
  }

  #prune(): void {
    for (const [k, b] of this.#map) if (b.full()) this.#map.delete(k);
    // Still full of throttled keys: drop the oldest (insertion order) to stay bounded.
    const excess = this.#map.size - Math.floor(this.maxKeys * 0.9);
    if (excess > 0) {
      let i = 0;
      for (const k of this.#map.keys()) {
        if (i++ >= excess) break;
        this.#map.delete(k);
      }
    }
  }

  /** Buckets held. */
  get size(): number {
    return this.#map.size;
  }
}
