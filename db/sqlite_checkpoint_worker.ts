/**
 * The checkpointer of {@link openThreadedSqliteStore}: a thread of its own, with its own
 * connection, that copies the WAL back into the database file every few hundred milliseconds.
 *
 * Why a thread: a checkpoint copies every page written since the last one and fsyncs the file;
 * run by the writing connection (SQLite's automatic checkpoint), it stalls the commit that
 * crossed the threshold, and every send waiting for it. A `PASSIVE` checkpoint from another
 * connection runs beside the writer instead (it takes no write lock), and the writer starts the
 * WAL over once a checkpoint has covered it. The writer keeps a high automatic threshold as a
 * backstop should this thread fall behind.
 *
 * Messages in: `{path, everyMs}` (start), `"stop"`. Messages out: `{error}` when a checkpoint
 * fails for a reason other than a busy database (the parent logs it).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { DatabaseSync } from "node:sqlite";

let db: DatabaseSync | null = null;
let timer: ReturnType<typeof setInterval> | undefined;

function tick(path: string): void {
  try {
    if (!db) {
      // The writer creates the file; never create an empty one here first.
      try {
        Deno.statSync(path);
      } catch {
        return;
      }
      db = new DatabaseSync(path, { timeout: 0 });
    }
    db.exec("PRAGMA wal_checkpoint(PASSIVE)");
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    // Busy or locked: another checkpoint or a schema change holds it; the next tick retries.
    if (!/busy|locked/i.test(message)) self.postMessage({ error: message });
  }
}

self.onmessage = (ev: MessageEvent<{ path: string; everyMs: number } | "stop">) => {
  if (ev.data === "stop") {
    clearInterval(timer);
    db?.close();
    db = null;
    self.close();
    return;
  }
  const { path, everyMs } = ev.data;
  timer = setInterval(() => tick(path), everyMs);
};
