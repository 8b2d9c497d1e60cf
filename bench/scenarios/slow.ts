/**
 * Scenario 6 — slow consumers: groups whose members all get every message; the same open-loop
 * load runs first with every member reading, then with 5 % of the members connected but never
 * reading (raw sockets that stop after `auth`). Measured: the readers' delivery p99 in both runs,
 * the server's peak RSS growth during the second, and how many sockets the server shed.
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
  request,
  runLoad,
  serverRss,
  type Sizes,
  sleep,
} from "../harness.ts";
import type { GeneratorPool } from "../generator_pool.ts";

/** What scenario 6 measured. */
export interface SlowResult {
  members: number;
  slow: number;
  rate: number;
  textBytes: number;
  baseline: LoadResult;
  withSlow: LoadResult;
  rssBefore: number;
  rssPeak: number;
  /** Sockets the server closed as slow consumers during the run (from /metrics). */
  shed: number;
}

async function slowClosed(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^im_slow_consumers_closed_total\s+(\d+)/m.exec(text)?.[1] ?? 0);
}

/** Runs scenario 6 on a one-node `dep` of our server. */
export async function slowScenario(
  dep: Deployment,
  pool: GeneratorPool,
  sizes: Sizes,
  tag: string,
): Promise<SlowResult> {
  const size = sizes.slowGroupSize;
  const groups = sizes.slowGroups;
  const users = await accounts(dep, pool, size * groups, `s${tag}_`);
  const slowPer = Math.max(1, Math.round(size * 0.05));
  const isSlow = (i: number) => i % size >= size - slowPer;
  const readers = users.map((account, key) => ({ key, account, server: 0 })).filter((p) =>
    !isSlow(p.key)
  );
  await connectClients(dep, pool, readers);
  const senders = [];
  for (let g = 0; g < groups; g++) {
    const owner = g * size;
    const ok = await request(pool, owner, {
      op: "group.create",
      name: "slow",
      members: users.slice(owner + 1, owner + size).map((u) => u.userId),
    });
    if (ok.op !== "ok") throw new Error(`group.create: ${ok.code}`);
    senders.push({ key: owner, to: { group: String(ok.groupId) } });
  }
  // Large texts and one busy group, so a stalled member's backlog outgrows the kernel's socket
  // buffers and MAX_SOCKET_BUFFER_BYTES within the run; 40 % of the saturation rate, so the
  // readers' latency measures the slow consumers' effect, not an overloaded server.
  const textBytes = 8000;
  await prime(dep, pool, senders, sizes.quick);
  // --quick: a fixed modest rate instead of measuring saturation first (time).
  const saturation = sizes.quick ? null : await runLoad(dep, pool, {
    mode: "closed",
    window: 4,
    senders,
    durationMs: sizes.durationMs,
    warmupMs: sizes.warmupMs,
    drainMs: sizes.drainMs,
    textBytes,
  });
  const rate = saturation ? Math.max(10, Math.min(400, Math.round(saturation.okPerSec * 0.4))) : 50;
  const durationMs = sizes.quick ? 1500 : 30_000;
  const phase = {
    mode: "open" as const,
    rate,
    senders,
    durationMs,
    warmupMs: sizes.warmupMs,
    drainMs: sizes.drainMs,
    textBytes,
  };
  const baseline = await runLoad(dep, pool, phase);
  const slowList = users.map((u, i) => ({ u, i })).filter(({ i }) => isSlow(i));
  await Promise.all(pool.gens.map((g, gi) =>
    g.call("stall", {
      clients: slowList.filter(({ i }) => i % pool.gens.length === gi).map(({ u }) => ({
        url: dep.servers[0].url,
        token: u.token,
      })),
    })
  ));
  await sleep(500);
  const shedBefore = await slowClosed(dep.servers[0].url);
  const rssBefore = serverRss(dep);
  let rssPeak = rssBefore;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      rssPeak = Math.max(rssPeak, serverRss(dep));
      await sleep(200);
    }
  })();
  const withSlow = await runLoad(dep, pool, phase);
  sampling = false;
  await sampler;
  const shed = (await slowClosed(dep.servers[0].url)) - shedBefore;
  await closeClients(pool);
  const out = {
    members: users.length,
    slow: slowList.length,
    rate,
    textBytes,
    baseline,
    withSlow,
    rssBefore,
    rssPeak,
    shed,
  };
  log(
    `slow consumers: p99 ${baseline.deliveryLatency.p99} → ${withSlow.deliveryLatency.p99} ms, ` +
      `RSS +${((rssPeak - rssBefore) / 1048576).toFixed(1)} MiB, shed ${shed}/${slowList.length}`,
  );
  return out;
}
