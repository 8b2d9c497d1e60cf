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
import { accounts, connectClients, type Deployment, generators, request } from "./harness.ts";
import { nodeEnv, startOurNode } from "./systems.ts";

const n = Number(Deno.args[0] ?? 10_000);
const dir = Deno.makeTempDirSync({ prefix: "graceful_stop_" });
const server = await startOurNode(nodeEnv({ DATA_DIR: dir }), Deno.env.get("CPUPROF") || undefined);
const pool = generators(2);
const dep: Deployment = { label: "ours (SQLite)", kind: "im", servers: [server], extra: [] };
try {
  const users = await accounts(dep, pool, n, "gs_");
  await connectClients(dep, pool, users.map((account, key) => ({ key, account, server: 0 })));
  // group.create takes at most 1,023 ids; the rest join by group.invite, 1,000 at a time.
  const ids = users.map((u) => u.userId);
  const created = await request(pool, 0, {
    op: "group.create",
    name: "everyone",
    members: ids.slice(1, 1000),
  });
  if (created.op !== "ok") throw new Error(`group.create: ${JSON.stringify(created)}`);
  for (let i = 1000; i < n; i += 1000) {
    const r = await request(pool, 0, {
      op: "group.invite",
      group: created.groupId,
      users: ids.slice(i, i + 1000),
    });
    if (r.op !== "ok") throw new Error(`group.invite: ${JSON.stringify(r)}`);
  }
  const t0 = performance.now();
  await server.stop(120_000);
  console.log(
    `${n} users connected: graceful stop took ${((performance.now() - t0) / 1000).toFixed(2)} s`,
  );
} finally {
  await pool.stop();
  Deno.removeSync(dir, { recursive: true });
}
