import assert from "node:assert/strict";
import { newId } from "../gateway/ids.ts";
import { isMediaId } from "./blob_store.ts";
import { openDiskBlobStore } from "./blob_store_disk.ts";
import { NOT_MEDIA_IDS, runBlobStoreContract } from "./blob_store_contract.ts";

async function withRoot(fn: (root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "im_blobs_" });
  try {
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

runBlobStoreContract("disk", async () => {
  const root = await Deno.makeTempDir({ prefix: "im_blobs_" });
  return {
    blobs: openDiskBlobStore(`${root}/media`),
    cleanup: () => Deno.remove(root, { recursive: true }),
  };
});

Deno.test("the disk blob store leaves nothing but the blob in its directory", async () => {
  await withRoot(async (root) => {
    const blobs = openDiskBlobStore(`${root}/media`);
    const id = newId("md_");
    assert.ok(isMediaId(id));
    await blobs.put(id, new Uint8Array(70_000).fill(7));
    await blobs.put(id, new Uint8Array([1, 2, 3]));
    // No temporary files left behind by the atomic replace.
    const dir = `${root}/media/${id.slice(3, 5)}`;
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [id]);
  });
});

Deno.test("the disk blob store refuses every key that is not a media id, so no path can escape", async () => {
  await withRoot(async (root) => {
    const blobs = openDiskBlobStore(`${root}/media`);
    await Deno.writeTextFile(`${root}/secret`, "s3cret");
    const keys = NOT_MEDIA_IDS;
    for (const key of keys) {
      await assert.rejects(blobs.get(key), TypeError, JSON.stringify(key));
      await assert.rejects(blobs.put(key, new Uint8Array([1])), TypeError);
      await assert.rejects(blobs.delete(key), TypeError);
    }
    assert.equal(await Deno.readTextFile(`${root}/secret`), "s3cret");
  });
});

Deno.test("a disk blob store whose root cannot be written rejects with UnavailableError", async () => {
  await withRoot(async (root) => {
    await Deno.writeTextFile(`${root}/file`, "not a directory");
    const blobs = openDiskBlobStore(`${root}/file/media`);
    await assert.rejects(
      blobs.put(newId("md_"), new Uint8Array([1])),
      (err: unknown) => (err as { code?: string }).code === "unavailable",
    );
  });
});
