/**
 * What the IM actors need from their node, injected by the composition root (`node.ts`).
 *
 * @module
 */
import type { AppendRequest, AppendResult, Store } from "../../db/store.ts";
import type { Delivery } from "../../cluster/transport.ts";
import type { Logger } from "../../observability/log.ts";
import type { Notifier } from "../../push/notifier.ts";
import type { AckWriter } from "./ack_writer.ts";

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
  /** The node's ack writer: user actors hand it their cursors (one store call per interval). */
  acks: AckWriter;
  /** Appends one message through the node's group commit; resolves after the commit. */
  commit(request: AppendRequest): Promise<AppendResult>;
  /** Pushes a frame to every connected device of some users, cluster-wide (a hint: sync repairs). */
  deliver(delivery: Delivery): void;
  /** A new random id with a prefix (`m_`, `g_`). */
  newId(prefix: string): string;
  /**
   * A new message id (default `newId("m_")`); node.ts gives time-ordered ones so the store's
   * index on message ids grows at its end.
   */
  newMessageId?(): string;
  /** Server time, ms since the epoch. */
  now(): number;
  limits: ImLimits;
  logger: Logger;
  /**
   * Whether a node is live in this node's cluster view (presence ignores the connections of
   * nodes that are gone). Absent: every node counts as live.
   */
  isNodeLive?(nodeId: string): boolean;
  /** Where offline push notifications go (see push/notifier.ts). Absent: no offline push. */
  notifier?: Notifier;
}
