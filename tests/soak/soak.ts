/**
 * Soak test (`deno task soak`, not part of `deno task test`): a 3-node cluster (private Redis and
 * NATS, fresh Postgres) under mixed traffic (direct and group messages from resilient clients
 * that reconnect, sync and retry with the same `cmid`) for N minutes, with a node killed
 * (`kill -9`) and replaced periodically. Then the whole history is checked: no acknowledged
 * message lost, no duplicates, per-conversation order (cseq) in every inbox, gapless inboxes.
 *
 * Settings (env): SOAK_MINUTES (default 5), SOAK_CLIENTS (12), SOAK_KILL_EVERY_SEC (30).
 * Exits 0 when every check holds, 1 otherwise (the problems are printed).
 *
 * @module
 */
import {
  integrityProblems,
  ResilientClient,
  sleep,
  startCluster,
  storedMessages,
} from "../cluster/fixture.ts";
import { runTraffic } from "../cluster/traffic.ts";

const minutes = Number(Deno.env.get("SOAK_MINUTES") ?? 5);
const clientCount = Number(Deno.env.get("SOAK_CLIENTS") ?? 12);
const killEverySec = Number(Deno.env.get("SOAK_KILL_EVERY_SEC") ?? 30);

const log = (msg: string) => console.error(`[soak ${new Date().toISOString()}] ${msg}`);

const cluster = await startCluster(3);
const clients: ResilientClient[] = [];
const problems: string[] = [];
let kills = 0;
try {
  for (let i = 0; i < clientCount; i++) {
    clients.push(await ResilientClient.create(cluster, `soak${i}`, i % cluster.nodes.length));
  }
  const created = (await clients[0].request({
    op: "group.create",
    name: "soak",
    members: clients.slice(1).map((c) => c.userId),
  })).answer;
  if (created.op !== "ok") throw new Error(`group.create: ${JSON.stringify(created)}`);
  const traffic = runTraffic(clients, created.groupId as string, {
    pauseMs: 50,
    maxPerClient: 1_000_000,
    tag: "s",
  });
  const end = Date.now() + minutes * 60_000;
  while (Date.now() < end) {
    await sleep(Math.min(killEverySec * 1000, Math.max(0, end - Date.now())));
    if (Date.now() >= end) break;
    const victim = cluster.nodes[Math.floor(Math.random() * cluster.nodes.length)];
    log(`kill -9 ${victim.url} (${traffic.sent.length} acknowledged so far)`);
    victim.kill("SIGKILL");
    await victim.exited;
    cluster.nodes.splice(cluster.nodes.indexOf(victim), 1);
    kills++;
    await cluster.addNode();
  }
  log("stopping traffic");
  const sent = await traffic.stop();
  log(`${sent.length} messages acknowledged, ${kills} nodes killed; checking the history`);

  problems.push(...await integrityProblems(cluster.sql));
  const stored = new Map<string, number>();
  for (const r of await storedMessages(cluster.sql)) {
    const k = `${r.sender}/${r.cmid}`;
    stored.set(k, (stored.get(k) ?? 0) + 1);
  }
  for (const s of sent) {
    const n = stored.get(`${s.from}/${s.cmid}`) ?? 0;
    if (n !== 1) problems.push(`${s.cmid} of ${s.from} stored ${n} times`);
  }
  for (const c of clients) {
    const latest = await c.catchUp(120_000);
    if (c.contiguous() !== latest) problems.push(`${c.userId}: inbox not gapless`);
    const inbox = c.messages();
    const mids = new Set(inbox.map((m) => m.mid));
    if (mids.size !== inbox.length) problems.push(`${c.userId}: a message twice in the inbox`);
    const lastCseq = new Map<string, number>();
    for (const m of inbox) {
      const prev = lastCseq.get(m.conv as string) ?? 0;
      if ((m.cseq as number) <= prev) {
        problems.push(`${c.userId}: ${m.conv} out of order (${m.cseq} after ${prev})`);
      }
      lastCseq.set(m.conv as string, m.cseq as number);
    }
    for (const s of sent) {
      if (s.from === c.userId && !mids.has(s.ok.mid)) {
        problems.push(`${s.cmid}: acknowledged but missing from its sender's inbox`);
      }
    }
  }
  const retried = sent.filter((s) => s.attempts > 1).length;
  log(`${retried} sends needed retries; errors seen: ${
    JSON.stringify(
      clients.flatMap((c) => c.errors).reduce<Record<string, number>>((a, e) => {
        a[e] = (a[e] ?? 0) + 1;
        return a;
      }, {}),
    )
  }`);
} catch (err) {
  problems.push(`soak aborted: ${(err as Error).message}`);
} finally {
  for (const c of clients) await c.close().catch(() => {});
  await cluster.stop().catch((err) => problems.push(`stop: ${err}`));
}
if (problems.length) {
  console.error(`SOAK FAILED (${problems.length} problems):\n${problems.slice(0, 50).join("\n")}`);
  Deno.exit(1);
}
console.error("SOAK OK: no acknowledged message lost, no duplicates, ordered, gapless");
