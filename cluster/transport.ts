/**
 * The transport port: node-to-node calls and deliveries.
 *
 * Adapters: `transport_memory.ts` (in-process; even a single node routes gateway → actor traffic
 * through it) and `transport_nats.ts` (MessagePack envelopes on node-addressed subjects).
 *
 * Guarantees:
 * - `request` resolves with the remote handler's value or rejects with its ImError (code kept);
 *   it rejects with DeadlineExceededError when the envelope's `deadline` passes first, and with
 *   UnavailableError when the destination cannot be reached.
 * - Envelopes from one sender node to one destination node are handled in send order.
 * - `deliver` is fire-and-forget and batched per destination node; it is a hint (a lost
 *   delivery is repaired by the client's `sync` from the store).
 *
 * @module
 */

/** A message for an actor, as it crosses nodes. */
export interface Envelope {
  /** Target actor id `kind/key`. */
  to: string;
  /** Message type (the behaviour's handler name). */
  type: string;
  /** Message payload (MessagePack-encodable). */
  body: unknown;
  /** Absolute deadline, milliseconds since the epoch; past it the message is dropped. */
  deadline?: number;
  /** Sender identity for per-sender ordering (e.g. a connection id); optional. */
  sender?: string;
}

/** A message pushed to the client connections of some users on one node. */
export interface Delivery {
  /** Frame fields shared by every recipient (a `msg` frame without `seq`, or any push frame). */
  frame: Record<string, unknown>;
  /** Recipient user ids. */
  users: string[];
  /** Per-recipient inbox seq (same order as `users`); absent for frames without a seq. */
  seqs?: number[];
}

/** Handles an envelope arriving at this node; the value is the reply. */
export type EnvelopeHandler = (envelope: Envelope) => Promise<unknown>;

/** The transport port. */
export interface Transport {
  /** This node's id. */
  readonly nodeId: string;
  /** Starts serving: `handler` receives envelopes addressed to this node. */
  serve(handler: EnvelopeHandler): Promise<void>;
  /** Request/reply to `node` with the envelope's deadline. */
  request(node: string, envelope: Envelope): Promise<unknown>;
  /** Fire-and-forget to `node`. */
  tell(node: string, envelope: Envelope): void;
  /** Queues deliveries for `node`; flushed in batches. */
  deliver(node: string, delivery: Delivery): void;
  /** Registers the handler for deliveries arriving at this node. */
  onDeliveries(handler: (deliveries: Delivery[]) => void): void;
  /** Stops serving and closes connections. */
  close(): Promise<void>;
}
