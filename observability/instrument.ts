/**
 * Latency and error metrics around a port (the store, placement, the transport) without
 * touching its adapter: {@link instrument} returns a proxy whose promise-returning methods are
 * timed into `im_dependency_seconds{dep, op}` and whose failures count into
 * `im_dependency_errors_total{dep, op, code}`.
 *
 * Only dependency failures count as errors (`unavailable`, `timeout`, driver errors without a
 * protocol code); answers that are part of the port's contract (`fenced`, `username_taken`,
 * `moved`, `not_found`, ...) are outcomes, not errors. Everything else passes through untouched,
 * including `this` binding and non-function properties.
 *
 * @module
 */
import type { Counter, Histogram, MetricsRegistry } from "./metrics.ts";

/** Buckets of dependency latencies, seconds (0.1 ms .. 5 s). */
export const DEPENDENCY_BUCKETS = [
  0.0001,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
];

/** The two metrics every instrumented port shares. */
export interface DependencyMetrics {
  latency: Histogram;
  errors: Counter;
}

/** Registers the dependency metrics on `registry` (once per node). */
export function dependencyMetrics(registry: MetricsRegistry): DependencyMetrics {
  return {
    latency: registry.histogram(
      "im_dependency_seconds",
      "Latency of calls to Postgres/SQLite, Redis and NATS, by dependency and operation",
      DEPENDENCY_BUCKETS,
    ),
    errors: registry.counter(
      "im_dependency_errors_total",
      "Failed calls to Postgres/SQLite, Redis and NATS, by dependency, operation and code",
    ),
  };
}

const DEPENDENCY_FAILURES = new Set(["unavailable", "timeout", "internal"]);

/** Whether `err` is a dependency failure rather than a contractual answer. */
export function isDependencyFailure(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code !== "string" || DEPENDENCY_FAILURES.has(code) ||
    !/^[a-z_]+$/.test(code);
}

/**
 * A proxy of `target` that times `methods` (all methods when omitted) under `dep`. Calls that
 * return something other than a promise are passed through unmeasured.
 */
export function instrument<T extends object>(
  target: T,
  dep: string,
  metrics: DependencyMetrics,
  methods?: readonly (keyof T & string)[],
): T {
  const only = methods ? new Set<string>(methods) : null;
  const wrapped = new Map<string | symbol, unknown>();
  return new Proxy(target, {
    get(t, prop, receiver) {
      const value = Reflect.get(t, prop, receiver);
      if (typeof value !== "function" || typeof prop !== "string") return value;
      if (only && !only.has(prop)) return value.bind(t);
      let fn = wrapped.get(prop) as ((...args: unknown[]) => unknown) | undefined;
      if (!fn) {
        const labels = { dep, op: prop };
        fn = (...args: unknown[]) => {
          const started = performance.now();
          let out: unknown;
          try {
            out = (value as (...a: unknown[]) => unknown).apply(t, args);
          } catch (err) {
            if (isDependencyFailure(err)) metrics.errors.inc({ ...labels, code: codeOf(err) });
            throw err;
          }
          if (!(out instanceof Promise)) return out;
          return out.then(
            (v) => {
              metrics.latency.observe((performance.now() - started) / 1000, labels);
              return v;
            },
            (err) => {
              metrics.latency.observe((performance.now() - started) / 1000, labels);
              if (isDependencyFailure(err)) metrics.errors.inc({ ...labels, code: codeOf(err) });
              throw err;
            },
          );
        };
        wrapped.set(prop, fn);
      }
      return fn;
    },
  });
}

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[a-z_]+$/.test(code) ? code : "error";
}
