/**
 * In-process placement directory: the {@link Placement} port for a single node and for
 * in-process tests of several nodes (they share one instance).
 *
 * Every operation runs synchronously inside one call, so a claim is trivially atomic in a
 * single JavaScript process. A released or expired record keeps its epoch as a tombstone, so
 * epochs never decrease even when a caller passes a low `minEpoch`.
 *
 * @module
 */

import type { ClaimOptions, ClaimResult, Placement, PlacementRecord } from "./placement.ts";
import { UnavailableError } from "../actors/errors.ts";

/** Options of {@link MemoryPlacement}. */
export interface MemoryPlacementOptions {
  /** The directory clock, milliseconds since the epoch (default `Date.now`). */
  now?: () => number;
}

interface Entry {
  /** Empty after a release: a tombstone that only remembers the epoch. */
  node: string;
  epoch: number;
  leaseUntil: number;
}

/**
 * The {@link Placement} port in memory. Guarantees everything the port promises; the clock is
 * injectable so lease expiry can be tested without waiting.
 */
export class MemoryPlacement implements Placement {
  readonly #now: () => number;
  readonly #records = new Map<string, Entry>();
  #closed = false;

  constructor(options: MemoryPlacementOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  #check(): void {
    if (this.#closed) throw new UnavailableError("Placement directory is closed");
  }

  /** The current record with an unexpired lease, or null. */
  lookup(actorId: string): Promise<PlacementRecord | null> {
    try {
      this.#check();
      const e = this.#records.get(actorId);
      if (!e || e.node === "" || e.leaseUntil <= this.#now()) return Promise.resolve(null);
      return Promise.resolve({ actorId, node: e.node, epoch: e.epoch, leaseUntil: e.leaseUntil });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Atomic compare-and-set claim (see the port's module doc). */
  claim(actorId: string, node: string, options: ClaimOptions): Promise<ClaimResult> {
    try {
      this.#check();
      const now = this.#now();
      const e = this.#records.get(actorId);
      const live = e !== undefined && e.node !== "" && e.leaseUntil > now;
      if (live && e.node !== node && !(options.deadNodes ?? []).includes(e.node)) {
        return Promise.resolve({
          claimed: false,
          record: { actorId, node: e.node, epoch: e.epoch, leaseUntil: e.leaseUntil },
        });
      }
      const previous = e?.epoch ?? 0;
      // A live re-claim by the owner keeps its epoch; anything else is a new activation.
      const epoch = live && e.node === node
        ? Math.max(previous, options.minEpoch)
        : Math.max(previous + 1, options.minEpoch);
      const entry = { node, epoch, leaseUntil: now + options.leaseMs };
      this.#records.set(actorId, entry);
      return Promise.resolve({ claimed: true, record: { actorId, ...entry } });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Extends the leases `node` still holds with the same epoch; resolves with the lost ones. */
  renew(
    node: string,
    actors: { actorId: string; epoch: number }[],
    leaseMs: number,
  ): Promise<string[]> {
    try {
      this.#check();
      const now = this.#now();
      const lost: string[] = [];
      for (const { actorId, epoch } of actors) {
        const e = this.#records.get(actorId);
        if (e && e.node === node && e.epoch === epoch && e.leaseUntil > now) {
          e.leaseUntil = now + leaseMs;
        } else {
          lost.push(actorId);
        }
      }
      return Promise.resolve(lost);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Clears the record if it is still `node`'s with `epoch`; the epoch stays as a tombstone. */
  release(actorId: string, node: string, epoch: number): Promise<void> {
    try {
      this.#check();
      const e = this.#records.get(actorId);
      if (e && e.node === node && e.epoch === epoch) {
        e.node = "";
        e.leaseUntil = 0;
      }
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Marks the directory closed; later calls reject with UnavailableError. */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}
