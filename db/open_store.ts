/**
 * Chooses and opens the store of a node: Postgres when a database URL is configured, else the
 * embedded SQLite store under the data directory. Migrations are applied before it returns.
 *
 * @module
 */
import type { Store } from "./store.ts";
import { openPostgresStore } from "./store_postgres.ts";
import { openSqliteStore } from "./store_sqlite.ts";

/** Opens and migrates the configured store; rejects with a clear error when it cannot. */
export async function openStore(config: { databaseUrl?: string; dataDir: string }): Promise<Store> {
  const store = config.databaseUrl
    ? openPostgresStore(config.databaseUrl)
    : openSqliteStore(`${config.dataDir}/im.sqlite3`);
  try {
    await store.migrate();
  } catch (err) {
    await store.close().catch(() => {});
    const where = config.databaseUrl ? "Postgres" : `SQLite at ${config.dataDir}/im.sqlite3`;
    throw new Error(`Store (${where}) cannot be opened: ${(err as Error).message}`, { cause: err });
  }
  return store;
}
