/**
 * In-process transport: the {@link Transport} port for a single node (gateway → actor traffic
 * goes through it too) and for in-process tests of several nodes, whose MemoryTransports share
 * one {@link MemoryNetwork}.
 *
 * Behaves like the networked adapter where it matters: a request to this node calls the handler
 * directly; a request to another node is handed over on a later microtask, in send order; a
 * remote ImError arrives as an ImError with the same code and message (other errors become
 * `internal`); deadlines are enforced by the caller; deliveries are batched per destination node
 * and flushed on a microtask (or at once when a batch is full). Bodies are passed by reference,
 * not copied: callers must not mutate a body after sending it.
 *
 * @module
 */

import type { Delivery, Envelope, EnvelopeHandler, Transport } from "./transport.ts";
import { DeadlineExceededError, UnavailableError } from "../actors/errors.ts";
import {
  errorFromRemote,
  FALLBACK_TIMEOUT_MS,
  invoke,
  rethrowAsImError,
  withDeadline,
} from "./deadline.ts";

/** The in-process "wire": the serving transports by node id. */
export class MemoryNetwork {
  readonly #nodes = new Map<string, MemoryTransport>();

  /** The serving transport of `nodeId`, if any. */
  get(nodeId: string): MemoryTransport | undefined {
    return this.#nodes.get(nodeId);
  }

  /** Registers a serving transport (fails when the id is taken). */
  add(transport: MemoryTransport): void {
    const other = this.#nodes.get(transport.nodeId);
    if (other && other !== transport) {
      throw new Error(`Node id "${transport.nodeId}" is already on this network`);
    }
    this.#nodes.set(transport.nodeId, transport);
  }

  /** Unregisters a transport. */
  remove(transport: MemoryTransport): void {
    if (this.#nodes.get(transport.nodeId) === transport) this.#nodes.delete(transport.nodeId);
  }
}

/** Options of {@link MemoryTransport}. */
export interface MemoryTransportOptions {
  /** This node's id. */
  nodeId: string;
  /** Shared with the other nodes of an in-process cluster; a private one by default. */
  network?: MemoryNetwork;
  /** Deliveries per batch before a batch is flushed without waiting for the microtask. */
  maxBatch?: number;
  /** Timeout for envelopes without a deadline, milliseconds (default 30000). */
  fallbackTimeoutMs?: number;
}

/** The {@link Transport} port in memory (see the module doc for its behaviour). */
export class MemoryTransport implements Transport {
  /** This node's id. */
  readonly nodeId: string;
  readonly #network: MemoryNetwork;
  readonly #maxBatch: number;
  readonly #fallbackTimeoutMs: number;
  #handler: EnvelopeHandler | null = null;
  #deliveryHandler: ((deliveries: Delivery[]) => void) | null = null;
  #closed = false;
  readonly #outbox = new Map<string, Delivery[]>();
  #flushScheduled = false;
  #dropped = 0;

  constructor(options: MemoryTransportOptions) {
    this.nodeId = options.nodeId;
    this.#network = options.network ?? new MemoryNetwork();
    this.#maxBatch = options.maxBatch ?? 512;
    this.#fallbackTimeoutMs = options.fallbackTimeoutMs ?? FALLBACK_TIMEOUT_MS;
  }

  /** Starts serving: `handler` receives envelopes addressed to this node. */
  serve(handler: EnvelopeHandler): Promise<void> {
    if (this.#closed) return Promise.reject(new UnavailableError("Transport is closed"));
    this.#handler = handler;
    try {
      this.#network.add(this);
    } catch (err) {
      return Promise.reject(err);
    }
    return Promise.resolve();
  }

  /** Request/reply to `node`, bounded by the envelope's deadline. */
  request(node: string, envelope: Envelope): Promise<unknown> {
    if (this.#closed) return Promise.reject(new UnavailableError("Transport is closed"));
    const deadline = envelope.deadline ?? Date.now() + this.#fallbackTimeoutMs;
    if (deadline <= Date.now()) return Promise.reject(new DeadlineExceededError());
    if (node === this.nodeId) {
      const handler = this.#handler;
      if (!handler) return Promise.reject(new UnavailableError("This node is not serving"));
      return withDeadline(invoke(handler, envelope).catch(rethrowAsImError), deadline);
    }
    const dest = this.#network.get(node);
    if (!dest) return Promise.reject(new UnavailableError(`Node "${node}" is unreachable`));
    const reply = new Promise<unknown>((resolve, reject) => {
      queueMicrotask(() => {
        const run = dest.#accept(envelope);
        if (run === null) {
          reject(new UnavailableError(`Node "${node}" is unreachable`));
          return;
        }
        run.then(resolve, (err) => reject(errorFromRemote(err)));
      });
    });
    return withDeadline(reply, deadline);
  }

  /** Fire-and-forget to `node`; handler failures are logged on the receiving side. */
  tell(node: string, envelope: Envelope): void {
    if (this.#closed) {
      console.warn(`transport: tell to "${node}" dropped: transport is closed`);
      return;
    }
    const dest = node === this.nodeId ? this : this.#network.get(node);
    if (!dest) {
      this.#dropped++;
      return;
    }
    const run = () => {
      const done = dest.#accept(envelope);
      if (done === null) dest.#dropped++;
      else done.catch((err) => dest.#logTellFailure(envelope, err));
    };
    if (dest === this) run();
    else queueMicrotask(run);
  }

  /** Queues a delivery for `node`; batches are flushed on a microtask. */
  deliver(node: string, delivery: Delivery): void {
    if (this.#closed) return;
    let batch = this.#outbox.get(node);
    if (!batch) {
      batch = [];
      this.#outbox.set(node, batch);
    }
    batch.push(delivery);
    if (batch.length >= this.#maxBatch) {
      this.#outbox.delete(node);
      this.#send(node, batch);
      return;
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.#flush());
    }
  }

  /** Registers the handler for deliveries arriving at this node. */
  onDeliveries(handler: (deliveries: Delivery[]) => void): void {
    this.#deliveryHandler = handler;
  }

  /** Counters: deliveries and tells dropped because their destination was unknown. */
  stats(): { dropped: number } {
    return { dropped: this.#dropped };
  }

  /** Flushes queued deliveries, stops serving and leaves the network. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#flush();
    this.#closed = true;
    this.#network.remove(this);
    this.#handler = null;
    return Promise.resolve();
  }

  #flush(): void {
    this.#flushScheduled = false;
    const batches = [...this.#outbox];
    this.#outbox.clear();
    for (const [node, batch] of batches) this.#send(node, batch);
  }

  #send(node: string, batch: Delivery[]): void {
    const dest = node === this.nodeId ? this : this.#network.get(node);
    if (!dest || dest.#closed) {
      // Deliveries are hints: the client's sync repairs what is lost.
      this.#dropped += batch.length;
      return;
    }
    const handler = dest.#deliveryHandler;
    if (!handler) {
      dest.#dropped += batch.length;
      return;
    }
    try {
      handler(batch);
    } catch (err) {
      console.error("transport: delivery handler failed", err);
    }
  }

  /** Hands an envelope to this node's handler; null when this node does not serve. */
  #accept(envelope: Envelope): Promise<unknown> | null {
    const handler = this.#handler;
    if (this.#closed || !handler) return null;
    if (envelope.deadline !== undefined && envelope.deadline <= Date.now()) {
      // Expired messages are dropped, not run late.
      return Promise.reject(new DeadlineExceededError());
    }
    return invoke(handler, envelope);
  }

  #logTellFailure(envelope: Envelope, err: unknown): void {
    const code = (err as { code?: string })?.code ?? "internal";
    console.warn(`transport: tell ${envelope.type} to ${envelope.to} failed: ${code}`);
  }
}
