/**
 * Test support for the SQLite store tests (in-thread and threaded): a temporary directory and a
 * group-message append request.
 *
 * @module
 */
import type { AppendRequest } from "./store.ts";

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
export async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "im_store_sqlite_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A send of `cmid` by u_1 to group g_1 (members u_1, u_2), epoch 1. */
export function request(cmid: string): AppendRequest {
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
