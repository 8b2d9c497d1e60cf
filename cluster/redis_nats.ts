/**
 * Connects the cluster adapters of a cluster-mode node: Redis membership and placement, NATS
 * transport. A dependency that does not answer at start-up rejects with an error that names it
 * (the node then refuses to start); at run time the adapters reconnect by themselves.
 *
 * @module
 */
import type { Config } from "../config.ts";
import type { Logger } from "../observability/log.ts";
import type { ClusterAdapters } from "./from_config.ts";
import { RedisMembership } from "./membership_redis.ts";
import { RedisPlacement } from "./placement_redis.ts";
import { NatsTransport } from "./transport_nats.ts";

/** Connects Redis and NATS for `config` (cluster mode). */
export async function connectRedisCluster(
  config: Config,
  nodeId: string,
  logger: Logger,
): Promise<ClusterAdapters> {
  const keyPrefix = `${config.redisPrefix}:`;
  const opened: Array<{ close(): Promise<void> }> = [];
  const closeAll = async () => {
    for (const o of opened.reverse()) {
      await o.close().catch((err) => logger.warn("cluster adapter close failed", { err }));
    }
  };
  try {
    const membership = await named("Redis", config.redisUrl!, () =>
      RedisMembership.connect({
        url: config.redisUrl,
        keyPrefix,
        heartbeatMs: config.heartbeatMs,
        ttlMs: config.memberTtlMs,
        connectionName: `im-${nodeId}-membership`,
      }));
    opened.push(membership);
    const placement = await named("Redis", config.redisUrl!, () =>
      RedisPlacement.connect({
        url: config.redisUrl,
        keyPrefix,
        connectionName: `im-${nodeId}-placement`,
      }));
    opened.push(placement);
    const transport = await named("NATS", config.natsUrl!, () =>
      NatsTransport.connect({
        nodeId,
        servers: config.natsUrl!.split(",").map((s) => s.trim()),
        subjectPrefix: config.natsPrefix,
        log: logger,
      }));
    opened.push(transport);
    return { membership, placement, transport, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

async function named<T>(what: string, url: string, connect: () => Promise<T>): Promise<T> {
  try {
    return await connect();
  } catch (err) {
    const safeUrl = url.replace(/\/\/[^@/]*@/, "//***@");
    throw new Error(`${what} at ${safeUrl} cannot be reached: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
