/**
 * In-process membership: the {@link Membership} port for a single node and for in-process tests
 * of several nodes (their MemoryMemberships share one {@link MemoryRegistry}).
 *
 * It keeps the port's rules with a real heartbeat and TTL: a member whose heartbeats stop (see
 * {@link MemoryMembership.crash}) leaves the live view of the others once its TTL passes, and a
 * member whose own heartbeat timer could not run for a whole TTL (a stalled event loop) finds
 * itself expired, stops and runs its `onSelfLost` handlers.
 *
 * @module
 */

import type { Membership, NodeInfo } from "./membership.ts";

/** Options of {@link MemoryMembership}. */
export interface MemoryMembershipOptions {
  /** Shared by the members of one in-process cluster; a private one by default. */
  registry?: MemoryRegistry;
  /** Heartbeat (and view refresh) interval in milliseconds, default 1000. */
  heartbeatMs?: number;
  /** Time without heartbeat after which a member is dead, milliseconds, default 3000. */
  ttlMs?: number;
  /** Clock, milliseconds since the epoch (default `Date.now`). */
  now?: () => number;
}

interface RegistryEntry {
  info: NodeInfo;
  expiresAt: number;
}

/** The shared registry of an in-process cluster: node id → info and heartbeat expiry. */
export class MemoryRegistry {
  readonly #entries = new Map<string, RegistryEntry>();
  readonly #members = new Set<MemoryMembership>();

  /** Records a heartbeat of `info` valid until `expiresAt`. */
  put(info: NodeInfo, expiresAt: number): void {
    this.#entries.set(info.id, { info, expiresAt });
  }

  /** The heartbeat expiry of `nodeId`, or undefined when it is not registered. */
  expiry(nodeId: string): number | undefined {
    return this.#entries.get(nodeId)?.expiresAt;
  }

  /** Removes `nodeId` from the registry. */
  remove(nodeId: string): void {
    this.#entries.delete(nodeId);
  }

  /** The nodes whose heartbeat has not expired at `now` (expired ones are pruned). */
  live(now: number): NodeInfo[] {
    const out: NodeInfo[] = [];
    for (const [id, e] of this.#entries) {
      if (e.expiresAt > now) out.push(e.info);
      else this.#entries.delete(id);
    }
    return out;
  }

  /** Members refreshed at once when another member joins or leaves. */
  attach(member: MemoryMembership): void {
    this.#members.add(member);
  }

  /** Stops notifying `member`. */
  detach(member: MemoryMembership): void {
    this.#members.delete(member);
  }

  /** Makes every attached member re-read the registry now. */
  notify(): void {
    for (const m of this.#members) m.refreshNow();
  }
}

/**
 * The {@link Membership} port in memory. `liveNodes()` and `isLive()` answer from a local view
 * that is refreshed on every heartbeat and whenever a member of the same registry joins or
 * leaves; `onChange` handlers run when the set of live ids changes.
 */
export class MemoryMembership implements Membership {
  readonly #registry: MemoryRegistry;
  readonly #heartbeatMs: number;
  readonly #ttlMs: number;
  readonly #now: () => number;
  #self: NodeInfo | null = null;
  #timer: ReturnType<typeof setInterval> | undefined;
  #lastBeat = 0;
  #view = new Map<string, NodeInfo>();
  #viewList: NodeInfo[] = [];
  readonly #changeHandlers: ((nodes: NodeInfo[]) => void)[] = [];
  readonly #lostHandlers: (() => void)[] = [];

  constructor(options: MemoryMembershipOptions = {}) {
    this.#registry = options.registry ?? new MemoryRegistry();
    this.#heartbeatMs = options.heartbeatMs ?? 1000;
    this.#ttlMs = options.ttlMs ?? 3000;
    this.#now = options.now ?? Date.now;
    if (this.#ttlMs <= this.#heartbeatMs) {
      throw new RangeError("ttlMs must be larger than heartbeatMs");
    }
  }

  /** Registers `self`, starts heartbeating and makes the other members see it at once. */
  join(self: NodeInfo): Promise<void> {
    if (this.#self) return Promise.reject(new Error("Membership already joined"));
    this.#self = self;
    this.#lastBeat = this.#now();
    this.#registry.put(self, this.#lastBeat + this.#ttlMs);
    this.#registry.attach(this);
    this.#timer = setInterval(() => this.#tick(), this.#heartbeatMs);
    this.#registry.notify();
    return Promise.resolve();
  }

  /** Stops heartbeating and removes this node from the registry at once. */
  leave(): Promise<void> {
    const self = this.#self;
    this.#stop();
    if (self) {
      this.#registry.remove(self.id);
      this.#registry.notify();
    }
    this.#apply([]);
    return Promise.resolve();
  }

  /** Re-announces this node with `draining: true` (the others see it at once). */
  drain(): Promise<void> {
    const self = this.#self;
    if (!self || self.draining) return Promise.resolve();
    this.#self = { ...self, draining: true };
    this.#registry.put(this.#self, this.#now() + this.#ttlMs);
    this.#registry.notify();
    return Promise.resolve();
  }

  /**
   * Fault injection for tests: stops heartbeating without deregistering, as a killed process
   * would. The others drop this node once its TTL passes.
   */
  crash(): void {
    this.#stop();
  }

  /** Live nodes from the local view. */
  liveNodes(): NodeInfo[] {
    return this.#viewList;
  }

  /** Re-reads the registry now. */
  refresh(): Promise<NodeInfo[]> {
    this.refreshNow();
    return Promise.resolve(this.#viewList);
  }

  /** Whether `nodeId` is in the local live view. */
  isLive(nodeId: string): boolean {
    return this.#view.has(nodeId);
  }

  /** Called with the new view whenever the live set changes. */
  onChange(handler: (nodes: NodeInfo[]) => void): void {
    this.#changeHandlers.push(handler);
  }

  /** Called when this node has failed to heartbeat for a whole TTL. */
  onSelfLost(handler: () => void): void {
    this.#lostHandlers.push(handler);
  }

  /** Re-reads the registry synchronously (used by the registry's notifications). */
  refreshNow(): void {
    if (this.#self === null) return;
    this.#apply(this.#registry.live(this.#now()));
  }

  #tick(): void {
    const self = this.#self;
    if (!self) return;
    const now = this.#now();
    const expiry = this.#registry.expiry(self.id);
    // The timer could not run for a whole TTL: the others already consider this node dead.
    if (expiry === undefined || expiry <= now || now - this.#lastBeat > this.#ttlMs) {
      this.#stop();
      this.#registry.remove(self.id);
      this.#apply([]);
      this.#registry.notify();
      for (const h of this.#lostHandlers) {
        try {
          h();
        } catch (err) {
          console.error("membership: onSelfLost handler failed", err);
        }
      }
      return;
    }
    this.#lastBeat = now;
    this.#registry.put(self, now + this.#ttlMs);
    this.#apply(this.#registry.live(now));
  }

  #stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#registry.detach(this);
    this.#self = null;
  }

  #apply(nodes: NodeInfo[]): void {
    let changed = nodes.length !== this.#view.size;
    if (!changed) {
      for (const n of nodes) {
        // A node that starts draining is a change too (the router stops placing actors on it).
        if (!this.#view.has(n.id) || !this.#view.get(n.id)!.draining !== !n.draining) {
          changed = true;
          break;
        }
      }
    }
    if (!changed) return;
    this.#view = new Map(nodes.map((n) => [n.id, n]));
    this.#viewList = nodes;
    for (const h of this.#changeHandlers) {
      try {
        h(nodes);
      } catch (err) {
        console.error("membership: onChange handler failed", err);
      }
    }
  }
}
