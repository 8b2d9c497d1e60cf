import assert from "node:assert/strict";
import { UnavailableError } from "../actors/errors.ts";
import { openStore } from "./open_store.ts";
import { createTempDatabase } from "../tests/support/postgres.ts";

Deno.test("openStore without a database URL opens a migrated SQLite store under dataDir", async () => {
  const dir = await Deno.makeTempDir({ prefix: "im_open_store_" });
  try {
    const dataDir = `${dir}/not/yet/there`;
    const store = await openStore({ dataDir });
    try {
      assert.equal(store.kind, "sqlite");
      await store.fence("user/x", 1);
    } finally {
      await store.close();
    }
    assert.ok((await Deno.stat(`${dataDir}/im.sqlite3`)).isFile);
    const reopened = await openStore({ dataDir });
    try {
      assert.equal(await reopened.storedEpoch("user/x"), 1);
    } finally {
      await reopened.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openStore with a database URL opens a migrated Postgres store", async () => {
  const db = await createTempDatabase();
  try {
    const store = await openStore({ databaseUrl: db.url, dataDir: "/nonexistent" });
    try {
      assert.equal(store.kind, "postgres");
      assert.equal(await store.latestSeq("u_1"), 0);
    } finally {
      await store.close();
    }
  } finally {
    await db.drop();
  }
});

Deno.test("openStore rejects with code unavailable when Postgres cannot be reached, without the URL in the message", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  await assert.rejects(
    openStore({ databaseUrl: `postgres://im:s3cret@127.0.0.1:${port}/im`, dataDir: "/x" }),
    (err: unknown) => {
      assert.ok(err instanceof UnavailableError);
      assert.equal(err.code, "unavailable");
      assert.match(err.message, /Store \(Postgres\) cannot be opened/);
      assert.doesNotMatch(err.message, /s3cret/);
      return true;
    },
  );
});
