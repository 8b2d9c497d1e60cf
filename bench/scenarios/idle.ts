/**
 * Scenario 3 — idle authenticated connections: server memory per connection. RSS of the server
 * processes is read after they settled with no client, then after `n` clients connected and
 * authenticated (spread round-robin over the servers) and settled again.
 *
 * @module
 */
import {
  type Account,
  closeClients,
  connectClients,
  type Deployment,
  log,
  serverRss,
  sleep,
} from "../harness.ts";
import type { GeneratorPool } from "../generator_pool.ts";

/** What scenario 3 measured for one system. */
export interface IdleResult {
  label: string;
  nodes: number;
  connections: number;
  rssBefore: number;
  rssAfter: number;
  /** (rssAfter - rssBefore) / connections, bytes. */
  perConnection: number;
  /** Growth of the V8 heap in use per connection, bytes (our server only: from /metrics). */
  heapPerConnection?: number;
  connectSec: number;
  /** Connections that could not be opened within 30 s (at most 1 %). */
  failed: number;
  firstError: string;
}

/** Connects `users.length` idle clients to `dep` and measures the servers' memory growth. */
export async function idleScenario(
  dep: Deployment,
  pool: GeneratorPool,
  users: Account[],
  settleMs: number,
): Promise<IdleResult> {
  await sleep(settleMs);
  const heapBefore = dep.kind === "im" ? await heapUsed(dep) : 0;
  const rssBefore = serverRss(dep);
  const t0 = performance.now();
  // Up to 1 % of the connections may fail (reported): a connect storm of 50,000 is part of
  // what is measured, not a reason to lose the memory numbers.
  const { failed, firstError } = await connectClients(
    dep,
    pool,
    users.map((account, key) => ({ key, account, server: key % dep.servers.length })),
    64,
    Math.floor(users.length / 100),
  );
  const connectSec = (performance.now() - t0) / 1000;
  const connections = users.length - failed;
  await sleep(settleMs);
  const rssAfter = serverRss(dep);
  const perConnection = (rssAfter - rssBefore) / connections;
  const heapPerConnection = dep.kind === "im"
    ? ((await heapUsed(dep)) - heapBefore) / connections
    : undefined;
  log(
    `${dep.label} idle: ${connections} connections on ${dep.servers.length} node(s): ` +
      `${(perConnection / 1024).toFixed(1)} KiB each (connected in ${connectSec.toFixed(1)} s)`,
  );
  await closeClients(pool);
  return {
    label: dep.label,
    nodes: dep.servers.length,
    connections,
    failed,
    firstError,
    rssBefore,
    rssAfter,
    perConnection,
    heapPerConnection,
    connectSec,
  };
}

/** V8 heap in use, summed over our nodes (their `/metrics`). */
async function heapUsed(dep: Deployment): Promise<number> {
  let total = 0;
  for (const s of dep.servers) {
    const text = await (await fetch(`${s.url}/metrics`)).text();
    total += Number(/^im_memory_heap_used_bytes\s+(\d+)/m.exec(text)?.[1] ?? 0);
  }
  return total;
}
