/**
 * A budget of unauthenticated WebSocket connections per client IP address.
 *
 * A socket counts against its address from the upgrade until it authenticates or closes; the auth
 * deadline (AUTH_TIMEOUT_MS) bounds how long one can hold its place. An upgrade from an address
 * that already holds `perIp` such sockets is refused with HTTP 429 `rate_limited` before the
 * upgrade, so an attacker cannot pin the node's memory and file descriptors with sockets that
 * never authenticate. Authenticated sockets are governed by the rate limits instead.
 *
 * Memory: one map entry per address with at least one pending socket.
 *
 * @module
 */

/** Default unauthenticated sockets per IP address. */
export const DEFAULT_MAX_UNAUTH_PER_IP = 50;

/** Counts unauthenticated sockets per address. */
export class IpBudget {
  readonly #pending = new Map<string, number>();
  constructor(readonly perIp: number = DEFAULT_MAX_UNAUTH_PER_IP) {}

  /**
   * Reserves a place for a new unauthenticated socket of `ip`; returns the release function, or
   * null when the address is over budget. The release function is idempotent.
   */
  acquire(ip: string): (() => void) | null {
    const n = this.#pending.get(ip) ?? 0;
    if (n >= this.perIp) return null;
    this.#pending.set(ip, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#pending.get(ip) ?? 1) - 1;
      if (left <= 0) this.#pending.delete(ip);
      else this.#pending.set(ip, left);
    };
  }

  /** Unauthenticated sockets of `ip` right now. */
  pending(ip: string): number {
    return this.#pending.get(ip) ?? 0;
  }

  /** Addresses with at least one unauthenticated socket. */
  get size(): number {
    return this.#pending.size;
  }
}
