/**
 * A load generator process. The orchestrator (bench/main.ts) starts several of these and drives
 * them with JSON lines on stdin (`{"id", "cmd", ...}`); each command is answered with one JSON
 * line on stdout (`{"re": id, ...}` or `{"re": id, "error": "..."}`). Logs go to stderr.
 *
 * Load is open-loop: send `i` is scheduled at `startAt + i / rate` by the clock and carries that
 * scheduled time, so a server that stalls is charged for every send it delayed (no coordinated
 * omission). A closed-loop mode (a fixed window of outstanding sends per sender) is only used to
 * find the maximum throughput, never for latency.
 *
 * Every loop is bounded: a load ends at `startAt + durationMs`, drains for `drainMs`, and an
 * open-loop generator stops offering (and counts `skipped`) beyond `maxOutstanding` unanswered
 * sends.
 *
 * @module
 */
import { LatencyHistogram } from "./histogram.ts";
import {
  type ClientEvents,
  type ClientSpec,
  type LoadClient,
  openClient,
  type SystemKind,
  type Target,
  wallNow,
} from "./load_clients.ts";
import { openStalled, type StalledClient } from "./raw_ws.ts";

const genId = crypto.randomUUID().slice(0, 8);
const clients = new Map<number, LoadClient>();
const stalled: StalledClient[] = [];
const closeCodes: Record<string, number> = {};
let loadSeq = 0;

/** Parameters of one load phase. */
interface LoadParams {
  mode: "open" | "closed";
  /** Wall-clock ms at which sending starts (the same for every generator). */
  startAt: number;
  durationMs: number;
  /** Sends scheduled before `startAt + warmupMs` are not measured. */
  warmupMs: number;
  drainMs: number;
  /** Open loop: sends per second offered by this generator (over all its senders). */
  rate: number;
  /** Closed loop: outstanding sends per sender. */
  window: number;
  senders: Array<{ key: number; to: Target }>;
  text: string;
  maxOutstanding: number;
  /** Failover mode: retry failed sends with the same cmid, and return every ok. */
  retry?: boolean;
}

interface Sender {
  client: LoadClient;
  to: Target;
  n: number;
  index: number;
}

class LoadStats {
  sent = 0;
  sentInWindow = 0;
  answered = 0;
  okInWindow = 0;
  recvInWindow = 0;
  recvTotal = 0;
  skipped = 0;
  retrying = 0;
  errors: Record<string, number> = {};
  okHist = new LatencyHistogram();
  recvHist = new LatencyHistogram();
  oks: Array<[number, number, number, string, string]> = []; // sender, sentAt, okAt, mid, conv
  readonly from: number;
  readonly to: number;
  constructor(readonly p: LoadParams) {
    this.from = p.startAt + p.warmupMs;
    this.to = p.startAt + p.durationMs;
  }
  inWindow(t: number): boolean {
    return t >= this.from && t < this.to;
  }
  /**
   * Whether an answer or delivery counts: open loop by its scheduled send time (what was
   * offered in the window, however late it arrives within the drain); closed loop by when it
   * arrived (throughput in the window, however long the first sends took).
   */
  counts(t: number, now: number): boolean {
    return this.inWindow(this.p.mode === "closed" ? now : t);
  }
}

let current: LoadStats | null = null;
let sendersByKey = new Map<number, Sender>();
/** Failover mode: the time of the latest attempt of each outstanding cmid. */
const lastAttempt = new Map<string, number>();

function cmidFor(s: Sender): string {
  return `${genId}.${loadSeq}.${s.client.key}.${s.n++}`;
}

function issue(s: Sender, t: number, st: LoadStats, cmid = cmidFor(s)): void {
  st.sent++;
  if (st.inWindow(t)) st.sentInWindow++;
  if (st.p.retry) lastAttempt.set(cmid, wallNow());
  s.client.send(s.to, cmid, t, st.p.text);
}

const events: ClientEvents = {
  ok(client, t, ok, cmid) {
    const st = current;
    if (!st) return;
    st.answered++;
    const now = wallNow();
    if (st.counts(t, now)) {
      st.okInWindow++;
      st.okHist.recordMs(now - t);
    }
    const s = sendersByKey.get(client.key);
    if (st.p.retry && s) {
      st.oks.push([s.index, lastAttempt.get(cmid) ?? t, now, String(ok.mid), String(ok.conv)]);
      lastAttempt.delete(cmid);
    }
    if (st.p.mode === "closed" && s && now < st.to) issue(s, now, st);
  },
  error(client, t, code, cmid) {
    const st = current;
    if (!st) return;
    st.answered++;
    st.errors[code] = (st.errors[code] ?? 0) + 1;
    const s = sendersByKey.get(client.key);
    if (!s) return;
    const now = wallNow();
    if (st.p.retry && code !== "closed") {
      // Same cmid: the server stores it at most once, whatever happened to the first attempt.
      st.retrying++;
      setTimeout(() => {
        st.retrying--;
        if (current === st) issue(s, t, st, cmid);
      }, 50);
      st.answered--;
      st.sent--;
      if (st.inWindow(t)) st.sentInWindow--;
      return;
    }
    if (st.p.mode === "closed" && now < st.to && code !== "closed") issue(s, now, st);
  },
  msg(_client, t) {
    const st = current;
    if (!st) return;
    st.recvTotal++;
    const now = wallNow();
    if (st.counts(t, now)) {
      st.recvInWindow++;
      st.recvHist.recordMs(now - t);
    }
  },
  closed(_client, code) {
    closeCodes[code] = (closeCodes[code] ?? 0) + 1;
  },
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

async function runLoad(p: LoadParams) {
  loadSeq++;
  const st = new LoadStats(p);
  sendersByKey = new Map();
  const senders: Sender[] = p.senders.map((s, index) => {
    const client = clients.get(s.key);
    if (!client) throw new Error(`no client ${s.key}`);
    const sender = { client, to: s.to, n: 0, index };
    sendersByKey.set(s.key, sender);
    return sender;
  });
  current = st;
  await sleep(p.startAt - wallNow());
  const end = st.to;
  if (senders.length > 0 && p.mode === "open") {
    const interval = 1000 / p.rate;
    let i = 0;
    while (true) {
      const now = wallNow();
      if (now >= end) break;
      const due = Math.min(
        Math.floor((now - p.startAt) / interval) + 1,
        Math.ceil(p.durationMs / interval),
      );
      while (i < due) {
        const t = p.startAt + i * interval;
        const s = senders[i % senders.length];
        if (st.sent - st.answered >= p.maxOutstanding) st.skipped++;
        else issue(s, t, st);
        i++;
      }
      await sleep(1);
    }
  } else if (senders.length > 0) {
    const now = wallNow();
    for (const s of senders) for (let k = 0; k < p.window; k++) issue(s, now, st);
  }
  await sleep(end - wallNow());
  // Drain: wait for answers and deliveries of what was sent, bounded by drainMs.
  const drainEnd = end + p.drainMs;
  let lastRecv = -1;
  while (wallNow() < drainEnd) {
    if (st.sent === st.answered && st.retrying === 0 && st.recvTotal === lastRecv) break;
    lastRecv = st.recvTotal;
    await sleep(100);
  }
  current = null;
  const windowSec = (p.durationMs - p.warmupMs) / 1000;
  return {
    sent: st.sent,
    sentInWindow: st.sentInWindow,
    answered: st.answered,
    okInWindow: st.okInWindow,
    recvInWindow: st.recvInWindow,
    recvTotal: st.recvTotal,
    skipped: st.skipped,
    errors: st.errors,
    windowSec,
    okHist: st.okHist.encode(),
    recvHist: st.recvHist.encode(),
    oks: p.retry ? st.oks : undefined,
    unanswered: st.sent - st.answered,
  };
}

async function signup(p: { base: string; names: string[]; password: string; concurrency: number }) {
  const users: Array<{ userId: string; token: string }> = new Array(p.names.length);
  let next = 0;
  const post = async (path: string, body: unknown) => {
    for (let attempt = 0;; attempt++) {
      const r = await fetch(`${p.base}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      const text = await r.text();
      if (r.status < 300) return JSON.parse(text);
      if (r.status >= 500 && attempt < 5) {
        await sleep(200);
        continue;
      }
      throw new Error(`${path}: ${r.status} ${text.slice(0, 200)}`);
    }
  };
  const worker = async () => {
    while (next < p.names.length) {
      const i = next++;
      const username = p.names[i];
      const reg = await post("/v1/auth/register", { username, password: p.password });
      const login = await post("/v1/auth/login", { username, password: p.password });
      users[i] = { userId: reg.userId, token: login.accessToken };
    }
  };
  await Promise.all(Array.from({ length: p.concurrency }, worker));
  return { users };
}

async function connect(p: { system: SystemKind; clients: ClientSpec[]; concurrency: number }) {
  let next = 0;
  let connected = 0;
  let failed = 0;
  let firstError = "";
  const worker = async () => {
    while (next < p.clients.length) {
      const spec = p.clients[next++];
      try {
        clients.set(spec.key, await openClient(p.system, spec, events));
        connected++;
      } catch (err) {
        failed++;
        firstError ||= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: p.concurrency }, worker));
  return { connected, failed, firstError };
}

async function stall(p: { clients: Array<{ url: string; token: string }> }) {
  let failed = 0;
  for (const c of p.clients) {
    try {
      stalled.push(await openStalled(c.url, { op: "auth", token: c.token }));
    } catch {
      failed++;
    }
  }
  return { stalled: p.clients.length - failed, failed };
}

async function closeAll() {
  const all = [...clients.values()];
  clients.clear();
  for (const s of stalled.splice(0)) s.close();
  await Promise.race([Promise.all(all.map((c) => c.close())), sleep(10_000)]);
  return { closed: all.length };
}

async function handle(msg: Record<string, unknown>): Promise<unknown> {
  switch (msg.cmd) {
    case "signup":
      return await signup(msg as never);
    case "connect":
      return await connect(msg as never);
    case "stall":
      return await stall(msg as never);
    case "request": {
      const c = clients.get(msg.key as number);
      if (!c) throw new Error(`no client ${msg.key}`);
      return {
        frame: await c.request(msg.frame as Record<string, unknown>, msg.timeoutMs as number),
      };
    }
    case "load":
      return await runLoad(msg as unknown as LoadParams);
    case "status":
      return { clients: clients.size, stalled: stalled.length, closeCodes };
    case "close":
      return await closeAll();
    case "exit":
      setTimeout(() => Deno.exit(0), 10);
      return {};
    default:
      throw new Error(`unknown command ${msg.cmd}`);
  }
}

// Clients ack what they received, cumulatively, at most every 200 ms (as an app would).
// BENCH_NO_ACKS=1 turns acks off (a diagnostic: how much do ack writes cost the server?).
const ackTimer = Deno.env.get("BENCH_NO_ACKS") === "1" ? undefined : setInterval(() => {
  for (const c of clients.values()) c.flushAck();
}, 200);

if (import.meta.main) {
  const enc = new TextEncoder();
  const reply = (obj: unknown) => {
    const bytes = enc.encode(JSON.stringify(obj) + "\n");
    for (let o = 0; o < bytes.length;) o += Deno.stdout.writeSync(bytes.subarray(o));
  };
  let buf = "";
  const dec = new TextDecoder();
  for await (const chunk of Deno.stdin.readable) {
    buf += dec.decode(chunk, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      const msg = JSON.parse(line);
      handle(msg).then(
        (res) => reply({ re: msg.id, ...(res as object) }),
        (err) => reply({ re: msg.id, error: (err as Error).stack ?? String(err) }),
      );
    }
  }
  clearInterval(ackTimer);
  Deno.exit(0);
}
