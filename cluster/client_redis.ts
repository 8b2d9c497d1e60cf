/**
 * The ioredis client the Redis adapters share: it fails fast while Redis is down (no offline
 * queue, one retry per command, a command timeout) and reconnects by itself in the background,
 * so a caller sees UnavailableError during an outage and normal answers again afterwards.
 *
 * @module
 */

// The named export: under Deno the default import has no construct signature in the typings.
import { Redis } from "ioredis";
import { UnavailableError } from "../actors/errors.ts";

/** Connection options of the Redis adapters. */
export interface RedisClientOptions {
  /** `redis://host:port/db` (default `redis://127.0.0.1:6379`). */
  url?: string;
  /** A command that gets no answer within this many milliseconds fails (default 2000). */
  commandTimeoutMs?: number;
  /** Name in `CLIENT LIST`, for operators. */
  connectionName?: string;
}

/** The ioredis client type. */
export type RedisClient = Redis;

/**
 * Connects a new client and waits until it is ready. Rejects with UnavailableError (and leaves
 * nothing running) when Redis cannot be reached.
 */
export async function connectRedis(options: RedisClientOptions = {}): Promise<Redis> {
  const url = options.url ?? "redis://127.0.0.1:6379";
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: options.commandTimeoutMs ?? 2_000,
    connectionName: options.connectionName,
    // Keep trying for ever, at most once a second: the outage may be a restart.
    retryStrategy: (times: number) => Math.min(50 * times, 1_000),
  });
  let down = false;
  redis.on("error", (err: Error) => {
    // One line per outage, not one per reconnect attempt (and never the url's password).
    if (!down) console.warn(`redis: connection lost (${err.message}); reconnecting`);
    down = true;
  });
  redis.on("ready", () => {
    if (down) console.warn("redis: connection restored");
    down = false;
  });
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new UnavailableError("Redis is unreachable", { cause: err });
  }
  return redis;
}

/** Runs a Redis call, turning a driver failure into UnavailableError. */
export async function unavailableOnFailure<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw new UnavailableError(`${what}: Redis unavailable`, { cause: err });
  }
}

/** Closes a client: politely when connected, at once otherwise. */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === "ready") {
    try {
      await redis.quit();
      return;
    } catch {
      // The connection broke while quitting: fall through to a hard disconnect.
    }
  }
  redis.disconnect();
}
