/**
 * Rate limits of WebSocket traffic: token buckets per connection and per user (across that user's
 * connections on this node), one pair per budget.
 *
 * Budgets: `request` (every op that is not a message or presence op, and acks), `message` (ops
 * that store or relay a message, e.g. `send`), `presence` (presence/typing updates). Each bucket
 * holds up to twice its rate (a burst of two seconds' worth) and refills continuously. A frame is
 * let through only when both the connection's and the user's bucket of its budget have a token, so
 * opening more connections does not multiply a user's allowance on one node.
 *
 * A refused frame is answered `rate_limited` by the session; a connection that keeps flooding
 * (more than `floodCloseAfter` refusals in a row, without a single allowed frame in between) is
 * closed with 1008. The limits are per node: a user spread over N nodes gets up to N times the
 * per-user allowance, which the per-connection limits still bound.
 *
 * @module
 */

/** Which budget a frame draws from. */
export type RateBudget = "request" | "message" | "presence";

/** Rate (per second) of one budget, per connection and per user. */
export interface BudgetRates {
  perConnection: number;
  perUser: number;
}

/** The rate limits of a node. */
export interface RateLimits {
  request: BudgetRates;
  message: BudgetRates;
  presence: BudgetRates;
  /** Refusals in a row after which the connection is closed with 1008. */
  floodCloseAfter: number;
}

/** Defaults (also documented in README.md and docs/security.md). */
export const DEFAULT_RATE_LIMITS: Readonly<RateLimits> = Object.freeze({
  request: { perConnection: 200, perUser: 400 },
  message: { perConnection: 100, perUser: 200 },
  presence: { perConnection: 5, perUser: 10 },
  floodCloseAfter: 100,
});

/** A token bucket: `rate` tokens per second, at most `burst` held. Starts full. */
export class TokenBucket {
  #tokens: number;
  #last: number;
  constructor(
    readonly rate: number,
    readonly burst: number = rate * 2,
    private readonly now: () => number = performance.now.bind(performance),
  ) {
    this.#tokens = burst;
    this.#last = now();
  }

  #refill(): void {
    const t = this.now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((t - this.#last) / 1000) * this.rate);
    this.#last = t;
  }

  /** Whether a token is available (refilled to now), without taking it. */
  has(): boolean {
    this.#refill();
    return this.#tokens >= 1;
  }

  /** Takes one token if available; returns whether it did. */
  take(): boolean {
    this.#refill();
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Gives a token back (never above the burst). */
  refund(): void {
    this.#tokens = Math.min(this.burst, this.#tokens + 1);
  }

  /** Milliseconds until a token is available (0 when one is). */
  msUntilToken(): number {
    this.#refill();
    return this.#tokens >= 1 ? 0 : ((1 - this.#tokens) / this.rate) * 1000;
  }

  /** Whether the bucket has refilled completely (so forgetting it changes nothing). */
  full(): boolean {
    this.#refill();
    return this.#tokens >= this.burst;
  }
}

type Buckets = Record<RateBudget, TokenBucket>;

function makeBuckets(
  limits: RateLimits,
  which: keyof BudgetRates,
  now: () => number,
): Buckets {
  return {
    request: new TokenBucket(limits.request[which], limits.request[which] * 2, now),
    message: new TokenBucket(limits.message[which], limits.message[which] * 2, now),
    presence: new TokenBucket(limits.presence[which], limits.presence[which] * 2, now),
  };
}

/** The outcome of {@link ConnectionLimiter.check}. */
export type RateDecision = "allow" | "refuse" | "close";

/** A user's entry: reference counted by its connections; buckets made on first use. */
interface UserEntry {
  refs: number;
  buckets: Buckets | null;
}

/**
 * The per-user buckets of one node, shared by that user's connections. Entries live while the
 * user has a connection here (reference counted), so memory follows the connection count.
 *
 * Buckets are made when first drawn on (an untouched bucket is full, so making it later changes
 * nothing): an idle connection holds no bucket at all. A bucket takes the rates in force when it
 * is made.
 */
export class UserRateLimiter {
  readonly #users = new Map<string, UserEntry>();
  constructor(
    readonly limits: RateLimits = DEFAULT_RATE_LIMITS,
    private readonly now: () => number = performance.now.bind(performance),
  ) {}

  /** A limiter for one new connection of `userId`; call `release()` on it when it closes. */
  connect(userId: string): ConnectionLimiter {
    let entry = this.#users.get(userId);
    if (!entry) {
      entry = { refs: 0, buckets: null };
      this.#users.set(userId, entry);
    }
    entry.refs++;
    return new ConnectionLimiter(this, userId, entry);
  }

  /** Users with at least one live connection limiter. */
  get size(): number {
    return this.#users.size;
  }

  /** @internal The buckets of one side (`perConnection` or `perUser`), full. */
  makeBuckets(which: keyof BudgetRates): Buckets {
    return makeBuckets(this.limits, which, this.now);
  }

  /** @internal Drops one reference of `userId`'s entry. */
  unref(userId: string, entry: UserEntry): void {
    if (--entry.refs === 0 && this.#users.get(userId) === entry) this.#users.delete(userId);
  }
}

/** The buckets of one connection plus its user's shared buckets (made on first use). */
export class ConnectionLimiter {
  #own: Buckets | null = null;
  #strikes = 0;
  #released = false;
  constructor(
    private readonly parent: UserRateLimiter,
    private readonly userId: string,
    private readonly entry: UserEntry,
  ) {}

  /**
   * Decides one frame of `budget`: `allow` (tokens taken from both buckets), `refuse` (answer
   * `rate_limited`, nothing taken), or `close` (the flood went on: close with 1008).
   */
  check(budget: RateBudget): RateDecision {
    const own = (this.#own ??= this.parent.makeBuckets("perConnection"))[budget];
    const user = (this.entry.buckets ??= this.parent.makeBuckets("perUser"))[budget];
    // Check both before taking either, so a refused frame costs the other bucket nothing.
    if (own.has() && user.has()) {
      own.take();
      user.take();
      this.#strikes = 0;
      return "allow";
    }
    return ++this.#strikes > this.floodCloseAfter ? "close" : "refuse";
  }

  private get floodCloseAfter(): number {
    return this.parent.limits.floodCloseAfter;
  }

  /** Drops this connection's share of the user's entry (idempotent). */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.parent.unref(this.userId, this.entry);
  }
}
