/**
 * The contract every {@link BlobStore} adapter keeps (see blob_store.ts), run against each one:
 * `runBlobStoreContract("disk", open)`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { newId } from "../gateway/ids.ts";
import type { BlobStore } from "./blob_store.ts";

/** A fresh, empty store, and how to dispose of it. */
export interface BlobStoreFixture {
  blobs: BlobStore;
  cleanup(): Promise<void>;
}

/** Keys no adapter may accept: anything but `md_` + 20 base32 characters. */
export const NOT_MEDIA_IDS = [
  "../secret",
  "md_../../secret",
  "md_aaaaaaaaaaaaaaaaaaa/",
  "md_aaaaaaaaaaaaaaaaaaaa/../../secret",
  "md_AAAAAAAAAAAAAAAAAAAA",
  "md_aaaaaaaaaaaaaaaaaaaa\0",
  "md_aaaaaaaaaaaaaaaaaaaa' OR '1'='1",
  "/etc/passwd",
  "",
];

/** Registers the contract tests for one adapter. */
export function runBlobStoreContract(name: string, open: () => Promise<BlobStoreFixture>): void {
  const test = (title: string, fn: (blobs: BlobStore) => Promise<void>) =>
    Deno.test(`blob store (${name}): ${title}`, async () => {
      const { blobs, cleanup } = await open();
      try {
        await fn(blobs);
      } finally {
        await cleanup();
      }
    });

  test("keeps bytes by media id until deleted; a put replaces", async (blobs) => {
    const id = newId("md_");
    assert.equal(await blobs.get(id), null);
    const data = new Uint8Array(70_000).map((_, i) => (i * 31) & 255);
    await blobs.put(id, data);
    assert.deepEqual(await blobs.get(id), data);
    await blobs.put(id, new Uint8Array([1, 2, 3]));
    assert.deepEqual(await blobs.get(id), new Uint8Array([1, 2, 3]));
    await blobs.delete(id);
    await blobs.delete(id);
    assert.equal(await blobs.get(id), null);
  });

  test("an empty blob and a large one round-trip exactly", async (blobs) => {
    const empty = newId("md_");
    await blobs.put(empty, new Uint8Array(0));
    assert.deepEqual(await blobs.get(empty), new Uint8Array(0));
    const large = newId("md_");
    const data = crypto.getRandomValues(new Uint8Array(65_536));
    const big = new Uint8Array(3 * 1_048_576);
    for (let off = 0; off < big.length; off += data.length) big.set(data, off);
    await blobs.put(large, big);
    const got = await blobs.get(large);
    assert.ok(got instanceof Uint8Array);
    assert.equal(got.byteLength, big.byteLength);
    assert.deepEqual(got, big);
  });

  test("blobs written at once are each whole", async (blobs) => {
    const ids = Array.from({ length: 12 }, () => newId("md_"));
    const body = (i: number) => new Uint8Array(20_000 + i).fill(i);
    await Promise.all(ids.map((id, i) => blobs.put(id, body(i))));
    const got = await Promise.all(ids.map((id) => blobs.get(id)));
    got.forEach((g, i) => assert.deepEqual(g, body(i)));
  });

  test("every key that is not a media id is refused with TypeError", async (blobs) => {
    for (const key of NOT_MEDIA_IDS) {
      await assert.rejects(blobs.get(key), TypeError, JSON.stringify(key));
      await assert.rejects(blobs.put(key, new Uint8Array([1])), TypeError);
      await assert.rejects(blobs.delete(key), TypeError);
    }
  });
}
