/**
 * The placement port: the directory actorId → {node, epoch, lease}.
 *
 * Adapters: `placement_memory.ts` (one process) and `placement_redis.ts` (Lua compare-and-set).
 *
 * Guarantees:
 * - `claim` is one atomic compare-and-set. It succeeds when there is no record, when the record's
 *   lease has expired, when the record's node is listed in `deadNodes`, or when the record is
 *   already this node's (a re-claim renews the lease and keeps the epoch). Otherwise it fails
 *   and returns the current record.
 * - Epochs only grow per actor: a successful takeover gets `max(previous + 1, minEpoch)`. The
 *   caller passes as `minEpoch` the store's epoch + 1, so epochs keep growing even if the
 *   directory itself lost its data (a Redis restart).
 * - `renew` extends many leases in one round trip and reports the ones this node no longer
 *   holds (the caller must stop those actors).
 * - A dependency failure rejects with UnavailableError.
 *
 * @module
 */

/** Where one actor lives. */
export interface PlacementRecord {
  actorId: string;
  node: string;
  epoch: number;
  /** Lease expiry, milliseconds since the epoch (directory clock). */
  leaseUntil: number;
}

/** Options of {@link Placement.claim}. */
export interface ClaimOptions {
  /** Lease length in milliseconds. */
  leaseMs: number;
  /** The epoch granted is at least this (store epoch + 1). */
  minEpoch: number;
  /** Nodes known dead (membership): their records may be taken over before the lease ends. */
  deadNodes?: string[];
}

/** Outcome of a claim. */
export type ClaimResult =
  | { claimed: true; record: PlacementRecord }
  | { claimed: false; record: PlacementRecord };

/** The placement port. */
export interface Placement {
  /** The current record with an unexpired lease, or null. */
  lookup(actorId: string): Promise<PlacementRecord | null>;
  /** Atomic compare-and-set claim; see the module doc. */
  claim(actorId: string, node: string, options: ClaimOptions): Promise<ClaimResult>;
  /**
   * Extends the leases of `actors` held by `node` (matching epoch) in one round trip.
   * Resolves with the actor ids the node no longer holds.
   */
  renew(
    node: string,
    actors: { actorId: string; epoch: number }[],
    leaseMs: number,
  ): Promise<string[]>;
  /** Removes the record if it is still `node`'s with `epoch` (hand-off, passivation). */
  release(actorId: string, node: string, epoch: number): Promise<void>;
  /** Closes connections. */
  close(): Promise<void>;
}

/**
 * Chooses the node for a new activation. Pluggable; the default is rendezvous hashing over the
 * live nodes (`placement_strategy.ts`).
 */
export type PlacementStrategy = (actorId: string, liveNodeIds: string[]) => string;
