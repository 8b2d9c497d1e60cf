/**
 * How long a graceful stop (SIGTERM → exit) of one node takes when it holds `N` connected users
 * (default 10,000) and one group of all of them: the stop passivates every user actor, writing
 * one snapshot each, after the group's large snapshot has been packed.
 *
 * `deno run -A bench/graceful_stop.ts [N]` (about a minute for 10,000: most of it is signing up
 * and connecting). Prints the stop's duration; run it a few times, the machine is noisy.
 * `CPUPROF=DIR` runs the node with `--cpu-prof` (the profile is written as it exits).
 *
 * @module
 */
import { accounts, connectClients, type Deployment, generators } from "./harness.ts";
import { createGroup } from "./scenarios/fanout.ts";
import { nodeEnv, startOurNode } from "./systems.ts";

const n = Number(Deno.args[0] ?? 10_000);
const dir = Deno.makeTempDirSync({ prefix: "graceful_stop_" });
const server = await startOurNode(nodeEnv({ DATA_DIR: dir }), Deno.env.get("CPUPROF") || undefined);
const pool = generators(2);
const dep: Deployment = { label: "ours (SQLite)", kind: "im", servers: [server], extra: [] };
try {
  const users = await accounts(dep, pool, n, "gs_");
  await connectClients(dep, pool, users.map((account, key) => ({ key, account, server: 0 })));
  await createGroup(pool, 0, users, "everyone");
  const t0 = performance.now();
  await server.stop(120_000);
  console.log(
    `${n} users connected: graceful stop took ${((performance.now() - t0) / 1000).toFixed(2)} s`,
  );
} finally {
  await pool.stop();
  Deno.removeSync(dir, { recursive: true });
}
