/**
 * Measures (does not assert) the CPU cost of a message that crosses nodes against one that stays
 * within a node.
 *
 * A 2-node cluster (nodes A and B, default settings) on private Redis/NATS and a fresh Postgres
 * database (rate limits lifted for the one busy client). Bounded bursts of direct messages,
 * `count` sends each with `window` in flight, in alternating rounds of:
 * - within one node: sender and receiver connected to A, their conversation actor on A;
 * - across nodes: sender on A, receiver on B, their conversation actor on B (the request goes
 *   A → B over NATS, the reply B → A, the delivery to the sender's device B → A).
 * CPU is utime + stime of both node processes from /proc/<pid>/stat, read before the burst and
 * after the receiver got every message; Postgres, Redis and NATS are not counted. Deliveries go
 * to every live node in both cases (the node broadcast), so both bursts publish to the other node.
 *
 *   deno run -A tests/cluster/measure_cross_node_cpu.ts [count=2000] [window=32] [rounds=3]
 *
 * @module
 */
import { rendezvousStrategy } from "../../cluster/placement_strategy.ts";
import { signUp, TestClient } from "../support/client.ts";
import { type Cluster, nodeIdOf, startCluster, uname, until } from "./fixture.ts";

const TICK_US = 1_000_000 / clockTicks();

function clockTicks(): number {
  const out = new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" }).outputSync();
  return Number(new TextDecoder().decode(out.stdout).trim()) || 100;
}

/** utime + stime of a process, microseconds. */
function cpuUs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * TICK_US;
}

async function pairPlacedOn(
  cluster: Cluster,
  senderNode: number,
  receiverNode: number,
  actorNode: number,
) {
  const ids = cluster.nodes.map(nodeIdOf);
  const from = await signUp(cluster.nodes[senderNode].url, uname("cs"));
  for (let i = 0; i < 60; i++) {
    const to = await signUp(cluster.nodes[receiverNode].url, uname(`cr${i}`));
    const actor = `direct/${[from.userId, to.userId].sort().join(":")}`;
    if (rendezvousStrategy(actor, ids) === ids[actorNode]) return { from, to };
  }
  throw new Error("no pair with the wanted placement");
}

async function burst(
  cluster: Cluster,
  label: string,
  nodes: { sender: number; receiver: number; actor: number },
  count: number,
  window: number,
): Promise<number> {
  const { from, to } = await pairPlacedOn(cluster, nodes.sender, nodes.receiver, nodes.actor);
  const cs = await TestClient.connect(cluster.nodes[nodes.sender].url, from.accessToken);
  const cr = await TestClient.connect(cluster.nodes[nodes.receiver].url, to.accessToken);
  try {
    const send = async (prefix: string, n: number) => {
      let next = 0;
      const worker = async () => {
        while (next < n) {
          const i = next++;
          const ok = await cs.request({
            op: "send",
            to: { user: to.userId },
            cmid: `${prefix}${i}`,
            body: { type: "text", text: `message ${i}` },
          }, 30_000);
          if (ok.op !== "ok") throw new Error(JSON.stringify(ok));
        }
      };
      await Promise.all(Array.from({ length: window }, worker));
    };
    await send("warm", 200);
    await until("warm-up delivered", () => cr.msgs().length >= 200);
    const pids = cluster.nodes.map((n) => n.pid);
    const before = pids.map(cpuUs);
    const t0 = performance.now();
    await send("m", count);
    await until("burst delivered", () => cr.msgs().length >= 200 + count, 120_000, 5);
    const wall = performance.now() - t0;
    const used = pids.map((p, i) => cpuUs(p) - before[i]);
    const total = used.reduce((a, b) => a + b, 0);
    const perMsg = total / count;
    console.log(
      `${label}: ${count} messages in ${wall.toFixed(0)} ms (${
        (count / wall * 1000).toFixed(0)
      }/s); ` +
        `node CPU A ${(used[0] / 1000).toFixed(0)} ms, B ${(used[1] / 1000).toFixed(0)} ms; ` +
        `${perMsg.toFixed(0)} CPU-µs per message`,
    );
    return perMsg;
  } finally {
    await cs.close();
    await cr.close();
  }
}

const WITHIN = { sender: 0, receiver: 0, actor: 0 };
const ACROSS = { sender: 0, receiver: 1, actor: 1 };

if (import.meta.main) {
  const count = Number(Deno.args[0] ?? 2000);
  const window = Number(Deno.args[1] ?? 32);
  const rounds = Number(Deno.args[2] ?? 3);
  // The per-connection and per-user rate limits would throttle one client's burst.
  const unlimited = "1000000";
  const cluster = await startCluster(2, {
    RATE_LIMIT_PER_SEC: unlimited,
    USER_RATE_LIMIT_PER_SEC: unlimited,
    MESSAGE_RATE_PER_SEC: unlimited,
    USER_MESSAGE_RATE_PER_SEC: unlimited,
  });
  try {
    // Alternating rounds, so warm-up and background noise do not favour one side.
    const local: number[] = [];
    const cross: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      local.push(await burst(cluster, `round ${round} within node A`, WITHIN, count, window));
      cross.push(await burst(cluster, `round ${round} across A → B`, ACROSS, count, window));
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(
      `mean CPU per message: within ${mean(local).toFixed(0)} µs, across ${
        mean(cross).toFixed(0)
      } µs;` +
        ` cross-node / within-node: ${(mean(cross) / mean(local)).toFixed(2)}x`,
    );
  } finally {
    await cluster.stop();
  }
}
