import assert from "node:assert/strict";
import { ImError, UnavailableError } from "../actors/errors.ts";
import { dependencyMetrics, instrument } from "./instrument.ts";
import { MetricsRegistry } from "./metrics.ts";

class Port {
  #secret = 41;
  calls = 0;
  read(): Promise<number> {
    this.calls++;
    return Promise.resolve(this.#secret + 1);
  }
  down(): Promise<never> {
    return Promise.reject(new UnavailableError("gone"));
  }
  taken(): Promise<never> {
    return Promise.reject(new ImError("username_taken", "taken"));
  }
  sync(): number {
    return 7;
  }
}

Deno.test("an instrumented port times its calls and counts only dependency failures", async () => {
  const registry = new MetricsRegistry();
  const metrics = dependencyMetrics(registry);
  const port = instrument(new Port(), "postgres", metrics);
  assert.equal(await port.read(), 42, "private fields still work through the proxy");
  assert.equal(port.calls, 1);
  await assert.rejects(port.down(), UnavailableError);
  await assert.rejects(port.taken(), { code: "username_taken" });
  assert.equal(port.sync(), 7);

  assert.equal(metrics.latency.count({ dep: "postgres", op: "read" }), 1);
  assert.equal(metrics.latency.count({ dep: "postgres", op: "down" }), 1);
  assert.equal(metrics.errors.get({ dep: "postgres", op: "down", code: "unavailable" }), 1);
  assert.equal(metrics.errors.get({ dep: "postgres", op: "taken", code: "username_taken" }), 0);
  const text = registry.render();
  assert.match(text, /im_dependency_seconds_bucket\{dep="postgres",op="read",le="0.0001"\} \d/);
  assert.match(text, /im_dependency_errors_total\{code="unavailable",dep="postgres",op="down"\} 1/);
});

Deno.test("only the named methods are timed when a list is given", async () => {
  const metrics = dependencyMetrics(new MetricsRegistry());
  const port = instrument(new Port(), "redis", metrics, ["read"]);
  await port.read();
  await assert.rejects(port.down());
  assert.equal(metrics.latency.count({ dep: "redis", op: "read" }), 1);
  assert.equal(metrics.latency.count({ dep: "redis", op: "down" }), 0);
  assert.equal(metrics.errors.get({ dep: "redis", op: "down", code: "unavailable" }), 0);
});
