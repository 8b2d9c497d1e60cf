/**
 * The placement directory in Redis: the {@link Placement} port for a cluster.
 *
 * A record is a hash `<prefix>p:<actorId>` with fields `n` (node), `e` (epoch) and `l` (lease
 * expiry, ms). Claim, lookup, renew and release are each ONE Lua script, so each is atomic and
 * judges leases by the Redis server's clock (`TIME`), never by a node's. A released record is
 * kept as a tombstone with its epoch (and every record expires `retainMs` after its lease), so
 * epochs grow even when a caller passes a low `minEpoch`; after Redis loses its data the
 * caller's `minEpoch` (store epoch + 1) keeps them growing.
 *
 * While Redis is unreachable every call rejects at once with UnavailableError; the client
 * reconnects by itself and the adapter works again without any action (scripts are re-loaded
 * automatically after a restart).
 *
 * @module
 */

import type { ClaimOptions, ClaimResult, Placement, PlacementRecord } from "./placement.ts";
import {
  closeRedis,
  connectRedis,
  type RedisClient,
  type RedisClientOptions,
  unavailableOnFailure,
} from "./client_redis.ts";

/** Options of {@link RedisPlacement}. */
export interface RedisPlacementOptions extends RedisClientOptions {
  /** Prefix of every key (default `im:`), so several clusters or tests can share one Redis. */
  keyPrefix?: string;
  /** How long a record (or tombstone) outlives its lease, ms (default one hour). */
  retainMs?: number;
  /** Actors per renew script call; larger batches are pipelined in one round trip. */
  renewChunk?: number;
}

const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

// KEYS[1] record; ARGV: node, leaseMs, minEpoch, retainMs, dead nodes...
const CLAIM = NOW + `
local node = ARGV[1]
local leaseMs = tonumber(ARGV[2])
local minEpoch = tonumber(ARGV[3])
local retainMs = tonumber(ARGV[4])
local cur = redis.call('HMGET', KEYS[1], 'n', 'e', 'l')
local curNode = cur[1] or ''
local curEpoch = tonumber(cur[2]) or 0
local curLease = tonumber(cur[3]) or 0
local live = curNode ~= '' and curLease > now
if live and curNode ~= node then
  local dead = false
  for i = 5, #ARGV do
    if ARGV[i] == curNode then dead = true break end
  end
  if not dead then return {0, curNode, curEpoch, curLease} end
end
local epoch
if live and curNode == node then epoch = math.max(curEpoch, minEpoch) else epoch = math.max(curEpoch + 1, minEpoch) end
local lease = now + leaseMs
redis.call('HSET', KEYS[1], 'n', node, 'e', string.format('%.0f', epoch), 'l', string.format('%.0f', lease))
redis.call('PEXPIRE', KEYS[1], leaseMs + retainMs)
return {1, node, epoch, lease}
`;

// KEYS[1] record
const LOOKUP = NOW + `
local cur = redis.call('HMGET', KEYS[1], 'n', 'e', 'l')
local lease = tonumber(cur[3]) or 0
if not cur[1] or cur[1] == '' or lease <= now then return false end
return {cur[1], tonumber(cur[2]), lease}
`;

// KEYS: records; ARGV: node, leaseMs, retainMs, epochs (same order as KEYS)
const RENEW = NOW + `
local node = ARGV[1]
local leaseMs = tonumber(ARGV[2])
local retainMs = tonumber(ARGV[3])
local lease = string.format('%.0f', now + leaseMs)
local lost = {}
for i = 1, #KEYS do
  local cur = redis.call('HMGET', KEYS[i], 'n', 'e', 'l')
  if cur[1] == node and cur[2] == ARGV[i + 3] and (tonumber(cur[3]) or 0) > now then
    redis.call('HSET', KEYS[i], 'l', lease)
    redis.call('PEXPIRE', KEYS[i], leaseMs + retainMs)
  else
    lost[#lost + 1] = i
  end
end
return lost
`;

// KEYS[1] record; ARGV: node, epoch, retainMs
const RELEASE = `
local cur = redis.call('HMGET', KEYS[1], 'n', 'e')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] then
  redis.call('HSET', KEYS[1], 'n', '', 'l', '0')
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
  return 1
end
return 0
`;

type ClaimReply = [number, string, number, number];
type LookupReply = [string, number, number] | null;

interface PlacementScripts {
  imPlacementClaim(key: string, ...args: (string | number)[]): Promise<ClaimReply>;
  imPlacementLookup(key: string): Promise<LookupReply>;
  imPlacementRenew(numKeys: number, ...args: (string | number)[]): Promise<number[]>;
  imPlacementRelease(key: string, node: string, epoch: string, retainMs: number): Promise<number>;
}

/** The {@link Placement} port over Redis (see the module doc). */
export class RedisPlacement implements Placement {
  readonly #redis: RedisClient & PlacementScripts;
  readonly #prefix: string;
  readonly #retainMs: number;
  readonly #renewChunk: number;

  private constructor(redis: RedisClient, options: RedisPlacementOptions) {
    redis.defineCommand("imPlacementClaim", { numberOfKeys: 1, lua: CLAIM });
    redis.defineCommand("imPlacementLookup", { numberOfKeys: 1, lua: LOOKUP });
    redis.defineCommand("imPlacementRenew", { lua: RENEW });
    redis.defineCommand("imPlacementRelease", { numberOfKeys: 1, lua: RELEASE });
    this.#redis = redis as RedisClient & PlacementScripts;
    this.#prefix = `${options.keyPrefix ?? "im:"}p:`;
    this.#retainMs = options.retainMs ?? 3_600_000;
    this.#renewChunk = options.renewChunk ?? 1_000;
  }

  /** Connects to Redis; rejects with UnavailableError when it cannot be reached. */
  static async connect(options: RedisPlacementOptions = {}): Promise<RedisPlacement> {
    const redis = await connectRedis({ connectionName: "im-placement", ...options });
    return new RedisPlacement(redis, options);
  }

  /** The current record with an unexpired lease (by the Redis clock), or null. */
  lookup(actorId: string): Promise<PlacementRecord | null> {
    return unavailableOnFailure("placement lookup", async () => {
      const r = await this.#redis.imPlacementLookup(this.#prefix + actorId);
      if (!r) return null;
      return { actorId, node: r[0], epoch: Number(r[1]), leaseUntil: Number(r[2]) };
    });
  }

  /** One atomic compare-and-set claim (see the port's module doc). */
  claim(actorId: string, node: string, options: ClaimOptions): Promise<ClaimResult> {
    return unavailableOnFailure("placement claim", async () => {
      const r = await this.#redis.imPlacementClaim(
        this.#prefix + actorId,
        node,
        Math.max(1, Math.ceil(options.leaseMs)),
        options.minEpoch,
        this.#retainMs,
        ...(options.deadNodes ?? []),
      );
      const record = {
        actorId,
        node: r[1],
        epoch: Number(r[2]),
        leaseUntil: Number(r[3]),
      };
      return r[0] === 1 ? { claimed: true, record } : { claimed: false, record };
    });
  }

  /**
   * Extends the leases `node` holds with the given epochs, in one round trip (chunks of
   * `renewChunk` actors per script, pipelined). Resolves with the actor ids it no longer holds.
   */
  renew(
    node: string,
    actors: { actorId: string; epoch: number }[],
    leaseMs: number,
  ): Promise<string[]> {
    if (actors.length === 0) return Promise.resolve([]);
    return unavailableOnFailure("placement renew", async () => {
      const pipeline = this.#redis.pipeline() as unknown as PlacementScripts & {
        exec(): Promise<[Error | null, unknown][] | null>;
      };
      const chunks: { actorId: string; epoch: number }[][] = [];
      for (let i = 0; i < actors.length; i += this.#renewChunk) {
        const chunk = actors.slice(i, i + this.#renewChunk);
        chunks.push(chunk);
        pipeline.imPlacementRenew(
          chunk.length,
          ...chunk.map((a) => this.#prefix + a.actorId),
          node,
          Math.max(1, Math.ceil(leaseMs)),
          this.#retainMs,
          ...chunk.map((a) => String(a.epoch)),
        );
      }
      const results = await pipeline.exec();
      if (!results) throw new Error("pipeline aborted");
      const lost: string[] = [];
      results.forEach(([err, indices], c) => {
        if (err) throw err;
        for (const i of indices as number[]) lost.push(chunks[c][i - 1].actorId);
      });
      return lost;
    });
  }

  /** Clears the record if it is still `node`'s with `epoch` (the epoch stays as a tombstone). */
  release(actorId: string, node: string, epoch: number): Promise<void> {
    return unavailableOnFailure("placement release", async () => {
      await this.#redis.imPlacementRelease(
        this.#prefix + actorId,
        node,
        String(epoch),
        this.#retainMs,
      );
    });
  }

  /** Closes the connection. */
  close(): Promise<void> {
    return closeRedis(this.#redis);
  }
}
