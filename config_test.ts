import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "./config.ts";

const CLUSTER = {
  DATABASE_URL: "postgres://im@127.0.0.1:5432/im",
  REDIS_URL: "redis://127.0.0.1:6379",
  NATS_URL: "nats://127.0.0.1:4222",
  JWT_SECRET: "a-shared-secret-of-at-least-32-characters!",
};

Deno.test("media live on disk by default, and in Postgres in a cluster without a shared MEDIA_DIR", () => {
  assert.equal(loadConfig({}).mediaStore, "disk");
  assert.equal(loadConfig({ DATA_DIR: "/srv/im" }).mediaDir, "/srv/im/media");
  // A single node on Postgres keeps its media where it always did.
  assert.equal(loadConfig({ DATABASE_URL: CLUSTER.DATABASE_URL }).mediaStore, "disk");
  assert.equal(loadConfig(CLUSTER).mediaStore, "postgres");
  // A cluster that names a directory (every node mounts it) keeps using it.
  assert.equal(loadConfig({ ...CLUSTER, MEDIA_DIR: "/mnt/media" }).mediaStore, "disk");
  assert.equal(
    loadConfig({ DATABASE_URL: CLUSTER.DATABASE_URL, MEDIA_STORE: "postgres" }).mediaStore,
    "postgres",
  );
  assert.equal(loadConfig({ ...CLUSTER, MEDIA_STORE: "disk" }).mediaStore, "disk");
});

Deno.test("MEDIA_STORE must name a store the node can open", () => {
  assert.throws(() => loadConfig({ MEDIA_STORE: "s3" }), ConfigError);
  assert.throws(() => loadConfig({ MEDIA_STORE: "postgres" }), /needs DATABASE_URL/);
});

Deno.test("registrations per IP default to 20 per hour and take a positive limit", () => {
  assert.equal(loadConfig({}).registrationsPerIpPerHour, 20);
  assert.equal(loadConfig({ REGISTRATIONS_PER_IP_PER_HOUR: "500" }).registrationsPerIpPerHour, 500);
  assert.throws(() => loadConfig({ REGISTRATIONS_PER_IP_PER_HOUR: "0" }), ConfigError);
});
