/**
 * The disk {@link BlobStore}: one file per blob under a root directory (by default
 * `DATA_DIR/media`), spread over 1,024 sub-directories by the first two characters of the id.
 *
 * - Keys are checked with {@link checkBlobKey} first: only `md_` + base32 reaches a path, so no
 *   key can climb out of the root (`..`, `/`, NUL are impossible).
 * - `put` writes a temporary file in the same directory, fsyncs it, then renames it into place
 *   (atomic on POSIX file systems): readers see the old blob or the new one, never a part.
 * - I/O failures other than "not found" surface as {@link UnavailableError}.
 *
 * @module
 */
import { join } from "node:path";
import { UnavailableError } from "../actors/errors.ts";
import { type BlobStore, checkBlobKey } from "./blob_store.ts";

/** Opens (creating when missing) a disk blob store rooted at `root`. */
export function openDiskBlobStore(root: string): BlobStore {
  return new DiskBlobStore(root);
}

class DiskBlobStore implements BlobStore {
  readonly #root: string;

  constructor(root: string) {
    this.#root = root;
  }

  #path(key: string): { dir: string; file: string } {
    checkBlobKey(key);
    const dir = join(this.#root, key.slice(3, 5));
    return { dir, file: join(dir, key) };
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    const { dir, file } = this.#path(key);
    const tmp = `${file}.${crypto.randomUUID()}.tmp`;
    try {
      await Deno.mkdir(dir, { recursive: true });
      const f = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
      try {
        let off = 0;
        while (off < data.length) off += await f.write(data.subarray(off));
        await f.sync();
      } finally {
        f.close();
      }
      await Deno.rename(tmp, file);
    } catch (err) {
      await Deno.remove(tmp).catch(() => {});
      throw new UnavailableError(`Blob store cannot write: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  async get(key: string): Promise<Uint8Array | null> {
    const { file } = this.#path(key);
    try {
      return await Deno.readFile(file);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw new UnavailableError(`Blob store cannot read: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  async delete(key: string): Promise<void> {
    const { file } = this.#path(key);
    try {
      await Deno.remove(file);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      throw new UnavailableError(`Blob store cannot delete: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
}
