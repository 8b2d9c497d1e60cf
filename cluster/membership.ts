/**
 * The membership port: which nodes are alive.
 *
 * Adapters: `membership_memory.ts` (one process, for a single node and in-process tests) and
 * `membership_redis.ts` (a registry with heartbeats and a TTL).
 *
 * Guarantees:
 * - A node id is new at every process start; a restarted process is a new member.
 * - `join` registers this node and starts heartbeats; a node whose heartbeats stop for longer
 *   than the TTL is no longer in `liveNodes()` (it is dead, even if its process comes back).
 * - `liveNodes()` answers from a local view refreshed at least once per heartbeat interval, so it
 *   never blocks on the network; `refresh()` forces a read.
 * - When this node cannot heartbeat for longer than the TTL, `onSelfLost` handlers run: the node
 *   must stop its actors (self-fencing). The member is then stopped (empty view, no heartbeat);
 *   once its actors are dropped the node may `join` again with the same id (node.ts does, so a
 *   node recovers by itself when Redis returns); its next activations take fresh epochs.
 *
 * @module
 */

/** What a node announces about itself. */
export interface NodeInfo {
  /** Unique per process start. */
  id: string;
  /** Where clients can reach its gateway, e.g. `http://127.0.0.1:8080`. */
  address: string;
  /** Milliseconds since the epoch. */
  startedAt: number;
  /**
   * Set while the node shuts down gracefully: it is still live (it keeps its actors until it has
   * handed them off, nobody takes them over), but no new activation should be placed on it.
   */
  draining?: boolean;
}

/** The membership port. */
export interface Membership {
  /** Registers `self` and starts heartbeating. */
  join(self: NodeInfo): Promise<void>;
  /** Stops heartbeating and removes this node from the registry at once. */
  leave(): Promise<void>;
  /**
   * Announces that this node is draining (graceful shutdown): it stays live, with
   * `draining: true` in its info, which the others see at their next refresh. Rejects with
   * UnavailableError when the registry cannot be told (the node then just leaves later).
   */
  drain(): Promise<void>;
  /** Live nodes from the local view (this node included once joined). */
  liveNodes(): NodeInfo[];
  /** Re-reads the registry now. */
  refresh(): Promise<NodeInfo[]>;
  /** Whether `nodeId` is in the local live view. */
  isLive(nodeId: string): boolean;
  /** Called with the new view whenever the live set changes. */
  onChange(handler: (nodes: NodeInfo[]) => void): void;
  /** Called when this node has failed to heartbeat for a whole TTL. */
  onSelfLost(handler: () => void): void;
}
