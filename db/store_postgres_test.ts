import { openPostgresStore } from "./store_postgres.ts";
import { runStoreContract } from "./store_contract.ts";
import { createTempDatabase, type TempDatabase } from "../tests/support/postgres.ts";

// One fresh database for the whole run, made on first use and dropped after the last step.
let database: TempDatabase | undefined;

runStoreContract("postgres", async () => {
  database ??= await createTempDatabase();
  const url = database.url;
  const open = async () => {
    const store = openPostgresStore(url, { max: 4 });
    await store.migrate();
    return store;
  };
  const store = await open();
  return { store, reopen: open, cleanup: () => store.close() };
}, {
  afterAll: async () => {
    await database?.drop();
  },
});
