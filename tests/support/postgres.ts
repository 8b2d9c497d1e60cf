/**
 * Throw-away Postgres databases for tests.
 *
 * Each call creates a fresh database `im_test_<random>` through the admin URL
 * (env `TEST_DATABASE_ADMIN_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`), so test
 * files running in parallel never share state. `drop()` removes it, ending any connection left.
 *
 * @module
 */
import postgres from "postgres";

/** A fresh, empty database and the way to remove it. */
export interface TempDatabase {
  /** Connection URL of the new database. */
  url: string;
  /** Its name (`im_test_<random>`). */
  name: string;
  /** Drops the database, forcibly disconnecting leftover sessions. Idempotent. */
  drop(): Promise<void>;
}

/** The admin URL used to create and drop test databases. */
export function adminUrl(): string {
  return Deno.env.get("TEST_DATABASE_ADMIN_URL") ??
    "postgres://postgres@127.0.0.1:5432/postgres";
}

async function withAdmin<T>(fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(adminUrl(), { max: 1, onnotice: () => {} });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Creates a fresh database; the caller must `drop()` it when done. */
export async function createTempDatabase(): Promise<TempDatabase> {
  const name = `im_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  await withAdmin((sql) => sql.unsafe(`CREATE DATABASE ${name}`));
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    url: url.toString(),
    name,
    async drop() {
      if (dropped) return;
      dropped = true;
      await withAdmin((sql) => sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

/** A Postgres URL on a loopback port nothing listens on (connections are refused). */
export function unreachablePostgresUrl(): string {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return `postgres://postgres@127.0.0.1:${port}/none`;
}
