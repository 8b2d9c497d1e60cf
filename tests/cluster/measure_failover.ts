/**
 * Measures (does not assert) how long the cluster takes to serve a dead node's actor again.
 *
 * A 3-node cluster with default timings (LEASE_MS 6000, HEARTBEAT_MS 1000, MEMBER_TTL_MS 3000)
 * on private Redis/NATS and a fresh Postgres database. A direct conversation actor is placed on
 * node 1; a client on node 0 sends a probe message (new cmid, one attempt each) every 100 ms
 * while node 1 is killed with SIGKILL. Reported: the time from the kill until the first probe's
 * `ok` (the actor serves again, re-activated elsewhere), and the time from the kill until the
 * first probe that was sent after the kill and succeeded.
 *
 *   deno run -A tests/cluster/measure_failover.ts [runs=3]
 *
 * @module
 */
import { rendezvousStrategy } from "../../cluster/placement_strategy.ts";
import { type F, signUp, TestClient } from "../support/client.ts";
import { nodeIdOf, placementOf, sleep, startCluster, uname } from "./fixture.ts";

interface Probe {
  sentAt: number;
  answeredAt?: number;
  answer?: string;
}

async function once(run: number): Promise<{ servedAgainMs: number; firstGoodSendMs: number }> {
  const cluster = await startCluster(3);
  const sockets: TestClient[] = [];
  try {
    const ids = cluster.nodes.map(nodeIdOf);
    const [n0, victim, n2] = cluster.nodes;
    const a = await signUp(n0.url, uname("fa"));
    let b: { userId: string } | null = null;
    for (let i = 0; i < 40 && !b; i++) {
      const cand = await signUp(n2.url, uname(`fb${i}`));
      const actor = `direct/${[a.userId, cand.userId].sort().join(":")}`;
      if (rendezvousStrategy(actor, ids) === ids[1]) b = cand;
    }
    if (!b) throw new Error("no pair placed on node 1");
    const actor = `direct/${[a.userId, b.userId].sort().join(":")}`;
    const ca = await TestClient.connect(n0.url, a.accessToken);
    sockets.push(ca);
    const warm = await ca.request({
      op: "send",
      to: { user: b.userId },
      cmid: "warm",
      body: { type: "text", text: "warm" },
    });
    if (warm.op !== "ok") throw new Error(`warm-up failed: ${JSON.stringify(warm)}`);
    const rec = await placementOf(cluster, actor);
    if (rec?.node !== ids[1]) throw new Error(`actor not on node 1: ${JSON.stringify(rec)}`);

    const probes: Probe[] = [];
    let stop = false;
    let seq = 0;
    const loop = (async () => {
      while (!stop) {
        const p: Probe = { sentAt: performance.now() };
        probes.push(p);
        ca.request({
          op: "send",
          to: { user: b!.userId },
          cmid: `p${++seq}`,
          body: { type: "text", text: "probe" },
        }, 30_000).then((f: F) => {
          p.answeredAt = performance.now();
          p.answer = f.op === "ok" ? "ok" : String(f.code);
        }, () => {
          p.answer = "lost";
        });
        await sleep(100);
      }
    })();
    await sleep(1_000);
    const killedAt = performance.now();
    victim.kill("SIGKILL");
    await victim.exited;
    const deadline = killedAt + 30_000;
    while (performance.now() < deadline) {
      const ok = probes.filter((p) => p.sentAt > killedAt && p.answer === "ok");
      if (ok.length >= 10) break;
      await sleep(100);
    }
    stop = true;
    await loop;
    await sleep(6_000); // let the last probes settle
    // Only probes sent after the kill: one sent before may still be answered by the old node.
    const after = probes.filter((p) => p.answer === "ok" && p.sentAt > killedAt);
    const servedAgain = Math.min(...after.map((p) => p.answeredAt! - killedAt));
    const goodSends = probes.filter((p) => p.sentAt > killedAt && p.answer === "ok");
    const firstGoodSend = Math.min(...goodSends.map((p) => p.sentAt - killedAt));
    const moved = await placementOf(cluster, actor);
    const codes = new Map<string, number>();
    for (const p of probes) {
      codes.set(p.answer ?? "pending", (codes.get(p.answer ?? "pending") ?? 0) + 1);
    }
    console.log(
      `run ${run}: served again ${servedAgain.toFixed(0)} ms after SIGKILL; first successful ` +
        `send issued ${firstGoodSend.toFixed(0)} ms after it; actor now on ` +
        `${moved?.node === ids[0] ? "node 0" : moved?.node === ids[2] ? "node 2" : moved?.node}` +
        ` epoch ${moved?.epoch}; probe answers ${JSON.stringify(Object.fromEntries(codes))}`,
    );
    return { servedAgainMs: servedAgain, firstGoodSendMs: firstGoodSend };
  } finally {
    for (const s of sockets) await s.close();
    await cluster.stop();
  }
}

if (import.meta.main) {
  const runs = Number(Deno.args[0] ?? 3);
  const results = [];
  for (let i = 1; i <= runs; i++) results.push(await once(i));
  const sorted = results.map((r) => r.servedAgainMs).sort((x, y) => x - y);
  console.log(
    `served again after SIGKILL: min ${sorted[0].toFixed(0)} ms, median ${
      sorted[Math.floor(sorted.length / 2)].toFixed(0)
    } ms, max ${sorted.at(-1)!.toFixed(0)} ms over ${runs} runs`,
  );
}
