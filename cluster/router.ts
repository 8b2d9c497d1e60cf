/**
 * The router: sends a message to an actor wherever it lives.
 *
 * It finds the owning node from a bounded local cache, else from the placement directory, else
 * (no live record) from the placement strategy over the live nodes, and then always sends
 * through the transport port, even to this node, so a single node and a cluster take the same
 * path. The node that receives the envelope activates the actor (claiming placement itself) or
 * answers MovedError when it lives elsewhere.
 *
 * Guarantees:
 * - A MovedError, or an UnavailableError from a node that membership no longer lists as live,
 *   invalidates the cache entry and the message is re-resolved and re-sent, at once the first
 *   time and then with a short backoff (an actor being handed off by a draining node, or taken
 *   over from a dead one, is briefly unplaced), never past the message's deadline (the usual
 *   bound; {@link MAX_RESENDS} only caps a deadline far away). Other errors reach the caller
 *   unchanged.
 * - New activations are placed on live nodes that are not draining (graceful shutdown); a
 *   draining node keeps the actors it holds until it has handed them off. When every live node
 *   is draining, a message to an actor that is not placed fails with `unavailable` at once.
 * - Messages from one caller to one actor leave in call order while the actor's node is known
 *   (concurrent look-ups of one actor are shared, so a cache miss does not reorder them).
 * - `tell` never throws: failures go to `onError` (by default a log line with the error code,
 *   never the body).
 *
 * @module
 */

import type { Membership } from "./membership.ts";
import type { Placement, PlacementStrategy } from "./placement.ts";
import type { Envelope, Transport } from "./transport.ts";
import { rendezvousStrategy } from "./placement_strategy.ts";
import {
  DeadlineExceededError,
  type ImError,
  toImError,
  UnavailableError,
} from "../actors/errors.ts";

/** Most re-sends of one message after `moved` or a dead node. */
export const MAX_RESENDS = 40;

/** Pause before re-send `n` (1-based): none for the first, then doubling, capped. */
function resendDelayMs(n: number): number {
  return n <= 1 ? 0 : Math.min(250, 10 * 2 ** (n - 1));
}

/** Options of {@link Router}. */
export interface RouterOptions {
  /** This node's id. */
  nodeId: string;
  transport: Transport;
  placement: Placement;
  membership: Membership;
  /** Chooses the node of a new activation (default: rendezvous hashing). */
  strategy?: PlacementStrategy;
  /** Deadline of an ask or tell that gives none, milliseconds (default 5000). */
  defaultTimeoutMs?: number;
  /** Most actor → node entries cached; the oldest are evicted first (default 100,000). */
  cacheMax?: number;
  /** Receives the failures of `tell` (default: a warning with the code). */
  onError?: (err: ImError, envelope: Envelope) => void;
}

/** Options of one ask or tell. */
export interface SendOptions {
  /** Absolute deadline, milliseconds since the epoch. */
  deadline?: number;
  /** Sender identity for per-sender ordering (e.g. a connection id). */
  sender?: string;
}

/** Counters of a {@link Router}. */
export interface RouterStats {
  asks: number;
  tells: number;
  cacheHits: number;
  cacheMisses: number;
  /** Placement look-ups made (shared ones count once). */
  lookups: number;
  /** Messages re-resolved and re-sent after a MovedError or an unreachable dead node. */
  retries: number;
  /** MovedErrors received: the actor was not where this router thought. */
  moves: number;
  /** Failed tells (reported to `onError`). */
  tellFailures: number;
  cacheSize: number;
}

/** Routes asks and tells to the node that hosts (or will host) an actor. */
export class Router {
  readonly #nodeId: string;
  readonly #transport: Transport;
  readonly #placement: Placement;
  readonly #membership: Membership;
  readonly #strategy: PlacementStrategy;
  readonly #defaultTimeoutMs: number;
  readonly #cacheMax: number;
  readonly #onError: (err: ImError, envelope: Envelope) => void;
  readonly #cache = new Map<string, string>();
  readonly #resolving = new Map<string, Promise<string>>();
  readonly #stats = {
    asks: 0,
    tells: 0,
    cacheHits: 0,
    cacheMisses: 0,
    lookups: 0,
    retries: 0,
    moves: 0,
    tellFailures: 0,
  };

  constructor(options: RouterOptions) {
    this.#nodeId = options.nodeId;
    this.#transport = options.transport;
    this.#placement = options.placement;
    this.#membership = options.membership;
    this.#strategy = options.strategy ?? rendezvousStrategy;
    this.#defaultTimeoutMs = options.defaultTimeoutMs ?? 5000;
    this.#cacheMax = options.cacheMax ?? 100_000;
    this.#onError = options.onError ??
      ((err, e) => console.warn(`router: tell ${e.type} to ${e.to} failed: ${err.code}`));
  }

  /** This node's id. */
  get nodeId(): string {
    return this.#nodeId;
  }

  /**
   * Sends a request to actor `to` and resolves with its reply; rejects with the actor's
   * ImError, DeadlineExceededError (code `timeout`) or UnavailableError.
   */
  ask(to: string, type: string, body: unknown, opts: SendOptions = {}): Promise<unknown> {
    this.#stats.asks++;
    return this.#send(this.#envelope(to, type, body, opts));
  }

  /** Fire-and-forget send to actor `to`; failures go to `onError`, never to the caller. */
  tell(to: string, type: string, body: unknown, opts: SendOptions = {}): void {
    this.#stats.tells++;
    const envelope = this.#envelope(to, type, body, opts);
    this.#send(envelope).catch((err) => {
      this.#stats.tellFailures++;
      try {
        this.#onError(toImError(err), envelope);
      } catch (e) {
        console.error("router: onError handler failed", e);
      }
    });
  }

  /** Forgets where `actorId` lives (e.g. after this node passivated or handed it off). */
  invalidate(actorId: string): void {
    this.#cache.delete(actorId);
  }

  /** Counters since start. */
  stats(): RouterStats {
    return { ...this.#stats, cacheSize: this.#cache.size };
  }

  #envelope(to: string, type: string, body: unknown, opts: SendOptions): Envelope {
    const envelope: Envelope = {
      to,
      type,
      body,
      deadline: opts.deadline ?? Date.now() + this.#defaultTimeoutMs,
    };
    if (opts.sender !== undefined) envelope.sender = opts.sender;
    return envelope;
  }

  #send(envelope: Envelope): Promise<unknown> {
    const cached = this.#cache.get(envelope.to);
    if (cached !== undefined && this.#membership.isLive(cached)) {
      this.#stats.cacheHits++;
      // No await before the request: a cache hit goes out in call order.
      return this.#attempt(cached, envelope, 0);
    }
    if (cached !== undefined) this.#cache.delete(envelope.to);
    this.#stats.cacheMisses++;
    return this.#resolveShared(envelope.to).then((node) => this.#attempt(node, envelope, 0));
  }

  async #attempt(node: string, envelope: Envelope, resends: number): Promise<unknown> {
    try {
      const value = await this.#transport.request(node, envelope);
      this.#remember(envelope.to, node);
      return value;
    } catch (err) {
      const code = (err as ImError)?.code;
      const moved = code === "moved";
      const deadNode = code === "unavailable" && !this.#membership.isLive(node);
      if (moved || deadNode || code === "timeout") this.#forget(envelope.to, node);
      if (moved) this.#stats.moves++;
      if (resends >= MAX_RESENDS || !(moved || deadNode)) throw err;
      const delay = resendDelayMs(resends + 1);
      if (envelope.deadline !== undefined && envelope.deadline <= Date.now() + delay) {
        throw new DeadlineExceededError();
      }
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      this.#stats.retries++;
      // A fresh look-up, not a shared one that may have started before the move.
      const next = await this.#resolve(envelope.to);
      return this.#attempt(next, envelope, resends + 1);
    }
  }

  #resolveShared(actorId: string): Promise<string> {
    let pending = this.#resolving.get(actorId);
    if (!pending) {
      pending = this.#resolve(actorId).finally(() => this.#resolving.delete(actorId));
      this.#resolving.set(actorId, pending);
    }
    return pending;
  }

  async #resolve(actorId: string): Promise<string> {
    this.#stats.lookups++;
    const record = await this.#placement.lookup(actorId);
    // Cached only after a reply, so a later cache hit cannot overtake an earlier send.
    if (record && this.#membership.isLive(record.node)) return record.node;
    const nodes = this.#membership.liveNodes();
    if (nodes.length === 0) throw new UnavailableError("No live node to place the actor on");
    const open = nodes.filter((n) => !n.draining);
    // Every live node is shutting down: an actor placed now would be stopped at once, and a
    // node that has stopped its actors answers `moved` until it leaves, so re-sending there
    // only loops until the deadline (10,000 sessions closing at a node's stop did just that).
    if (open.length === 0) {
      throw new UnavailableError("Every live node is draining: none takes new actors");
    }
    return this.#strategy(actorId, open.map((n) => n.id));
  }

  #remember(actorId: string, node: string): void {
    const cache = this.#cache;
    if (cache.get(actorId) === node) return;
    cache.delete(actorId);
    cache.set(actorId, node);
    if (cache.size > this.#cacheMax) {
      // Map iteration is insertion order: the first key is the oldest entry.
      cache.delete(cache.keys().next().value!);
    }
  }

  #forget(actorId: string, node: string): void {
    if (this.#cache.get(actorId) === node) this.#cache.delete(actorId);
  }
}
