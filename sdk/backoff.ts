/**
 * Reconnect delays: exponential backoff with jitter.
 *
 * The delay of attempt `n` (from 0) is `min(maxDelayMs, initialDelayMs * factor^n)`, of which a
 * random share up to `jitter` is taken off, so clients that lost the same node do not all come
 * back in the same millisecond. The result always lies in `[(1 - jitter) * base, base]`.
 *
 * @module
 */

/** Backoff settings. */
export interface BackoffOptions {
  /** First delay, ms (default 250). */
  initialDelayMs?: number;
  /** Largest delay, ms (default 15000). */
  maxDelayMs?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Share of the delay that is random, 0..1 (default 0.5). */
  jitter?: number;
}

/** The delay before reconnect attempt `attempt` (0 = the first retry). */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const initial = options.initialDelayMs ?? 250;
  const max = options.maxDelayMs ?? 15_000;
  const factor = options.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, options.jitter ?? 0.5));
  const base = Math.min(max, initial * Math.pow(factor, Math.max(0, attempt)));
  return Math.round(base * (1 - jitter * random()));
}
