/**
 * The storage layer: the {@link Store} port, its two adapters, group commit and the opener that
 * picks an adapter from the configuration.
 *
 * Domain code depends on the port (`Store` and its record types) and receives a store from the
 * composition root, which calls {@link openStore}. The contract suite every adapter passes lives
 * in `store_contract.ts` (test-only, not exported here).
 *
 * @module
 */
export type {
  AckCursor,
  AppendRequest,
  AppendResult,
  InboxEntry,
  Recipient,
  RefreshTokenRecord,
  Snapshot,
  Store,
  StoredMessage,
  UserRecord,
} from "./store.ts";
export { openStore, type StoreConfig } from "./open_store.ts";
export { openSqliteStore, type SqliteStoreOptions } from "./store_sqlite.ts";
export {
  openThreadedSqliteStore,
  type ThreadedSqliteStoreOptions,
} from "./store_sqlite_threaded.ts";
export { openPostgresStore, type PostgresStoreOptions } from "./store_postgres.ts";
export { GroupCommit, type GroupCommitOptions } from "./group_commit.ts";
