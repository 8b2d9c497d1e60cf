/**
 * Scenario 5 — failover: pairs of users on nodes 0 and 1 send to each other at a steady rate
 * (failed sends are retried with the same `cmid`, as a client does); node 2, which holds about a
 * third of the conversation actors, gets SIGKILL. Measured: for each conversation whose actor
 * was on node 2, the time from the kill to its first `ok` for a send made after the kill; and,
 * reading every conversation's history afterwards, how many acknowledged messages are missing.
 *
 * @module
 */
import {
  type Account,
  closeClients,
  connectClients,
  type Deployment,
  log,
  request,
  runLoad,
  type Sizes,
  sleep,
} from "../harness.ts";
import type { GeneratorPool } from "../generator_pool.ts";

/** What scenario 5 measured. */
export interface FailoverResult {
  conversations: number;
  /** Conversations whose actor was on the killed node. */
  onDeadNode: number;
  /** Recovery times (ms after SIGKILL) of those conversations: median and max. */
  recoveryMedianMs: number;
  recoveryMaxMs: number;
  /** Conversations on the dead node that never recovered within the run. */
  notRecovered: number;
  acknowledged: number;
  lost: number;
  errors: Record<string, number>;
}

/** Placement records `actorId → node` read from the cluster's Redis. */
async function placements(redisPort: number, prefix: string): Promise<Map<string, string>> {
  const script = "local out = {} for _, k in ipairs(redis.call('KEYS', ARGV[1])) do " +
    "table.insert(out, k) table.insert(out, redis.call('HGET', k, 'n') or '') end return out";
  const o = await new Deno.Command("redis-cli", {
    args: ["-p", String(redisPort), "--raw", "EVAL", script, "0", `${prefix}p:direct/*`],
    stdout: "piped",
  }).output();
  const lines = new TextDecoder().decode(o.stdout).split("\n");
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < lines.length; i += 2) {
    map.set(lines[i].slice(lines[i].indexOf("p:direct/") + 2), lines[i + 1]);
  }
  return map;
}

/** Every message id of a conversation, read with `history` through client `key`. */
async function historyMids(pool: GeneratorPool, key: number, conv: string): Promise<Set<string>> {
  const mids = new Set<string>();
  let before: number | undefined;
  for (let page = 0; page < 1000; page++) {
    const r = await request(pool, key, {
      op: "history",
      conv,
      limit: 200,
      ...(before ? { before } : {}),
    });
    if (r.op !== "ok") throw new Error(`history: ${r.code} ${r.message}`);
    const msgs = r.messages as Array<{ mid: string; cseq: number }>;
    for (const m of msgs) mids.add(m.mid);
    if (!r.more || msgs.length === 0) break;
    before = msgs[msgs.length - 1].cseq;
  }
  return mids;
}

/** Runs scenario 5; kills `dep.servers[2]`. */
export async function failoverScenario(
  dep: Deployment,
  pool: GeneratorPool,
  sizes: Sizes,
  users: Account[],
  redisPort: number,
  redisPrefix: string,
): Promise<FailoverResult> {
  const pairs = Math.floor(users.length / 2);
  const plans = users.slice(0, pairs * 2).map((account, key) => ({
    key,
    account,
    server: key % 2,
  }));
  await connectClients(dep, pool, plans);
  const senders = [];
  for (let i = 0; i < pairs; i++) {
    senders.push({ key: 2 * i, to: { user: users[2 * i + 1].userId } });
  }
  // One send per pair activates every conversation actor before the measured run.
  await runLoad(dep, pool, {
    mode: "closed",
    window: 1,
    senders,
    durationMs: 600,
    warmupMs: 0,
    drainMs: 1000,
  });
  const victim = dep.servers[2];
  const actorOf = (i: number) => {
    const a = users[2 * i].userId, b = users[2 * i + 1].userId;
    return `direct/${a <= b ? `${a}:${b}` : `${b}:${a}`}`;
  };
  const onDead = new Set<number>();
  let placedCount = 0;
  let killAt = 0;
  const killAfterMs = sizes.quick ? 1000 : 3000;
  const durationMs = sizes.quick ? 4500 : 15_000;
  const result = await runLoad(dep, pool, {
    mode: "open",
    rate: pairs * 20,
    senders,
    durationMs,
    warmupMs: 0,
    drainMs: 8000,
    retry: true,
    during: async (startAt) => {
      await sleep(startAt + killAfterMs - (performance.timeOrigin + performance.now()) - 300);
      // Where each conversation's actor lives right before the kill (the placement records).
      const placed = await placements(redisPort, redisPrefix);
      for (let i = 0; i < pairs; i++) {
        const node = placed.get(actorOf(i));
        if (node) placedCount++;
        if (node === victim.nodeId) onDead.add(2 * i);
      }
      await sleep(startAt + killAfterMs - (performance.timeOrigin + performance.now()));
      killAt = performance.timeOrigin + performance.now();
      victim.kill("SIGKILL");
      log(
        `failover: SIGKILL node 2 (${victim.nodeId}: ${onDead.size} of ${pairs} conversations; ` +
          `${placedCount} placement records found)`,
      );
    },
  });
  await victim.exited;
  const oks = result.oks ?? [];
  const recovery: number[] = [];
  let notRecovered = 0;
  for (const key of onDead) {
    const first = oks.filter((o) => o[0] === key && o[1] >= killAt).reduce(
      (m, o) => Math.min(m, o[2]),
      Infinity,
    );
    if (first === Infinity) notRecovered++;
    else recovery.push(first - killAt);
  }
  recovery.sort((a, b) => a - b);
  // Every acknowledged message must be in its conversation's history.
  const ackedByConv = new Map<string, { key: number; mids: string[] }>();
  for (const [key, , , mid, conv] of oks) {
    let e = ackedByConv.get(conv);
    if (!e) ackedByConv.set(conv, e = { key, mids: [] });
    e.mids.push(mid);
  }
  let lost = 0;
  for (const [conv, { key, mids }] of ackedByConv) {
    const stored = await historyMids(pool, key, conv);
    for (const m of mids) if (!stored.has(m)) lost++;
  }
  await closeClients(pool);
  const out: FailoverResult = {
    conversations: pairs,
    onDeadNode: onDead.size,
    recoveryMedianMs: recovery.length ? recovery[Math.floor(recovery.length / 2)] : 0,
    recoveryMaxMs: recovery.length ? recovery[recovery.length - 1] : 0,
    notRecovered,
    acknowledged: oks.length,
    lost,
    errors: result.errors,
  };
  log(`failover: ${JSON.stringify(out)}`);
  return out;
}
