/**
 * CPU time and resident memory of processes, read from `/proc/<pid>/stat` and
 * `/proc/<pid>/status` (Linux only).
 *
 * CPU time is user + system time of every thread of the process, in milliseconds, at the
 * kernel's tick resolution (`CLK_TCK`, 100 Hz here: 10 ms), so measure windows of seconds.
 *
 * @module
 */

/** Kernel clock ticks per second (`getconf CLK_TCK`; 100 on every Linux build we run). */
const CLK_TCK = 100;

/** CPU time (user + system) of `pid` in ms, or `null` when the process is gone. */
export function cpuTimeMs(pid: number): number | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return ((utime + stime) * 1000) / CLK_TCK;
}

/** Resident set size of `pid` in bytes (VmRSS), or `null` when the process is gone. */
export function rssBytes(pid: number): number | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return null;
  }
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
  return m ? Number(m[1]) * 1024 : null;
}

/** A process whose CPU time is measured, under a role name (`server`, `redis`, …). */
export interface MeteredProcess {
  role: string;
  pid: number;
}

/** CPU ms used per role between {@link CpuMeter.start} and {@link CpuMeter.stop}. */
export type CpuUsage = Record<string, number>;

/**
 * Measures the CPU time several processes use over a window. Processes that appear during the
 * window (e.g. new Postgres backends) are counted from zero; processes that exit during it are
 * counted up to their last reading taken by {@link CpuMeter.sample}.
 */
export class CpuMeter {
  #first = new Map<number, { role: string; ms: number }>();
  #last = new Map<number, number>();
  #wallStart = 0;
  #wallMs = 0;

  constructor(private readonly list: () => MeteredProcess[]) {}

  /** Takes the first reading of every process. */
  start(): void {
    this.#first.clear();
    this.#last.clear();
    for (const p of this.list()) {
      const ms = cpuTimeMs(p.pid);
      if (ms !== null) {
        this.#first.set(p.pid, { role: p.role, ms });
        this.#last.set(p.pid, ms);
      }
    }
    this.#wallStart = performance.now();
  }

  /** Takes an intermediate reading (keeps the usage of processes that exit later). */
  sample(): void {
    for (const p of this.list()) {
      const ms = cpuTimeMs(p.pid);
      if (ms === null) continue;
      if (!this.#first.has(p.pid)) this.#first.set(p.pid, { role: p.role, ms: 0 });
      this.#last.set(p.pid, ms);
    }
  }

  /** Takes the last reading and returns CPU ms per role (plus `wallMs`). */
  stop(): CpuUsage {
    this.sample();
    this.#wallMs = performance.now() - this.#wallStart;
    const out: CpuUsage = {};
    for (const [pid, f] of this.#first) {
      const used = (this.#last.get(pid) ?? f.ms) - f.ms;
      out[f.role] = (out[f.role] ?? 0) + used;
    }
    out.wallMs = this.#wallMs;
    return out;
  }
}

/** User and system CPU ms of a group of threads. */
export interface ThreadCpu {
  user: number;
  system: number;
}

/**
 * CPU time of `pid`'s threads, summed per thread name with trailing digits dropped (`deno` is
 * the main thread, `worker-1` and `worker-2` become `worker-`, V8's helpers `V8 DefaultWorke`),
 * from `/proc/<pid>/task/<tid>/stat`. Empty when the process is gone. Threads that exit between
 * two readings are missing from the later one: compare readings of a running process.
 */
export function threadCpuMs(pid: number): Map<string, ThreadCpu> {
  const out = new Map<string, ThreadCpu>();
  let tasks: Iterable<Deno.DirEntry>;
  try {
    tasks = [...Deno.readDirSync(`/proc/${pid}/task`)];
  } catch {
    return out;
  }
  for (const t of tasks) {
    let text: string;
    try {
      text = Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/stat`);
    } catch {
      continue; // exited meanwhile
    }
    const name = text.slice(text.indexOf("(") + 1, text.lastIndexOf(")")).replace(/\d+$/, "");
    const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
    const cur = out.get(name) ?? { user: 0, system: 0 };
    cur.user += (Number(rest[11]) * 1000) / CLK_TCK;
    cur.system += (Number(rest[12]) * 1000) / CLK_TCK;
    out.set(name, cur);
  }
  return out;
}

/** What each thread group used between two {@link threadCpuMs} readings (groups that grew). */
export function threadCpuDelta(
  before: Map<string, ThreadCpu>,
  after: Map<string, ThreadCpu>,
): Map<string, ThreadCpu> {
  const out = new Map<string, ThreadCpu>();
  for (const [name, a] of after) {
    const b = before.get(name) ?? { user: 0, system: 0 };
    const d = { user: a.user - b.user, system: a.system - b.system };
    if (d.user + d.system > 0) out.set(name, d);
  }
  return out;
}
