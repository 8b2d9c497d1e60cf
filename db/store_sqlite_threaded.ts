/**
 * The embedded SQLite store run on its own thread: the same {@link Store} as
 * {@link openSqliteStore} (same file, schema, durability and errors), with every call sent to a
 * worker that owns the connection.
 *
 * Why: `node:sqlite` is synchronous, and with synchronous=FULL each commit waits for an fsync.
 * On the node's main thread that wait stalls every socket; on a worker it stalls nothing, and the
 * group commit gathers the next batch while the disk syncs.
 *
 * Guarantees:
 * - Calls run in the order they are made, one at a time, each as atomic as in
 *   {@link openSqliteStore} (the worker runs them to completion before the next).
 * - A resolved write has been committed and fsynced.
 * - Errors keep their class and fields (`FencedError`, `UnavailableError`, ImError codes).
 * - The WAL is checkpointed by a second thread with its own connection (a `PASSIVE` checkpoint
 *   every 250 ms, sqlite_checkpoint_worker.ts), so no commit waits for a checkpoint.
 * - If the worker dies, every call in flight rejects with `UnavailableError` (a write in flight
 *   may or may not have committed, as with a lost database connection) and the next call starts
 *   a new worker on the same file. After `close()`, calls reject with `UnavailableError`.
 *
 * @module
 */
import { UnavailableError } from "../actors/errors.ts";
import type { AppendRequest, Store } from "./store.ts";
import type { SqliteStoreOptions } from "./store_sqlite.ts";
import { createLogger, type Logger } from "../observability/log.ts";
import {
  type CallRequest,
  compactArgs,
  decodeAppendResults,
  encodeAppendBatch,
  errorFromWire,
  type OpenRequest,
  type Reply,
} from "./sqlite_thread_wire.ts";

interface Pending {
  resolve(value: unknown): void;
  reject(err: unknown): void;
  /** An append batch sent as text: its answer is rebuilt from these requests. */
  batch?: AppendRequest[];
}

/** Options of {@link openThreadedSqliteStore}: the store's, and where its warnings go. */
export interface ThreadedSqliteStoreOptions extends SqliteStoreOptions {
  /** Where a failed checkpoint or a stopped checkpointer is reported (default: a stderr logger). */
  log?: Pick<Logger, "warn">;
}

/**
 * Opens the SQLite store at `path` on a worker thread (see the module doc). Like
 * {@link openSqliteStore}, call `migrate()` before use; a file that cannot be opened makes every
 * call reject with the reason.
 */
export function openThreadedSqliteStore(
  path: string,
  options: ThreadedSqliteStoreOptions = {},
  /** The worker module (tests substitute one that can fail); default sqlite_thread_worker.ts. */
  workerUrl: URL = new URL("./sqlite_thread_worker.ts", import.meta.url),
): Store {
  const { log, ...storeOptions } = options;
  const client = new ThreadClient(
    path,
    {
      ...storeOptions,
      // The checkpointer thread keeps the WAL short; this is only the backstop (~80 MiB).
      walAutocheckpointPages: options.walAutocheckpointPages ?? 20_000,
    },
    workerUrl,
    log ?? createLogger({ level: "warn" }),
  );
  return new Proxy({} as Store, {
    get(_target, prop) {
      if (prop === "kind") return "sqlite";
      if (prop === "serialCalls") return true;
      // Its calls never block the caller's thread (see the module doc).
      if (prop === "blocksThread") return false;
      if (typeof prop !== "string" || prop === "then") return undefined;
      if (prop === "close") return () => client.close();
      return (...args: unknown[]) => client.call(prop, args);
    },
  });
}

/** How often the checkpointer copies the WAL into the database file, ms. */
const CHECKPOINT_EVERY_MS = 250;

class ThreadClient {
  #worker: Worker | null = null;
  #checkpointer: Worker | null = null;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  #closed = false;
  #closing: Promise<void> | null = null;

  constructor(
    readonly path: string,
    readonly options: SqliteStoreOptions,
    readonly workerUrl: URL,
    readonly log: Pick<Logger, "warn">,
  ) {}

  call(method: string, args: unknown[]): Promise<unknown> {
    if (this.#closed) return Promise.reject(new UnavailableError("The SQLite store is closed"));
    const worker = this.#worker ?? this.#start();
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      try {
        if (method === "append") {
          const batch = args[0] as AppendRequest[];
          this.#pending.set(id, { resolve, reject, batch });
          const text = encodeAppendBatch(batch);
          worker.postMessage({ type: "call", id, method, args: [], text } satisfies CallRequest);
        } else {
          this.#pending.set(id, { resolve, reject });
          const call = { type: "call", id, method, args: compactArgs(args) } satisfies CallRequest;
          worker.postMessage(call);
        }
      } catch (err) {
        // An argument that cannot be cloned (a caller bug): fail this call only.
        this.#pending.delete(id);
        reject(err);
      }
    });
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#closed) return;
      try {
        if (this.#worker) await this.call("close", []);
      } finally {
        this.#closed = true;
        this.#stop(new UnavailableError("The SQLite store is closed"));
        this.#checkpointer?.postMessage("stop");
        this.#checkpointer = null;
      }
    })();
    return this.#closing;
  }

  #start(): Worker {
    const worker = new Worker(this.workerUrl, {
      type: "module",
    });
    worker.onmessage = (ev: MessageEvent<Reply>) => {
      const reply = ev.data;
      const pending = this.#pending.get(reply.id);
      if (!pending) return;
      this.#pending.delete(reply.id);
      if (!reply.ok) pending.reject(errorFromWire(reply.error));
      else if (reply.text !== undefined && pending.batch) {
        pending.resolve(decodeAppendResults(reply.text, pending.batch));
      } else pending.resolve(reply.value);
    };
    worker.onerror = (ev) => {
      ev.preventDefault();
      if (this.#worker === worker) {
        this.#stop(new UnavailableError(`SQLite worker failed: ${ev.message}`));
      }
    };
    worker.postMessage(
      { type: "open", path: this.path, options: this.options } satisfies OpenRequest,
    );
    this.#worker = worker;
    if (!this.#checkpointer && this.path !== ":memory:" && !this.path.startsWith("file:")) {
      this.#checkpointer = this.#startCheckpointer();
    }
    return worker;
  }

  #startCheckpointer(): Worker {
    const checkpointer = new Worker(
      new URL("./sqlite_checkpoint_worker.ts", import.meta.url),
      { type: "module" },
    );
    checkpointer.onmessage = (ev: MessageEvent<{ error: string }>) => {
      // Not fatal (the writer's automatic checkpoint is the backstop), but worth seeing.
      this.log.warn("SQLite checkpoint failed", { error: ev.data.error });
    };
    checkpointer.onerror = (ev) => {
      ev.preventDefault();
      this.log.warn("SQLite checkpointer stopped", { error: ev.message });
      if (this.#checkpointer === checkpointer) this.#checkpointer = null;
    };
    checkpointer.postMessage({ path: this.path, everyMs: CHECKPOINT_EVERY_MS });
    return checkpointer;
  }

  /** Ends the worker and fails what is in flight. */
  #stop(reason: Error): void {
    const worker = this.#worker;
    this.#worker = null;
    worker?.terminate();
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(reason);
  }
}
