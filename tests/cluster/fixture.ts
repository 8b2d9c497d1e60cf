/**
 * A whole cluster for one test file: a private redis-server and nats-server on free ports, a
 * fresh Postgres database and N node processes (`deno run main.ts`) sharing them, plus a
 * resilient test client that does what a real client does when a node goes away: reconnect to
 * another node, sync from its last contiguous inbox seq, and retry unanswered sends with the
 * same `cmid`.
 *
 * @module
 */
import postgres from "postgres";
import { type F, signUp, TestClient } from "../support/client.ts";
import { createTempDatabase, type TempDatabase } from "../support/postgres.ts";
import { type NatsService, type RedisService, startNats, startRedis } from "../support/services.ts";
import { NodeProcess, sleep } from "./harness.ts";

export { sleep };

/** A test's cluster. */
export interface Cluster {
  redis: RedisService;
  nats: NatsService;
  db: TempDatabase;
  /** Direct access to the test database (for duplicate / gap checks). */
  sql: postgres.Sql;
  /** The env every node shares. */
  env: Record<string, string>;
  nodes: NodeProcess[];
  /** Starts one more node (same env plus `extra`). */
  addNode(extra?: Record<string, string>): Promise<NodeProcess>;
  /** Stops every node, the services and drops the database. */
  stop(): Promise<void>;
}

/** Env vars shared by the cluster tests' nodes (fast password hashing). */
export const JWT_SECRET = "cluster-test-secret-0123456789abcdefghijklmnop";

/** Starts `n` nodes (in parallel) against private Redis, NATS and a fresh database. */
export async function startCluster(
  n: number,
  extra: Record<string, string> = {},
): Promise<Cluster> {
  const [redis, nats, db] = await Promise.all([startRedis(), startNats(), createTempDatabase()]);
  const env: Record<string, string> = {
    DATABASE_URL: db.url,
    REDIS_URL: redis.url,
    NATS_URL: nats.url,
    JWT_SECRET,
    PASSWORD_ITERATIONS: "1000",
    // Every test user signs up from 127.0.0.1: the per-IP login throttle is not under test here.
    LOGIN_ATTEMPTS_PER_IP_PER_MIN: "100000",
    REGISTRATIONS_PER_IP_PER_HOUR: "100000",
    ...extra,
  };
  const sql = postgres(db.url, { max: 2, onnotice: () => {} });
  const nodes: NodeProcess[] = [];
  const cluster: Cluster = {
    redis,
    nats,
    db,
    sql,
    env,
    nodes,
    async addNode(more = {}) {
      const node = await NodeProcess.start({ ...env, ...more });
      nodes.push(node);
      return node;
    },
    async stop() {
      if (Deno.env.get("CLUSTER_TEST_LOGS")) {
        for (const node of nodes) {
          console.error(
            `---- ${node.url}\n${
              node.log.split("\n").filter((l) => !l.includes('"debug"')).join("\n")
            }`,
          );
        }
      }
      await Promise.all(nodes.map((node) => node.stop(15_000)));
      await sql.end({ timeout: 5 });
      await Promise.all([redis.stop(), nats.stop()]);
      await db.drop();
    },
  };
  try {
    // The first node migrates the database; the others then start together.
    await cluster.addNode();
    await Promise.all(Array.from({ length: n - 1 }, () => cluster.addNode()));
  } catch (err) {
    await cluster.stop().catch(() => {});
    throw err;
  }
  return cluster;
}

/** The JSON log lines of a node. */
export function logLines(node: NodeProcess): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of node.log.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // A line cut by the buffer cap: not a record.
    }
  }
  return out;
}

/** The node id a node process logged at start. */
export function nodeIdOf(node: NodeProcess): string {
  const m = node.log.match(/IM node (n_\S+) listening/);
  if (m) return m[1];
  const started = logLines(node).find((l) => l.msg === "node started");
  if (typeof started?.node === "string") return started.node;
  throw new Error(`no node id in the log:\n${node.log.slice(0, 2000)}`);
}

/** Reads one placement record from the cluster's Redis (via redis-cli). */
export async function placementOf(
  cluster: Cluster,
  actorId: string,
): Promise<{ node: string; epoch: number; leaseUntil: number } | null> {
  const out = await new Deno.Command("redis-cli", {
    args: ["-p", String(cluster.redis.port), "--raw", "HGETALL", `im:p:${actorId}`],
    stdout: "piped",
    stderr: "null",
  }).output();
  const parts = new TextDecoder().decode(out.stdout).split("\n").filter((s) => s !== "");
  const h: Record<string, string> = {};
  for (let i = 0; i + 1 < parts.length; i += 2) h[parts[i]] = parts[i + 1];
  if (!h.n) return null;
  return { node: h.n, epoch: Number(h.e), leaseUntil: Number(h.l) };
}

/** Polls `check` until it returns a truthy value (generous by default: busy 2-core machines). */
export async function until<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 60_000,
  everyMs = 50,
): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await sleep(everyMs);
  }
}

let nameSeq = 0;
/** A username unique to this run. */
export function uname(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}${(++nameSeq).toString(36)}`.slice(0, 32);
}

/** Error codes after which a client retries the same request. */
const RETRYABLE = new Set(["unavailable", "timeout", "overloaded", "moved", "rate_limited"]);

/** What one send finally got. */
export interface SendOutcome {
  ok: F;
  /** Attempts made (1 = no retry). */
  attempts: number;
  /** Error codes seen before the `ok`. */
  errors: string[];
}

/**
 * A device of one user that survives node loss: it holds the list of node urls, reconnects to
 * the next one that answers when its socket closes, and keeps every `msg` it received by inbox
 * `seq` (de-duplicated, as the protocol asks clients to).
 */
export class ResilientClient {
  conn: TestClient | null = null;
  /** Index into `urls` of the node it is connected to. */
  nodeIndex: number;
  /** msg frames by inbox seq. */
  readonly inbox = new Map<number, F>();
  /** Close codes seen on its connections, in order. */
  readonly closeCodes: number[] = [];
  /** Request errors seen (code), in order. */
  readonly errors: string[] = [];
  /** Reconnections made. */
  reconnects = 0;
  #scanned = 0;
  #connecting: Promise<TestClient> | null = null;
  #closed = false;

  constructor(
    readonly userId: string,
    readonly token: string,
    /** Node base urls; a function so the list can follow the cluster. */
    readonly urls: () => string[],
    nodeIndex: number,
    readonly device = "d1",
  ) {
    this.nodeIndex = nodeIndex;
  }

  /** Signs a user up at `urls()[nodeIndex]` and connects there. */
  static async create(
    cluster: Cluster,
    name: string,
    nodeIndex: number,
  ): Promise<ResilientClient> {
    const urls = () => cluster.nodes.map((n) => n.url);
    const login = await signUp(urls()[nodeIndex], uname(name), "correct horse battery");
    const c = new ResilientClient(login.userId, login.accessToken, urls, nodeIndex);
    await c.connection();
    return c;
  }

  /** The highest seq up to which this client holds every inbox message. */
  contiguous(): number {
    this.#collect();
    let s = 0;
    while (this.inbox.has(s + 1)) s++;
    return s;
  }

  /** The open connection, reconnecting (to the next node that answers) when needed. */
  connection(): Promise<TestClient> {
    if (this.#closed) return Promise.reject(new Error("client closed"));
    if (this.conn && this.conn.closeCode === null) return Promise.resolve(this.conn);
    this.#connecting ??= this.#reconnect().finally(() => this.#connecting = null);
    return this.#connecting;
  }

  async #reconnect(): Promise<TestClient> {
    if (this.conn) {
      this.#collect();
      if (this.conn.closeCode !== null) this.closeCodes.push(this.conn.closeCode);
      this.conn = null;
      this.reconnects++;
    }
    const end = Date.now() + 120_000;
    let first = true;
    while (Date.now() < end && !this.#closed) {
      const urls = this.urls();
      if (!first) this.nodeIndex = (this.nodeIndex + 1) % urls.length;
      first = false;
      let c: TestClient | null = null;
      try {
        c = await withTimeout(TestClient.open(urls[this.nodeIndex]), 5_000);
        const ok = await c.request({ op: "auth", token: this.token, device: this.device }, 15_000);
        if (ok.op !== "ok") throw new Error(`auth: ${ok.code}`);
        this.conn = c;
        this.#scanned = 0;
        // A client catches up after every (re)connect: sync from what it holds.
        await this.syncAll();
        return c;
      } catch {
        if (c && c.closeCode === null) await c.close().catch(() => {});
        await sleep(200);
      }
    }
    throw new Error(`${this.userId} could not reconnect`);
  }

  #collect(): void {
    const c = this.conn;
    if (!c) return;
    const frames = c.frames;
    for (; this.#scanned < frames.length; this.#scanned++) {
      const f = frames[this.#scanned];
      if (f.op === "msg" && typeof f.seq === "number") this.inbox.set(f.seq, f);
    }
  }

  /**
   * Sends a request, retrying retryable errors, timeouts and lost connections until `ok` or a
   * non-retryable error (returned as is) or `deadlineMs` passes (thrown).
   */
  async request(frame: F, deadlineMs = 120_000): Promise<{ answer: F; attempts: number }> {
    const end = Date.now() + deadlineMs;
    let attempts = 0;
    for (;;) {
      if (Date.now() > end) {
        throw new Error(`${frame.op} never succeeded: ${this.errors.slice(-5)}`);
      }
      attempts++;
      let c: TestClient;
      try {
        c = await this.connection();
      } catch (err) {
        if (this.#closed) throw err;
        continue;
      }
      let answer: F;
      try {
        answer = await raceClose(c, c.request({ ...frame, id: c.nextId() }, 30_000));
      } catch {
        this.errors.push("lost");
        if (c.closeCode === null) {
          // No answer in time although the socket is open (a stopped node): go elsewhere.
          await c.close().catch(() => {});
        }
        continue;
      }
      this.#collect();
      if (answer.op === "error" && RETRYABLE.has(answer.code as string)) {
        this.errors.push(answer.code as string);
        await sleep(100);
        continue;
      }
      return { answer, attempts };
    }
  }

  /** Sends a text message with `cmid`, retrying with the same `cmid` until `ok`. */
  async send(to: F, cmid: string, text: string): Promise<SendOutcome> {
    const before = this.errors.length;
    const { answer, attempts } = await this.request({
      op: "send",
      to,
      cmid,
      body: { type: "text", text },
    });
    if (answer.op !== "ok") throw new Error(`send ${cmid} failed: ${JSON.stringify(answer)}`);
    return { ok: answer, attempts, errors: this.errors.slice(before) };
  }

  /** Syncs until the server says there is no more, from what this client holds. */
  async syncAll(): Promise<number> {
    for (;;) {
      const c = await this.connection();
      const after = this.contiguous();
      const ok = await raceClose(c, c.request({ op: "sync", after, limit: 500 }, 15_000));
      this.#collect();
      if (ok.op !== "ok") throw new Error(`sync failed: ${JSON.stringify(ok)}`);
      if (!ok.more) return ok.seq as number;
    }
  }

  /** Syncs (retrying across nodes) until nothing is missing; resolves with the latest seq. */
  async catchUp(deadlineMs = 120_000): Promise<number> {
    const end = Date.now() + deadlineMs;
    for (;;) {
      try {
        const latest = await this.syncAll();
        if (this.contiguous() >= latest) return latest;
      } catch (err) {
        if (Date.now() > end) throw err;
        if (this.conn && this.conn.closeCode === null) await this.conn.close().catch(() => {});
      }
      if (Date.now() > end) throw new Error(`${this.userId} never caught up`);
      await sleep(100);
    }
  }

  /** msg frames held, in seq order. */
  messages(): F[] {
    this.#collect();
    return [...this.inbox.entries()].sort((a, b) => a[0] - b[0]).map(([, f]) => f);
  }

  /** Closes the connection for good. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#connecting?.catch(() => {});
    if (this.conn && this.conn.closeCode === null) await this.conn.close().catch(() => {});
    if (this.conn?.closeCode !== null && this.conn?.closeCode !== undefined) {
      this.closeCodes.push(this.conn.closeCode);
    }
    this.conn = null;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timedOut = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(new Error("timed out"));
    }, ms);
  });
  // A late success of an abandoned open must not leave a socket behind.
  p.then((v) => {
    if (timedOut && v instanceof TestClient) v.close().catch(() => {});
  }, () => {});
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Rejects when the connection closes before `p` settles. */
function raceClose<T>(c: TestClient, p: Promise<T>): Promise<T> {
  if (c.closeCode !== null) return Promise.reject(new Error("closed"));
  return Promise.race([
    p,
    c.closed.then(() => {
      throw new Error("closed");
    }),
  ]);
}

/** Per-conversation rows straight from the database. */
export interface ConvRow {
  conv: string;
  cseq: number;
  sender: string;
  cmid: string;
  mid: string;
}

/** Every stored message, ordered by conversation and cseq. */
export async function storedMessages(sql: postgres.Sql): Promise<ConvRow[]> {
  const rows = await sql<ConvRow[]>`
    SELECT conv, cseq::int AS cseq, sender, cmid, mid FROM messages ORDER BY conv, cseq`;
  return [...rows];
}

/**
 * Integrity of the durable state, checked in SQL: no (conv, cseq) or (sender, cmid) twice,
 * cseq gapless from 1 per conversation, inbox seq gapless from 1 per user up to its last seq, and
 * every inbox entry names a stored message. Returns the problems found (empty = consistent).
 */
export async function integrityProblems(sql: postgres.Sql): Promise<string[]> {
  const problems: string[] = [];
  const dupCseq = await sql`
    SELECT conv, cseq, count(*)::int AS n FROM messages GROUP BY conv, cseq HAVING count(*) > 1`;
  for (const r of dupCseq) problems.push(`(conv, cseq) twice: ${r.conv} ${r.cseq}`);
  const dupCmid = await sql`
    SELECT sender, cmid, count(*)::int AS n FROM messages GROUP BY sender, cmid
    HAVING count(*) > 1`;
  for (const r of dupCmid) problems.push(`(sender, cmid) twice: ${r.sender} ${r.cmid}`);
  const cseqGaps = await sql`
    SELECT conv, count(*)::int AS n, max(cseq)::int AS top, min(cseq)::int AS low
    FROM messages GROUP BY conv HAVING count(*) <> max(cseq) OR min(cseq) <> 1`;
  for (const r of cseqGaps) problems.push(`cseq gap in ${r.conv}: ${r.n} rows, ${r.low}..${r.top}`);
  // Inbox entries expanded from their runs (closed ones and each user's open tail).
  const entries = sql`
    WITH runs AS (
      SELECT user_id, seq_start, conv, cseq_start, count FROM inbox_runs
      UNION ALL
      SELECT user_id, tail_seq_start, tail_conv, tail_cseq - (last_seq - tail_seq_start),
             last_seq - tail_seq_start + 1
      FROM user_inbox_seq WHERE tail_conv <> ''
    )
    SELECT r.user_id, r.seq_start + k AS seq, r.conv, r.cseq_start + k AS cseq
    FROM runs r CROSS JOIN LATERAL generate_series(0, r.count - 1) AS k`;
  const seqGaps = await sql`
    SELECT user_id, count(*)::int AS n, max(seq)::int AS top, min(seq)::int AS low
    FROM (${entries}) i GROUP BY user_id HAVING count(*) <> max(seq) OR min(seq) <> 1`;
  for (const r of seqGaps) {
    problems.push(`inbox gap of ${r.user_id}: ${r.n} rows, ${r.low}..${r.top}`);
  }
  const short = await sql`
    SELECT s.user_id, s.last_seq::int AS last, max(i.seq)::int AS top
    FROM user_inbox_seq s LEFT JOIN (${entries}) i ON i.user_id = s.user_id
    GROUP BY s.user_id, s.last_seq HAVING coalesce(max(i.seq), 0) <> s.last_seq`;
  for (const r of short) {
    problems.push(`inbox of ${r.user_id} ends at ${r.top ?? 0}, its last seq is ${r.last}`);
  }
  const dangling = await sql`
    SELECT i.user_id, i.seq FROM (${entries}) i
    LEFT JOIN messages m ON m.conv = i.conv AND m.cseq = i.cseq
    WHERE m.mid IS NULL LIMIT 5`;
  for (const r of dangling) problems.push(`inbox entry without message: ${r.user_id} ${r.seq}`);
  const dupInbox = await sql`
    SELECT user_id, conv, cseq, count(*)::int AS n FROM (${entries}) i
    GROUP BY user_id, conv, cseq HAVING count(*) > 1
    LIMIT 5`;
  for (const r of dupInbox) {
    problems.push(`message twice in an inbox: ${r.user_id} ${r.conv} ${r.cseq}`);
  }
  return problems;
}
