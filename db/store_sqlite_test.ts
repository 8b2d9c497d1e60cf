import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { UnavailableError } from "../actors/errors.ts";
import { openSqliteStore } from "./store_sqlite.ts";
import { SQLITE_MIGRATIONS } from "./migrations_sqlite.ts";
import { runStoreContract } from "./store_contract.ts";
import type { AppendRequest } from "./store.ts";

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

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "im_store_sqlite_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function request(cmid: string): AppendRequest {
  return {
    actorId: "group/g_1",
    epoch: 1,
    mid: `m_${cmid}`,
    conv: "g:g_1",
    from: "u_1",
    to: { group: "g_1" },
    cmid,
    ts: 1,
    body: { type: "text", text: cmid },
    recipients: ["u_1", "u_2"],
  };
}

Deno.test("the SQLite store keeps its file in WAL mode", async () => {
  await withDir(async (dir) => {
    const store = openSqliteStore(`${dir}/im.sqlite3`);
    await store.migrate();
    await store.close();
    const db = new DatabaseSync(`${dir}/im.sqlite3`);
    try {
      assert.deepEqual({ ...db.prepare("PRAGMA journal_mode").get() }, { journal_mode: "wal" });
    } finally {
      db.close();
    }
  });
});

Deno.test("an in-memory SQLite store works without touching the file system", async () => {
  const store = openSqliteStore(":memory:");
  try {
    await store.migrate();
    const [result] = await store.append([request("c1")]);
    assert.equal(result.status, "stored");
    assert.equal(await store.latestSeq("u_2"), 1);
    assert.equal(store.kind, "sqlite");
  } finally {
    await store.close();
  }
});

Deno.test("a write blocked by another connection's lock past the busy timeout rejects with UnavailableError and writes nothing", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/im.sqlite3`;
    const store = openSqliteStore(path, { busyTimeoutMs: 50 });
    const other = new DatabaseSync(path);
    try {
      await store.migrate();
      other.exec("BEGIN IMMEDIATE");
      await assert.rejects(store.append([request("c1")]), UnavailableError);
      await assert.rejects(store.fence("user/x", 1), UnavailableError);
      other.exec("ROLLBACK");
      assert.equal(await store.latestCseq("g:g_1"), 0);
      const [result] = await store.append([request("c1")]);
      assert.equal(result.status === "stored" && result.message.cseq, 1);
    } finally {
      other.close();
      await store.close();
    }
  });
});

Deno.test("a failing SQLite migration rolls back entirely and is not recorded", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/im.sqlite3`;
    const broken = [
      ...SQLITE_MIGRATIONS,
      {
        version: 1000,
        description: "fails halfway",
        sql: "CREATE TABLE half_done (x INTEGER); INSERT INTO no_such_table VALUES (1);",
      },
    ];
    const store = openSqliteStore(path, { migrations: broken });
    await assert.rejects(store.migrate());
    await store.close();
    const db = new DatabaseSync(path);
    try {
      const versions = db.prepare("SELECT version FROM schema_migrations ORDER BY version").all();
      assert.deepEqual(versions.map((r) => r.version), SQLITE_MIGRATIONS.map((m) => m.version));
      const table = db.prepare("SELECT name FROM sqlite_master WHERE name = 'half_done'").get();
      assert.equal(table, undefined);
    } finally {
      db.close();
    }
  });
});
