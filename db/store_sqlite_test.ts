import { openSqliteStore } from "./store_sqlite.ts";
import { runStoreContract } from "./store_contract.ts";

runStoreContract("sqlite", async () => {
  const dir = await Deno.makeTempDir({ prefix: "im_store_sqlite_" });
  // A missing parent directory: the adapter creates it.
  const path = `${dir}/data/im.sqlite3`;
  const open = async () => {
    const store = openSqliteStore(path);
    await store.migrate();
    return store;
  };
  const store = await open();
  return {
    store,
    reopen: open,
    cleanup: async () => {
      await store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
});
