/**
 * Throttling of password attempts, per username and per client IP address.
 *
 * Every login attempt takes a token from its username's bucket and from its address's bucket
 * before the password is checked, and a successful login gives both back: only failures consume
 * the allowance, yet a burst of concurrent guesses cannot slip past while the slow password check
 * runs. When either bucket is empty the attempt is refused with 429 `rate_limited` without
 * checking the password. Buckets start full, hold `perMinute` tokens and refill continuously at
 * `perMinute` per minute.
 *
 * The username limit stops guessing one account's password from many addresses; the address
 * limit stops one address from spraying many accounts. (A locked-out owner waits at most a
 * minute per token; there is no permanent lock-out an attacker could trigger.)
 *
 * Memory is bounded: at most `maxKeys` buckets per kind are kept (see keyed_buckets.ts).
 *
 * @module
 */
import { KeyedBuckets } from "./keyed_buckets.ts";

/** Settings of {@link LoginThrottle}. */
export interface LoginThrottleOptions {
  /** Failed attempts per username per minute (and burst). Default 10. */
  perUserPerMinute?: number;
  /** Failed attempts per IP address per minute (and burst). Default 30. */
  perIpPerMinute?: number;
  /** Most buckets kept per kind. Default 100,000. */
  maxKeys?: number;
  /** Milliseconds, monotonic; default `performance.now`. */
  now?: () => number;
}

/** Defaults (documented in README.md and docs/security.md). */
export const DEFAULT_LOGIN_PER_USER_PER_MIN = 10;
/** Default failed attempts per IP address per minute. */
export const DEFAULT_LOGIN_PER_IP_PER_MIN = 30;

/** A held attempt: call `succeeded()` when the credentials were right. */
export interface LoginAttempt {
  /** Gives the attempt's tokens back (a correct password costs nothing). Idempotent. */
  succeeded(): void;
}

/** Per-username and per-address login throttle of one node. */
export class LoginThrottle {
  readonly #users: KeyedBuckets;
  readonly #ips: KeyedBuckets;
  constructor(options: LoginThrottleOptions = {}) {
    const now = options.now ?? performance.now.bind(performance);
    const maxKeys = options.maxKeys ?? 100_000;
    const perUser = options.perUserPerMinute ?? DEFAULT_LOGIN_PER_USER_PER_MIN;
    const perIp = options.perIpPerMinute ?? DEFAULT_LOGIN_PER_IP_PER_MIN;
    this.#users = new KeyedBuckets(perUser / 60, perUser, maxKeys, now);
    this.#ips = new KeyedBuckets(perIp / 60, perIp, maxKeys, now);
  }

  /**
   * Starts an attempt for `username` from `ip`: null when either is throttled (answer 429,
   * do not check the password), else a handle whose `succeeded()` refunds the attempt.
   */
  attempt(username: string, ip: string): LoginAttempt | null {
    const u = this.#users.get(username);
    const a = this.#ips.get(ip);
    if (!u.has() || !a.has()) return null;
    u.take();
    a.take();
    let done = false;
    return {
      succeeded() {
        if (done) return;
        done = true;
        u.refund();
        a.refund();
      },
    };
  }

  /** Buckets held (usernames, addresses): for tests and metrics. */
  get size(): { users: number; ips: number } {
    return { users: this.#users.size, ips: this.#ips.size };
  }
}
