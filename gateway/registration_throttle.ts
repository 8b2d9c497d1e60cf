/**
 * Throttling of account registrations per client IP address: one address cannot mass-create
 * accounts (spam, username squatting). Each registration that passes the input checks takes a
 * token from its address's bucket before the store is asked; an empty bucket is answered 429
 * `rate_limited` with `Retry-After`. Buckets start full, hold `perHour` tokens and refill
 * continuously at `perHour` per hour. A registration the store could not serve (dependency
 * down) gives its token back, so the retry the error asks for is not refused.
 *
 * Addresses behind one NAT share the allowance; operators raise `REGISTRATIONS_PER_IP_PER_HOUR`
 * for such deployments (docs/security.md). Memory is bounded (see keyed_buckets.ts).
 *
 * @module
 */
import { KeyedBuckets } from "./keyed_buckets.ts";

/** Default registrations per client IP per hour (and burst); README.md and docs/security.md. */
export const DEFAULT_REGISTRATIONS_PER_IP_PER_HOUR = 20;

/** Settings of {@link RegistrationThrottle}. */
export interface RegistrationThrottleOptions {
  /** Registrations per IP address per hour (and burst). Default 20. */
  perIpPerHour?: number;
  /** Most addresses kept. Default 100,000. */
  maxKeys?: number;
  /** Milliseconds, monotonic; default `performance.now`. */
  now?: () => number;
}

/** A registration let through: `refund()` gives its token back (idempotent). */
export interface RegistrationTicket {
  refund(): void;
}

/** Per-address registration throttle of one node. */
export class RegistrationThrottle {
  readonly #ips: KeyedBuckets;

  constructor(options: RegistrationThrottleOptions = {}) {
    const perHour = options.perIpPerHour ?? DEFAULT_REGISTRATIONS_PER_IP_PER_HOUR;
    if (!(perHour > 0)) throw new RangeError(`perIpPerHour must be positive, got ${perHour}`);
    this.#ips = new KeyedBuckets(
      perHour / 3600,
      perHour,
      options.maxKeys ?? 100_000,
      options.now ?? performance.now.bind(performance),
    );
  }

  /**
   * Takes one registration from `ip`'s allowance: a ticket when allowed, else the whole seconds
   * until the next one is (at least 1), for `Retry-After`.
   */
  take(ip: string): RegistrationTicket | { retryAfterSec: number } {
    const bucket = this.#ips.get(ip);
    if (!bucket.take()) {
      return { retryAfterSec: Math.max(1, Math.ceil(bucket.msUntilToken() / 1000)) };
    }
    let refunded = false;
    return {
      refund() {
        if (refunded) return;
        refunded = true;
        bucket.refund();
      },
    };
  }

  /** Addresses held: for tests and metrics. */
  get size(): number {
    return this.#ips.size;
  }
}
