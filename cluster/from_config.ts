/**
 * Picks the cluster adapters for a node's configuration: the memory adapters in embedded mode,
 * Redis (membership, placement) and NATS (transport) in cluster mode. A dependency that does not
 * answer at start-up rejects with an error naming it.
 *
 * @module
 */
import type { Config } from "../config.ts";
import type { Logger } from "../observability/log.ts";
import type { Membership } from "./membership.ts";
import { MemoryMembership, MemoryRegistry } from "./membership_memory.ts";
import type { Placement } from "./placement.ts";
import { MemoryPlacement } from "./placement_memory.ts";
import type { Transport } from "./transport.ts";
import { MemoryNetwork, MemoryTransport } from "./transport_memory.ts";

/** The adapters of one node. */
export interface ClusterAdapters {
  membership: Membership;
  placement: Placement;
  transport: Transport;
  close(): Promise<void>;
}

/** Shared in-process state so several in-process nodes form one memory cluster (tests). */
export interface MemoryCluster {
  network: MemoryNetwork;
  placement: MemoryPlacement;
  membershipFor(nodeId: string): MemoryMembership;
}

/** Creates a fresh in-process cluster. */
export function createMemoryCluster(
  timing: { heartbeatMs?: number; ttlMs?: number } = {},
): MemoryCluster {
  const registry = new MemoryRegistry();
  return {
    network: new MemoryNetwork(),
    placement: new MemoryPlacement(),
    membershipFor: () => new MemoryMembership({ registry, ...timing }),
  };
}

/** Builds and connects the adapters for `config`. */
export async function clusterAdapters(
  config: Config,
  nodeId: string,
  logger: Logger,
  memory?: MemoryCluster,
): Promise<ClusterAdapters> {
  if (config.mode === "embedded") {
    // A lone embedded node cannot lose its membership to anyone: a stalled event loop (a long
    // synchronous store write) must not make it fence itself off for good.
    const m = memory ?? createMemoryCluster({ ttlMs: 365 * 86_400_000 });
    const membership = m.membershipFor(nodeId);
    const transport = new MemoryTransport({ nodeId, network: m.network });
    return {
      membership,
      placement: m.placement,
      transport,
      close: async () => {
        await transport.close();
      },
    };
  }
  const { connectRedisCluster } = await import("./redis_nats.ts");
  return await connectRedisCluster(config, nodeId, logger);
}
