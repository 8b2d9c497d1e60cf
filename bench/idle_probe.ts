/**
 * Where the memory of idle authenticated connections goes: a development tool, not a scenario.
 *
 * `deno run -A bench/idle_probe.ts [N=2000] [--top=30] [--bare] [--who=KIND|KIND]` signs up N users on one of our
 * nodes (a subprocess of `main.ts` with the V8 inspector on a loopback port), restarts it on the
 * same data directory, takes a heap snapshot (after a full GC) with no client, connects N idle
 * authenticated clients from a generator process, waits, takes a second snapshot, and prints:
 * RSS and V8 heap growth per connection, and the heap growth per connection by object kind
 * (snapshot node type and constructor name), largest first. `--bare` measures the bare Deno
 * server instead (RSS and heap only). `--who=` lists, for the object kinds named, the paths that
 * retain them (first retainer, four levels). `deno run -A bench/idle_probe.ts N --rss` measures
 * like scenario 3 on one node instead (no inspector): ours, then bare Deno, and the ratio; with
 * `--spaces` also the growth of `Deno.memoryUsage()` and of each V8 heap space (inspector on).
 * `--alloc` (snapshot mode) also samples what is allocated while connecting, garbage included.
 * Loopback only; every process it starts is stopped by pid.
 *
 * @module
 */
import { accounts, closeClients, connectClients, type Deployment, log, sleep } from "./harness.ts";
import { GeneratorPool } from "./generator_pool.ts";
import { rssBytes } from "./proc_stat.ts";
import { nodeEnv, ServerProcess } from "./systems.ts";
import { freePort } from "../tests/support/services.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** One Chrome DevTools Protocol connection to a process started with `--inspect`. */
class Inspector {
  #ws!: WebSocket;
  #next = 1;
  #waiting = new Map<number, (v: Record<string, unknown>) => void>();
  #chunks: string[] = [];

  async open(port: number): Promise<void> {
    const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
    this.#ws = new WebSocket(list[0].webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      this.#ws.onopen = resolve;
      this.#ws.onerror = reject;
    });
    this.#ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.method === "HeapProfiler.addHeapSnapshotChunk") this.#chunks.push(msg.params.chunk);
      else if (msg.id) this.#waiting.get(msg.id)?.(msg);
    };
  }

  /** Evaluates `expression` (a promise is awaited) in the process; its JSON value. */
  async evaluate(expression: string): Promise<unknown> {
    const res = await this.call("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
    }) as { result?: { result?: { value?: unknown } } };
    return res.result?.result?.value;
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = this.#next++;
    this.#ws.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve) => this.#waiting.set(id, resolve));
  }

  /** A full heap snapshot (after two GCs), parsed; `who`: kinds whose retainers to count. */
  async snapshot(who: string[] = []): Promise<HeapSummary> {
    await this.call("HeapProfiler.enable");
    await this.call("HeapProfiler.collectGarbage");
    await this.call("HeapProfiler.collectGarbage");
    this.#chunks = [];
    await this.call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
    const snap = JSON.parse(this.#chunks.join(""));
    this.#chunks = [];
    return summarize(snap, who);
  }

  close(): void {
    this.#ws.close();
  }
}

/** Self sizes and counts by `type:name`, and the total. */
interface HeapSummary {
  total: number;
  byKind: Map<string, { size: number; count: number }>;
  /** For each kind asked for: its retainers as `parent kind --edge-->`, with counts and sizes. */
  retainers: Map<string, Map<string, { size: number; count: number }>>;
}

interface RawSnapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: unknown[][];
      edge_fields: string[];
      edge_types: unknown[][];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** Levels of retainers shown for `--who`. */
const DEPTH = 4;

function summarize(snap: RawSnapshot, who: string[]): HeapSummary {
  const meta = snap.snapshot.meta;
  const fields = meta.node_fields;
  const types = meta.node_types[0] as string[];
  const width = fields.length;
  const iType = fields.indexOf("type"), iName = fields.indexOf("name");
  const iSize = fields.indexOf("self_size"), iEdges = fields.indexOf("edge_count");
  const byKind = new Map<string, { size: number; count: number }>();
  const kinds: string[] = [];
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + iType]];
    let name = snap.strings[snap.nodes[i + iName]];
    // Strings and code: one bucket per type (their "names" are their contents).
    if (type === "string" || type === "concatenated string" || type === "sliced string") {
      name = "";
    } else if (type === "code" || type === "number") name = "";
    else if (name.length > 60) name = name.slice(0, 60) + "…";
    const key = `${type}:${name}`;
    kinds.push(key);
    const size = snap.nodes[i + iSize];
    total += size;
    const e = byKind.get(key);
    if (e) {
      e.size += size;
      e.count++;
    } else byKind.set(key, { size, count: 1 });
  }
  const retainers = new Map<string, Map<string, { size: number; count: number }>>();
  if (who.length) {
    const wanted = new Set(who);
    const eFields = meta.edge_fields;
    const eTypes = meta.edge_types[0] as string[];
    const eWidth = eFields.length;
    const eType = eFields.indexOf("type"), eName = eFields.indexOf("name_or_index");
    const eTo = eFields.indexOf("to_node");
    const nodeCount = snap.nodes.length / width;
    // The first strong retainer of every node (a path needs one; good enough to attribute).
    const parent = new Int32Array(nodeCount).fill(-1);
    const via = new Array<string>(nodeCount);
    let e = 0;
    for (let i = 0; i < nodeCount; i++) {
      const count = snap.nodes[i * width + iEdges];
      for (let k = 0; k < count; k++, e += eWidth) {
        const to = snap.edges[e + eTo] / width;
        if (parent[to] !== -1) continue;
        const et = eTypes[snap.edges[e + eType]];
        if (et === "weak" || et === "shortcut") continue;
        // Skip the retainers that say nothing about the owner (maps, prototypes).
        const en = et === "element" || et === "hidden"
          ? "[]"
          : String(snap.strings[snap.edges[e + eName]]);
        if (en === "map" || en === "__proto__" || en === "back_pointer") continue;
        parent[to] = i;
        via[to] = en;
      }
    }
    for (let i = 0; i < nodeCount; i++) {
      const kind = kinds[i];
      if (!wanted.has(kind)) continue;
      let path = "";
      for (let j = i, d = 0; d < DEPTH && parent[j] >= 0; d++, j = parent[j]) {
        path = `${kinds[parent[j]]} .${via[j]}${d ? " > " : ""}${path}`;
      }
      let m = retainers.get(kind);
      if (!m) retainers.set(kind, m = new Map());
      const r = m.get(path);
      const size = snap.nodes[i * width + iSize];
      if (r) {
        r.count++;
        r.size += size;
      } else m.set(path, { size, count: 1 });
    }
  }
  return { total, byKind, retainers };
}

/** A node of V8's sampling heap profile. */
interface SamplingNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: SamplingNode[];
}

/**
 * Bytes allocated per connection while connecting (garbage included), by the innermost frame of
 * this project (not a dependency or the runtime), and by the innermost frame overall.
 */
function printAllocations(head: SamplingNode, n: number, top: number): void {
  const byOwn = new Map<string, number>();
  const bySite = new Map<string, number>();
  let total = 0;
  const walk = (node: SamplingNode, own: string) => {
    const f = node.callFrame;
    const site = `${f.functionName || "(anonymous)"} ${f.url.replace(/^.*\/work\/main\//, "")}:${
      f.lineNumber + 1
    }`;
    const mine = f.url.includes("/work/main/") && !f.url.includes("node_modules");
    const here = mine ? site : own;
    if (node.selfSize) {
      total += node.selfSize;
      byOwn.set(here, (byOwn.get(here) ?? 0) + node.selfSize);
      bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
    }
    for (const c of node.children) walk(c, here);
  };
  walk(head, "(outside the project)");
  console.log(`allocated while connecting: ${(total / n / 1024).toFixed(1)} KiB per connection`);
  for (const [title, m] of [["by project frame", byOwn], ["by frame", bySite]] as const) {
    console.log(`\n${title}:`);
    for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`${(v / n).toFixed(0).padStart(8)} B/conn  ${k}`);
    }
  }
}

function startProcess(bare: boolean, dir: string, inspectPort: number | null): ServerProcess {
  const args = ["run", "-A"];
  if (inspectPort !== null) args.push(`--inspect=127.0.0.1:${inspectPort}`);
  if (bare) {
    return new ServerProcess("bare", freePort(), [
      ...args,
      `${ROOT}bench/servers/bare_server.ts`,
    ], {});
  }
  return new ServerProcess("im", freePort(), [...args, `${ROOT}main.ts`], {
    ...nodeEnv(),
    DATA_DIR: dir,
  });
}

/** V8 heap in use of our node (its `/metrics`). */
async function heapUsed(server: ServerProcess): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(/^im_memory_heap_used_bytes\s+(\d+)/m.exec(text)?.[1] ?? 0);
}

/**
 * `--rss`: scenario 3's one-node measurement (no inspector), ours then bare Deno, the same way
 * (fresh process, 2 s settle before and after): RSS growth per connection and the ratio.
 */
async function rssMode(n: number, spaces: boolean): Promise<void> {
  const pool = new GeneratorPool(Math.max(2, Math.ceil(n / 9000)));
  const inspectPort = spaces ? freePort() : null;
  const memory = async (): Promise<Record<string, number>> => {
    if (inspectPort === null) return {};
    const insp = new Inspector();
    await insp.open(inspectPort);
    try {
      const json = await insp.evaluate(`(async () => {
        const v8 = (await import("node:v8")).default;
        const out = { ...Deno.memoryUsage() };
        for (const s of v8.getHeapSpaceStatistics()) {
          if (s.space_size) {
            out[s.space_name + " size"] = s.space_size;
            out[s.space_name + " used"] = s.space_used_size;
          }
        }
        return JSON.stringify(out);
      })()`);
      return JSON.parse(json as string);
    } finally {
      insp.close();
    }
  };
  const perConn: Record<string, number> = {};
  try {
    for (const bare of [false, true]) {
      const dir = await Deno.makeTempDir({ prefix: "im_probe_" });
      let server = startProcess(bare, dir, inspectPort);
      try {
        await server.ready();
        const dep: Deployment = {
          label: bare ? "bare" : "ours",
          kind: bare ? "bare" : "im",
          servers: [server],
          extra: [],
        };
        const users = await accounts(dep, pool, n, `p${Date.now().toString(36)}_`);
        if (!bare) {
          await server.stop();
          server = startProcess(bare, dir, inspectPort);
          await server.ready();
          dep.servers = [server];
        }
        await sleep(2000);
        const memBefore = await memory();
        const heapBefore = bare ? 0 : await heapUsed(server);
        const rssBefore = rssBytes(server.pid) ?? 0;
        const t0 = performance.now();
        await connectClients(
          dep,
          pool,
          users.map((account, key) => ({ key, account, server: 0 })),
          64,
        );
        const connectSec = (performance.now() - t0) / 1000;
        await sleep(2000);
        const rss = ((rssBytes(server.pid) ?? 0) - rssBefore) / n;
        const heap = bare ? 0 : ((await heapUsed(server)) - heapBefore) / n;
        perConn[dep.label] = rss;
        const memAfter = await memory();
        for (const [k, v] of Object.entries(memAfter)) {
          const d = (v - (memBefore[k] ?? 0)) / n;
          console.log(`  ${k.padEnd(24)} ${(d / 1024).toFixed(2).padStart(8)} KiB/conn`);
        }
        console.log(
          `${dep.label}: ${n} idle connections in ${connectSec.toFixed(1)} s: RSS ` +
            `${(rss / 1024).toFixed(1)} KiB each` +
            (bare ? "" : ` (V8 heap used ${(heap / 1024).toFixed(1)} KiB)`),
        );
        await closeClients(pool);
      } finally {
        await server.stop();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    }
    console.log(`ours / bare: ${(perConn.ours / perConn.bare).toFixed(2)}x`);
  } finally {
    await pool.stop();
  }
}

async function main(): Promise<void> {
  const n = Number(Deno.args.find((a) => /^\d+$/.test(a)) ?? 2000);
  if (Deno.args.includes("--rss")) return await rssMode(n, Deno.args.includes("--spaces"));
  const top = Number(Deno.args.find((a) => a.startsWith("--top="))?.slice(6) ?? 30);
  const bare = Deno.args.includes("--bare");
  const who = Deno.args.find((a) => a.startsWith("--who="))?.slice(6).split("|") ?? [];
  const dir = await Deno.makeTempDir({ prefix: "im_probe_" });
  const pool = new GeneratorPool(Math.max(1, Math.ceil(n / 9000)));
  let server: ServerProcess | null = null;
  try {
    const inspectPort = freePort();
    server = startProcess(bare, dir, inspectPort);
    await server.ready();
    const dep: Deployment = {
      label: bare ? "bare" : "ours",
      kind: bare ? "bare" : "im",
      servers: [server],
      extra: [],
    };
    log(`signing up ${n} users`);
    const users = await accounts(dep, pool, n, `p${Date.now().toString(36)}_`);
    if (!bare) {
      // A fresh process holds the connections (not the sign-up traffic), as in scenario 3.
      await server.stop();
      server = startProcess(bare, dir, inspectPort);
      await server.ready();
      dep.servers = [server];
    }
    const insp = new Inspector();
    await insp.open(inspectPort);
    await sleep(1000);
    const before = await insp.snapshot();
    const rssBefore = rssBytes(server.pid) ?? 0;
    const alloc = Deno.args.includes("--alloc");
    if (alloc) {
      await insp.call("HeapProfiler.startSampling", {
        samplingInterval: 1024,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
    }
    const t0 = performance.now();
    await connectClients(
      dep,
      pool,
      users.map((account, key) => ({ key, account, server: 0 })),
      64,
    );
    log(`connected ${n} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    if (alloc) {
      const res = await insp.call("HeapProfiler.stopSampling") as {
        result: { profile: { head: SamplingNode } };
      };
      printAllocations(res.result.profile.head, n, top);
    }
    await sleep(3000);
    // RSS before the second snapshot: taking one grows the process.
    const rssAfter = rssBytes(server.pid) ?? 0;
    const after = await insp.snapshot(who);
    const kib = (b: number) => (b / 1024).toFixed(2);
    console.log(
      `${dep.label}: ${n} idle connections: RSS ${kib((rssAfter - rssBefore) / n)} KiB each, ` +
        `V8 heap (snapshot self sizes) ${kib((after.total - before.total) / n)} KiB each`,
    );
    const rows: { key: string; size: number; count: number }[] = [];
    for (const [key, a] of after.byKind) {
      const b = before.byKind.get(key) ?? { size: 0, count: 0 };
      rows.push({ key, size: a.size - b.size, count: a.count - b.count });
    }
    for (const [key, b] of before.byKind) {
      if (!after.byKind.has(key)) rows.push({ key, size: -b.size, count: -b.count });
    }
    rows.sort((x, y) => Math.abs(y.size) - Math.abs(x.size));
    console.log("bytes/conn  objects/conn  kind");
    for (const r of rows.slice(0, top)) {
      console.log(
        `${(r.size / n).toFixed(1).padStart(10)}  ${
          (r.count / n).toFixed(2).padStart(12)
        }  ${r.key}`,
      );
    }
    for (const [kind, m] of after.retainers) {
      console.log(`\nretainers of ${kind} (after):`);
      const list = [...m].sort((x, y) => y[1].count - x[1].count).slice(0, 15);
      for (const [via, r] of list) {
        console.log(
          `${(r.count / n).toFixed(2).padStart(8)}/conn ${
            (r.size / n).toFixed(1).padStart(8)
          } B  ${via}`,
        );
      }
    }
    insp.close();
    await closeClients(pool);
  } finally {
    await pool.stop();
    await server?.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main();
