import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { FencedError, ImError, UnavailableError } from "../actors/errors.ts";
import { openThreadedSqliteStore } from "./store_sqlite_threaded.ts";
import { runStoreContract } from "./store_contract.ts";
import { request, withDir } from "./testing_sqlite.ts";

runStoreContract("sqlite (threaded)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "im_store_sqlite_thr_" });
  const path = `${dir}/data/im.sqlite3`;
  const open = async () => {
    const store = openThreadedSqliteStore(path);
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

Deno.test("threaded SQLite: errors cross the thread with their class, code and fields", async () => {
  const store = openThreadedSqliteStore(":memory:");
  try {
    await store.migrate();
    await store.fence("user/u_1", 5);
    const fenced = await store.saveSnapshot("user/u_1", 3, new Uint8Array([1])).then(
      () => null,
      (err) => err,
    );
    assert.ok(fenced instanceof FencedError, String(fenced));
    assert.equal(fenced.code, "fenced");
    assert.equal(fenced.epoch, 3);
    assert.equal(fenced.storedEpoch, 5);
    await store.createUser({
      userId: "u_1",
      username: "ann",
      passwordHash: "h",
      createdAt: 1,
      disabled: false,
    });
    const taken = await store.createUser({
      userId: "u_2",
      username: "ann",
      passwordHash: "h",
      createdAt: 1,
      disabled: false,
    }).then(() => null, (err) => err);
    assert.ok(taken instanceof ImError);
    assert.equal(taken.code, "username_taken");
    // Binary data survives the round trip.
    await store.saveSnapshot("user/u_1", 5, new Uint8Array([7, 8, 9]));
    const snap = await store.loadSnapshot("user/u_1");
    assert.deepEqual([...(snap?.data ?? [])], [7, 8, 9]);
    assert.equal(store.kind, "sqlite");
  } finally {
    await store.close();
  }
});

Deno.test("threaded SQLite: a write waiting on another connection's lock blocks only the worker, then rejects with UnavailableError", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/im.sqlite3`;
    const store = openThreadedSqliteStore(path, { busyTimeoutMs: 300 });
    const other = new DatabaseSync(path);
    try {
      await store.migrate();
      other.exec("BEGIN IMMEDIATE");
      const write = store.append([request("c1")]);
      // The main thread is free while the worker waits for the lock.
      let ticks = 0;
      const timer = setInterval(() => ticks++, 10);
      await assert.rejects(write, UnavailableError);
      clearInterval(timer);
      assert.ok(ticks >= 5, `event loop ran ${ticks} ticks during the wait`);
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

Deno.test("threaded SQLite: calls after close reject with UnavailableError; close is idempotent", async () => {
  const store = openThreadedSqliteStore(":memory:");
  await store.migrate();
  await store.close();
  await store.close();
  await assert.rejects(store.latestSeq("u_1"), UnavailableError);
});

Deno.test("threaded SQLite: a file that cannot be opened makes migrate reject with the reason", async () => {
  await withDir(async (dir) => {
    // A directory where the database file should be.
    await Deno.mkdir(`${dir}/im.sqlite3`);
    const store = openThreadedSqliteStore(`${dir}/im.sqlite3`);
    try {
      await assert.rejects(store.migrate(), UnavailableError);
    } finally {
      await store.close();
    }
  });
});

Deno.test("threaded SQLite: an argument that cannot cross the thread fails that call only", async () => {
  const store = openThreadedSqliteStore(":memory:");
  try {
    await store.migrate();
    // deno-lint-ignore no-explicit-any
    await assert.rejects(store.getUser((() => "x") as any));
    assert.equal(await store.latestSeq("u_1"), 0);
  } finally {
    await store.close();
  }
});

Deno.test("threaded SQLite: a snapshot given as a view of a larger buffer is stored as the view's bytes", async () => {
  const store = openThreadedSqliteStore(":memory:");
  try {
    await store.migrate();
    // As msgpackr hands them out: a view into a shared, much larger buffer.
    const shared = new Uint8Array(1 << 20).fill(0xee);
    shared.set([1, 2, 3, 4], 5000);
    await store.saveSnapshot("user/u_1", 1, shared.subarray(5000, 5004));
    const snap = await store.loadSnapshot("user/u_1");
    assert.deepEqual([...snap!.data], [1, 2, 3, 4]);
  } finally {
    await store.close();
  }
});

Deno.test("threaded SQLite: a checkpointer thread copies the WAL into the database file while the writer goes on", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/im.sqlite3`;
    const store = openThreadedSqliteStore(path);
    try {
      await store.migrate();
      const before = (await Deno.stat(path)).size;
      // Far below the writer's own automatic checkpoint (20,000 pages): only the checkpointer
      // moves these pages into the file.
      for (let b = 0; b < 20; b++) {
        await store.append(Array.from({ length: 10 }, (_, i) => ({
          ...request(`c${b}_${i}`),
          recipients: Array.from({ length: 100 }, (_, u) => `u_${u}`),
        })));
      }
      const deadline = Date.now() + 10_000;
      while ((await Deno.stat(path)).size <= before) {
        assert.ok(Date.now() < deadline, "the database file never grew: no checkpoint ran");
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(await store.latestSeq("u_7"), 200);
    } finally {
      await store.close();
    }
  });
});

Deno.test("threaded SQLite: a checkpoint that fails for a reason other than a busy database is logged", async () => {
  await withDir(async (dir) => {
    // A directory where the database file should be: the writer cannot open it, and neither can
    // the checkpointer's own connection (which does not open a path that does not exist).
    const path = `${dir}/im.sqlite3`;
    await Deno.mkdir(path);
    const warnings: Array<{ msg: string; fields?: Record<string, unknown> }> = [];
    const store = openThreadedSqliteStore(path, {
      log: { warn: (msg, fields) => warnings.push({ msg, fields }) },
    });
    try {
      await assert.rejects(store.migrate());
      const deadline = Date.now() + 5_000;
      while (!warnings.some((w) => w.msg === "SQLite checkpoint failed")) {
        assert.ok(
          Date.now() < deadline,
          `no checkpoint failure logged: ${JSON.stringify(warnings)}`,
        );
        await new Promise((r) => setTimeout(r, 50));
      }
      const failure = warnings.find((w) => w.msg === "SQLite checkpoint failed")!;
      assert.match(String(failure.fields?.error), /unable to open/i);
    } finally {
      await store.close();
    }
  });
});

Deno.test("threaded SQLite: when the worker dies, calls in flight fail with UnavailableError and the next call starts a new one on the same file", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/im.sqlite3`;
    const store = openThreadedSqliteStore(
      path,
      {},
      new URL("./testdata/crashing_sqlite_worker.ts", import.meta.url),
    );
    try {
      await store.migrate();
      const [stored] = await store.append([request("c1")]);
      assert.equal(stored.status, "stored");
      const crash = store.latestSeq("__crash__");
      const behind = store.latestSeq("u_2");
      await assert.rejects(crash, UnavailableError);
      await assert.rejects(behind, UnavailableError);
      // A new worker, same file: what was committed is there.
      assert.equal(await store.latestSeq("u_2"), 1);
      const [next] = await store.append([request("c2")]);
      assert.equal(next.status === "stored" && next.message.cseq, 2);
    } finally {
      await store.close();
    }
  });
});
