import assert from "node:assert/strict";
import postgres from "postgres";
import { UnavailableError } from "../actors/errors.ts";
import { openPostgresStore } from "../db/store_postgres.ts";
import { newId } from "../gateway/ids.ts";
import { createTempDatabase, unreachablePostgresUrl } from "../tests/support/postgres.ts";
import { runBlobStoreContract } from "./blob_store_contract.ts";
import { openPostgresBlobStore } from "./blob_store_postgres.ts";

/** A fresh database with the node's schema (the Store's migrations create `media_blobs`). */
async function migratedDatabase() {
  const db = await createTempDatabase();
  const store = openPostgresStore(db.url);
  try {
    await store.migrate();
  } finally {
    await store.close();
  }
  return db;
}

runBlobStoreContract("postgres", async () => {
  const db = await migratedDatabase();
  const blobs = openPostgresBlobStore(db.url);
  return {
    blobs,
    cleanup: async () => {
      await blobs.close();
      await db.drop();
    },
  };
});

Deno.test("the Postgres blob store on an unreachable server rejects with UnavailableError", async () => {
  const blobs = openPostgresBlobStore(unreachablePostgresUrl(), { connectTimeoutSeconds: 1 });
  try {
    await assert.rejects(blobs.get(newId("md_")), UnavailableError);
    await assert.rejects(blobs.put(newId("md_"), new Uint8Array([1])), UnavailableError);
  } finally {
    await blobs.close();
  }
});

Deno.test("a Postgres blob store whose connection is killed answers UnavailableError, then works again", async () => {
  const db = await migratedDatabase();
  const blobs = openPostgresBlobStore(db.url);
  const admin = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    const id = newId("md_");
    await blobs.put(id, new Uint8Array([1, 2, 3]));
    await admin`
      SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE datname = ${db.name} AND pid <> pg_backend_pid()`;
    // The pool's connection died under it: this call may fail (never hang), the next works.
    await blobs.get(id).catch((err) => assert.ok(err instanceof UnavailableError, String(err)));
    assert.deepEqual(await blobs.get(id), new Uint8Array([1, 2, 3]));
  } finally {
    await admin.end();
    await blobs.close();
    await db.drop();
  }
});

Deno.test("a Postgres blob store on a database without the media schema answers UnavailableError", async () => {
  const db = await createTempDatabase();
  const blobs = openPostgresBlobStore(db.url);
  try {
    await assert.rejects(blobs.get(newId("md_")), UnavailableError);
  } finally {
    await blobs.close();
    await db.drop();
  }
});
