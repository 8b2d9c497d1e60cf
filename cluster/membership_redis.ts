/**
 * Membership in Redis: the {@link Membership} port for a cluster.
 *
 * Each node owns a key `<prefix>m:n:<nodeId>` holding its {@link NodeInfo} (JSON) with a PX
 * TTL, and an entry in the sorted set `<prefix>m:nodes` scored by its expiry (last heartbeat +
 * TTL, on the Redis clock). A heartbeat re-sets the key and reads the live set in ONE Lua call,
 * so the local view is refreshed on every heartbeat; expired entries are pruned by whoever
 * reads.
 *
 * Self-fencing: a heartbeat only extends a key that still exists. When this node's key has
 * expired (the process stalled, or Redis was unreachable for a whole TTL) the node is dead for
 * the others: heartbeats stop, the view empties and the `onSelfLost` handlers run. When the key
 * vanished although it cannot have expired yet (Redis restarted without its data), the node
 * simply registers again. A lost member stays stopped until `join` is called again (after the
 * node has dropped its actors).
 *
 * @module
 */

import type { Membership, NodeInfo } from "./membership.ts";
import {
  closeRedis,
  connectRedis,
  type RedisClient,
  type RedisClientOptions,
  unavailableOnFailure,
} from "./client_redis.ts";

/** Options of {@link RedisMembership}. */
export interface RedisMembershipOptions extends RedisClientOptions {
  /** Prefix of every key (default `im:`), so several clusters or tests can share one Redis. */
  keyPrefix?: string;
  /** Heartbeat and view refresh interval, ms (default 1000). */
  heartbeatMs?: number;
  /** A node whose heartbeats stop for this long is dead, ms (default 3000). */
  ttlMs?: number;
}

const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

// KEYS[1] zset; ARGV[1] node key prefix. Returns the infos of the live nodes.
const READ_VIEW = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {1}
for i = 1, #ids do
  local info = redis.call('GET', ARGV[1] .. ids[i])
  if info then out[#out + 1] = info else redis.call('ZREM', KEYS[1], ids[i]) end
end
return out
`;

// KEYS[1] zset; ARGV: node key prefix, id, info, ttlMs, mode ('join' | 'beat')
const BEAT = NOW + `
local key = ARGV[1] .. ARGV[2]
local ttl = tonumber(ARGV[4])
if ARGV[5] == 'beat' and redis.call('EXISTS', key) == 0 then return {0} end
redis.call('SET', key, ARGV[3], 'PX', ttl)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
` + READ_VIEW;

const READ = NOW + READ_VIEW;

// KEYS[1] zset; ARGV: node key prefix, id
const LEAVE = `
redis.call('DEL', ARGV[1] .. ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[2])
return 1
`;

interface MembershipScripts {
  imMemberBeat(
    zset: string,
    keyPrefix: string,
    id: string,
    info: string,
    ttlMs: number,
    mode: "join" | "beat",
  ): Promise<(number | string)[]>;
  imMemberRead(zset: string, keyPrefix: string): Promise<(number | string)[]>;
  imMemberLeave(zset: string, keyPrefix: string, id: string): Promise<number>;
}

/** The {@link Membership} port over Redis (see the module doc). */
export class RedisMembership implements Membership {
  readonly #redis: RedisClient & MembershipScripts;
  readonly #zset: string;
  readonly #nodePrefix: string;
  readonly #heartbeatMs: number;
  readonly #ttlMs: number;
  #self: NodeInfo | null = null;
  #selfJson = "";
  #timer: ReturnType<typeof setInterval> | undefined;
  #beating = false;
  /** performance.now() when the last successful heartbeat was sent. */
  #lastOkSentAt = 0;
  #failing = false;
  #closed = false;
  #view = new Map<string, NodeInfo>();
  #viewList: NodeInfo[] = [];
  readonly #changeHandlers: ((nodes: NodeInfo[]) => void)[] = [];
  readonly #lostHandlers: (() => void)[] = [];

  private constructor(redis: RedisClient, options: RedisMembershipOptions) {
    redis.defineCommand("imMemberBeat", { numberOfKeys: 1, lua: BEAT });
    redis.defineCommand("imMemberRead", { numberOfKeys: 1, lua: READ });
    redis.defineCommand("imMemberLeave", { numberOfKeys: 1, lua: LEAVE });
    this.#redis = redis as RedisClient & MembershipScripts;
    const prefix = options.keyPrefix ?? "im:";
    this.#zset = `${prefix}m:nodes`;
    this.#nodePrefix = `${prefix}m:n:`;
    this.#heartbeatMs = options.heartbeatMs ?? 1000;
    this.#ttlMs = options.ttlMs ?? 3000;
  }

  /** Connects to Redis; rejects with UnavailableError when it cannot be reached. */
  static async connect(options: RedisMembershipOptions = {}): Promise<RedisMembership> {
    const heartbeatMs = options.heartbeatMs ?? 1000;
    const ttlMs = options.ttlMs ?? 3000;
    if (ttlMs <= heartbeatMs) throw new RangeError("ttlMs must be larger than heartbeatMs");
    const redis = await connectRedis({
      connectionName: "im-membership",
      // A heartbeat stuck longer than half a TTL is a failed heartbeat.
      commandTimeoutMs: Math.min(2_000, Math.max(50, Math.floor(ttlMs / 2))),
      ...options,
    });
    return new RedisMembership(redis, options);
  }

  /** Registers `self`, starts heartbeating and reads the live set. */
  async join(self: NodeInfo): Promise<void> {
    if (this.#self || this.#closed) throw new Error("Membership already joined or closed");
    const json = JSON.stringify(self);
    const sentAt = performance.now();
    const reply = await unavailableOnFailure(
      "membership join",
      () =>
        this.#redis.imMemberBeat(this.#zset, this.#nodePrefix, self.id, json, this.#ttlMs, "join"),
    );
    this.#self = self;
    this.#selfJson = json;
    this.#lastOkSentAt = sentAt;
    this.#apply(reply);
    this.#timer = setInterval(() => this.#tick(), this.#heartbeatMs);
  }

  /**
   * Stops heartbeating, removes this node from the registry at once and closes the connection
   * (an instance is done after leaving). Rejects with UnavailableError when Redis could not be
   * told; the node then drops out when its TTL passes.
   */
  async leave(): Promise<void> {
    const self = this.#self;
    this.#stop();
    this.#applyList([]);
    try {
      if (self && this.#redis.status === "ready") {
        await unavailableOnFailure(
          "membership leave",
          () => this.#redis.imMemberLeave(this.#zset, this.#nodePrefix, self.id),
        );
      }
    } finally {
      await this.close();
    }
  }

  /** Re-announces this node with `draining: true` now (see the port). */
  async drain(): Promise<void> {
    const self = this.#self;
    if (!self || self.draining) return;
    const draining = { ...self, draining: true };
    const json = JSON.stringify(draining);
    const sentAt = performance.now();
    const reply = await unavailableOnFailure(
      "membership drain",
      () =>
        this.#redis.imMemberBeat(this.#zset, this.#nodePrefix, self.id, json, this.#ttlMs, "beat"),
    );
    if (this.#self !== self || reply[0] === 0) return;
    this.#self = draining;
    this.#selfJson = json;
    this.#lastOkSentAt = sentAt;
    this.#apply(reply);
  }

  /**
   * Fault injection for tests: stops heartbeating without deregistering, as a killed process
   * would. Call {@link close} afterwards to release the connection.
   */
  crash(): void {
    this.#stop();
  }

  /** Closes the connection without deregistering (idempotent). */
  async close(): Promise<void> {
    this.#stop();
    if (this.#closed) return;
    this.#closed = true;
    await closeRedis(this.#redis);
  }

  /** Live nodes from the local view. */
  liveNodes(): NodeInfo[] {
    return this.#viewList;
  }

  /** Re-reads the registry now; rejects with UnavailableError when Redis is unreachable. */
  async refresh(): Promise<NodeInfo[]> {
    const reply = await unavailableOnFailure(
      "membership refresh",
      () => this.#redis.imMemberRead(this.#zset, this.#nodePrefix),
    );
    // A node that has not joined (or was lost) keeps an empty view.
    if (this.#self) this.#apply(reply);
    return this.#viewList;
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

  async #tick(): Promise<void> {
    const self = this.#self;
    if (!self) return;
    if (performance.now() - this.#lastOkSentAt > this.#ttlMs) {
      this.#lose("no successful heartbeat for a whole TTL");
      return;
    }
    if (this.#beating) return;
    this.#beating = true;
    const sentAt = performance.now();
    try {
      let reply = await this.#redis.imMemberBeat(
        this.#zset,
        this.#nodePrefix,
        self.id,
        this.#selfJson,
        this.#ttlMs,
        "beat",
      );
      if (this.#self !== self) return;
      if (reply[0] === 0) {
        // Our key set at (or after) #lastOkSentAt cannot have expired before now unless a TTL
        // has passed; if it has not, Redis lost its data and we simply register again.
        if (performance.now() - this.#lastOkSentAt > this.#ttlMs) {
          this.#lose("its registry entry expired");
          return;
        }
        reply = await this.#redis.imMemberBeat(
          this.#zset,
          this.#nodePrefix,
          self.id,
          this.#selfJson,
          this.#ttlMs,
          "join",
        );
        if (this.#self !== self) return;
      }
      this.#lastOkSentAt = sentAt;
      if (this.#failing) console.warn("membership: heartbeats restored");
      this.#failing = false;
      this.#apply(reply);
    } catch (err) {
      if (!this.#failing) {
        console.warn(`membership: heartbeat failed (${(err as Error).message}); retrying`);
      }
      this.#failing = true;
    } finally {
      this.#beating = false;
    }
  }

  #lose(why: string): void {
    console.warn(`membership: node ${this.#self?.id} lost: ${why}`);
    this.#stop();
    this.#applyList([]);
    for (const h of this.#lostHandlers) {
      try {
        h();
      } catch (err) {
        console.error("membership: onSelfLost handler failed", err);
      }
    }
  }

  #stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#self = null;
  }

  #apply(reply: (number | string)[]): void {
    const nodes: NodeInfo[] = [];
    for (let i = 1; i < reply.length; i++) {
      try {
        nodes.push(JSON.parse(reply[i] as string) as NodeInfo);
      } catch (err) {
        console.warn("membership: ignoring an unreadable registry entry", err);
      }
    }
    this.#applyList(nodes);
  }

  #applyList(nodes: NodeInfo[]): void {
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
