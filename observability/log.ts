/**
 * Structured JSON logs, one object per line on stderr.
 *
 * Guarantee: callers pass fields explicitly; nothing here ever serialises a token, a password or
 * message text unless a caller passes it, and the IM code never does (see docs/operations.md).
 *
 * @module
 */

/** Log levels in increasing severity. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A structured logger. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `fields` to every line. */
  child(fields: Record<string, unknown>): Logger;
  /** Changes the minimum level at run time (shared by children). */
  setLevel(level: LogLevel): void;
}

/** Whether `value` names a log level. */
export function isLogLevel(value: string): value is LogLevel {
  return value in ORDER;
}

/**
 * Creates a logger writing JSON lines to `sink` (default: stderr).
 * Error values in fields are reduced to `{name, message, code}`: stacks stay out of logs
 * clients could see, and causes may hold payloads.
 */
export function createLogger(
  options: { level?: LogLevel; sink?: (line: string) => void; fields?: Record<string, unknown> } =
    {},
): Logger {
  const shared = { level: ORDER[options.level ?? "info"] };
  const encoder = new TextEncoder();
  const sink = options.sink ?? ((line: string) => {
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  });
  return make(options.fields ?? {}, shared, sink);
}

function make(
  base: Record<string, unknown>,
  shared: { level: number },
  sink: (line: string) => void,
): Logger {
  const write = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < shared.level) return;
    const line: Record<string, unknown> = { ts: new Date().toISOString(), level, msg, ...base };
    if (fields) {
      for (const [k, v] of Object.entries(fields)) {
        line[k] = v instanceof Error ? errorFields(v) : v;
      }
    }
    sink(JSON.stringify(line));
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    child: (fields) => make({ ...base, ...fields }, shared, sink),
    setLevel: (level) => {
      shared.level = ORDER[level];
    },
  };
}

function errorFields(err: Error): Record<string, unknown> {
  const code = (err as { code?: unknown }).code;
  return { name: err.name, message: err.message, ...(code !== undefined ? { code } : {}) };
}

/** A logger that drops everything (tests, examples). */
export const silentLogger: Logger = createLogger({ sink: () => {}, level: "error" });
