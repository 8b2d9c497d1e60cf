/**
 * What the IM actors need from their node, injected by the composition root (`node.ts`).
 *
 * @module
 */
import type { AppendRequest, AppendResult, Store } from "../../db/store.ts";
import type { Delivery } from "../../cluster/transport.ts";
import type { Logger } from "../../observability/log.ts";

/** Limits the IM behaviours enforce. */
export interface ImLimits {
  /** Most members a group may have. */
  groupMaxMembers: number;
  /** How long after sending a sender may recall a message, ms (default 120000). */
  recallWindowMs?: number;
}

/** Services of the IM behaviours. */
export interface ImServices {
  /** The store (reads, snapshots, acks). */
  store: Store;
  /** Appends one message through the node's group commit; resolves after the commit. */
  commit(request: AppendRequest): Promise<AppendResult>;
  /** Pushes a frame to every connected device of some users, cluster-wide (a hint: sync repairs). */
  deliver(delivery: Delivery): void;
  /** A new random id with a prefix (`m_`, `g_`). */
  newId(prefix: string): string;
  /** Server time, ms since the epoch. */
  now(): number;
  limits: ImLimits;
  logger: Logger;
}
