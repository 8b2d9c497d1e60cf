/**
 * Scenario 4 — a cluster of 3 nodes: pairs of users send to each other, the two sides of a pair
 * connected to the same node or to two different nodes; 0, 50 or 100 % of the pairs are split.
 * Throughput at saturation (closed loop) and the CPU time every server-side process (nodes,
 * Redis, NATS, Postgres backends) spent per delivered message.
 *
 * @module
 */
import {
  type Account,
  closeClients,
  connectClients,
  cpuPerDelivery,
  type Deployment,
  type LoadResult,
  log,
  prime,
  runLoad,
  type Sizes,
} from "../harness.ts";
import type { GeneratorPool } from "../generator_pool.ts";

/** One split ratio on one system. */
export interface ClusterRow {
  label: string;
  /** Percentage of pairs whose two users are on different nodes. */
  crossPct: number;
  saturation: LoadResult;
  /** CPU µs per delivered message: servers only, and servers + Redis + NATS + Postgres. */
  cpuUs: { server: number; all: number };
}

/** Runs scenario 4 on a 3-node `dep` with `users` (2 per pair) already registered. */
export async function clusterScenario(
  dep: Deployment,
  pool: GeneratorPool,
  sizes: Sizes,
  users: Account[],
): Promise<ClusterRow[]> {
  const pairs = Math.floor(users.length / 2);
  const nodes = dep.servers.length;
  const rows: ClusterRow[] = [];
  for (const crossPct of sizes.quick ? [0, 100] : [0, 50, 100]) {
    const cross = Math.round((pairs * crossPct) / 100);
    const plans = [];
    for (let i = 0; i < pairs; i++) {
      const node = i % nodes;
      plans.push({ key: 2 * i, account: users[2 * i], server: node });
      plans.push({
        key: 2 * i + 1,
        account: users[2 * i + 1],
        server: i < cross ? (node + 1) % nodes : node,
      });
    }
    await connectClients(dep, pool, plans);
    const senders = plans.map((p) => ({
      key: p.key,
      to: { user: users[p.key % 2 === 0 ? p.key + 1 : p.key - 1].userId },
    }));
    await prime(dep, pool, senders, sizes.quick);
    const saturation = await runLoad(dep, pool, {
      mode: "closed",
      window: 4,
      senders,
      durationMs: sizes.durationMs,
      warmupMs: sizes.warmupMs,
      drainMs: sizes.drainMs,
    });
    const cpuUs = cpuPerDelivery(saturation);
    log(
      `${dep.label} cluster ${crossPct}% cross: ${saturation.okPerSec.toFixed(0)} sends/s, ` +
        `${saturation.deliveriesPerSec.toFixed(0)} deliveries/s, ${
          cpuUs.all.toFixed(1)
        } CPU-µs/delivery`,
    );
    rows.push({ label: dep.label, crossPct, saturation, cpuUs });
    await closeClients(pool);
  }
  return rows;
}
