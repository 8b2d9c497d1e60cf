/**
 * Test helpers for the Redis adapters' tests: unique key prefixes and their clean-up.
 *
 * @module
 */

import { closeRedis, connectRedis } from "./client_redis.ts";

/** The machine's shared Redis, used by the contract tests. */
export const SHARED_REDIS_URL = Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379";

/** A key prefix no other test run uses. */
export function uniquePrefix(what: string): string {
  return `test:${what}:${crypto.randomUUID()}:`;
}

/** Deletes every key under `prefix`; resolves with how many there were. */
export async function deleteKeys(url: string, prefix: string): Promise<number> {
  const redis = await connectRedis({ url });
  try {
    let cursor = "0";
    let deleted = 0;
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.del(...keys);
    } while (cursor !== "0");
    return deleted;
  } finally {
    await closeRedis(redis);
  }
}
