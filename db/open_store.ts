/**
 * Chooses and opens the store of a node: Postgres when a database URL is configured, else the
 * embedded SQLite store at `${dataDir}/im.sqlite3` (directory created when missing), run on its own
 * thread so its fsyncs never stall the node's event loop. Pending
 * migrations are applied before it resolves, so the store is ready for use.
 *
 * @module
 */
import { join } from "node:path";
import { ImError, UnavailableError } from "../actors/errors.ts";
import type { Store } from "./store.ts";
import type { Logger } from "../observability/log.ts";
import { openPostgresStore } from "./store_postgres.ts";
import { openThreadedSqliteStore } from "./store_sqlite_threaded.ts";

/** Where a node keeps its data. */
export interface StoreConfig {
  /** Postgres URL; when set, the node uses Postgres (required for a cluster). */
  databaseUrl?: string;
  /** Directory of the embedded SQLite file, used when `databaseUrl` is not set. */
  dataDir: string;
  /** Where the store reports trouble it recovers from (default: a stderr logger). */
  log?: Pick<Logger, "warn">;
}

/**
 * Opens and migrates the configured store. Rejects (after releasing what it opened) when the
 * store cannot be opened or migrated: an ImError keeps its code (an UnavailableError its class)
 * with a message naming the store; the URL is never included, as it may hold a password.
 */
export async function openStore(config: StoreConfig): Promise<Store> {
  const path = join(config.dataDir, "im.sqlite3");
  const where = config.databaseUrl ? "Postgres" : `SQLite at ${path}`;
  let store: Store;
  try {
    store = config.databaseUrl
      ? openPostgresStore(config.databaseUrl)
      : openThreadedSqliteStore(path, { log: config.log });
  } catch (err) {
    throw describe(err, where);
  }
  try {
    await store.migrate();
  } catch (err) {
    try {
      await store.close();
    } catch (closeErr) {
      throw new AggregateError([err, closeErr], `Store (${where}) cannot be opened`);
    }
    throw describe(err, where);
  }
  return store;
}

function describe(err: unknown, where: string): Error {
  const message = `Store (${where}) cannot be opened: ${
    err instanceof Error ? err.message : String(err)
  }`;
  if (err instanceof UnavailableError) return new UnavailableError(message, { cause: err });
  if (err instanceof ImError) return new ImError(err.code, message, { cause: err });
  return new Error(message, { cause: err });
}
