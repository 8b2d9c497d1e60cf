/**
 * Scenario 1 — direct messages: pairs of connected users send to each other. The maximum
 * sustained sends/s is measured closed-loop (a window of outstanding sends per sender), then
 * open-loop latency at 25, 50 and 75 % of it.
 *
 * @module
 */
import {
  accounts,
  closeClients,
  connectClients,
  type Deployment,
  type LoadResult,
  log,
  prime,
  runLoad,
  saturate,
  type Sizes,
} from "../harness.ts";
import type { GeneratorPool } from "../generator_pool.ts";

/** What scenario 1 measured for one system. */
export interface DirectResult {
  label: string;
  saturation: LoadResult;
  /** Open-loop phases at fractions of the saturation rate. */
  levels: Array<{ fraction: number; result: LoadResult }>;
}

/**
 * Scenario 1's users: `pairs` pairs of accounts (named `prefix`…), all connected to the first
 * server; each user sends to the other of its pair (clients 2k and 2k + 1).
 */
export async function connectPairs(
  dep: Deployment,
  pool: GeneratorPool,
  pairs: number,
  prefix: string,
): Promise<Array<{ key: number; to: { user: string } }>> {
  const users = await accounts(dep, pool, pairs * 2, prefix);
  await connectClients(dep, pool, users.map((account, key) => ({ key, account, server: 0 })));
  return users.map((_, key) => ({
    key,
    to: { user: users[key % 2 === 0 ? key + 1 : key - 1].userId },
  }));
}

/** Runs scenario 1 on `dep`. */
export async function directScenario(
  dep: Deployment,
  pool: GeneratorPool,
  sizes: Sizes,
  tag: string,
): Promise<DirectResult> {
  const senders = await connectPairs(dep, pool, sizes.directPairs, `d${tag}_`);
  const phase = { durationMs: sizes.durationMs, warmupMs: sizes.warmupMs, drainMs: sizes.drainMs };
  await prime(dep, pool, senders, sizes.quick);
  const saturation = sizes.quick
    ? await runLoad(dep, pool, { mode: "closed", window: 4, senders, ...phase })
    : await saturate(dep, pool, { mode: "closed", window: 4, senders, ...phase });
  log(
    `${dep.label} direct: max ${saturation.okPerSec.toFixed(0)} sends/s, ${
      saturation.deliveriesPerSec.toFixed(0)
    } deliveries/s (window ${saturation.window})`,
  );
  const levels = [];
  for (const fraction of sizes.quick ? [0.5] : [0.25, 0.5, 0.75]) {
    const result = await runLoad(dep, pool, {
      mode: "open",
      rate: saturation.okPerSec * fraction,
      senders,
      ...phase,
    });
    log(
      `${dep.label} direct @${fraction * 100}%: ${
        result.okPerSec.toFixed(0)
      } ok/s p99 ok ${result.okLatency.p99} ms, delivery ${result.deliveryLatency.p99} ms`,
    );
    levels.push({ fraction, result });
  }
  await closeClients(pool);
  return { label: dep.label, saturation, levels };
}
