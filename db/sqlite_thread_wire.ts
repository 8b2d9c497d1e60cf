/**
 * The messages between {@link openThreadedSqliteStore} and its worker (sqlite_thread_worker.ts),
 * and how errors cross the thread boundary with their class and fields intact.
 *
 * Structured clone keeps plain data (records, arrays, `Uint8Array`, `null`) but turns every
 * thrown error into a plain `Error`: the port's errors are sent as {@link WireError} and rebuilt
 * on the other side, so callers still see `FencedError`, `UnavailableError` and ImError codes.
 *
 * @module
 */
import { FencedError, ImError, UnavailableError } from "../actors/errors.ts";
import type { ErrorCode } from "../actors/errors.ts";
import type { SqliteStoreOptions } from "./store_sqlite.ts";
import type { AppendRequest, AppendResult, StoredMessage } from "./store.ts";

/** Opens the database in the worker (first message). */
export interface OpenRequest {
  type: "open";
  path: string;
  options: SqliteStoreOptions;
}

/** One call of a Store method; an `append` batch travels as JSON text, answered the same way. */
export interface CallRequest {
  type: "call";
  id: number;
  method: string;
  args: unknown[];
  /** {@link encodeAppendBatch}'s text of the batch (then `args` is empty). */
  text?: string;
}

/** The worker's answer to a call (or to `open`, with id 0); as text when the call was. */
export type Reply =
  | { id: number; ok: true; value: unknown; text?: string }
  | { id: number; ok: false; error: WireError };

/**
 * The arguments of a structured-clone call as they should be posted: a `Uint8Array` that views
 * part of a larger buffer is replaced by a copy of just its bytes; everything else is passed on.
 *
 * Why: a structured clone of a typed array copies its whole `ArrayBuffer`, not only the view.
 * msgpackr packs into a shared buffer and returns a view of it, so an actor's snapshot of a few
 * bytes would cross the thread with every byte of that buffer (1.2 MiB per snapshot after a
 * 10,000-member group was packed: the node spent seconds in the clone when 10,000 user actors
 * passivated at shutdown).
 */
export function compactArgs(args: readonly unknown[]): unknown[] {
  return args.map((a) =>
    // `new Uint8Array(view)` copies (a Node `Buffer`'s `slice` would return another view).
    a instanceof Uint8Array && a.byteLength !== a.buffer.byteLength ? new Uint8Array(a) : a
  );
}

/*
 * Append batches travel as JSON text (encodeAppendBatch, encodeAppendResults) instead of a
 * structured clone: V8's JSON.stringify and JSON.parse beat both a structured clone and
 * MessagePack for them, a string crosses the thread boundary as one copy, and the answer leaves
 * out what the caller already has (of a stored message only its cseq and seqs travel back, the
 * seqs as arrays: see seqRecord).
 */

/**
 * An append batch as JSON text. Everything in a request is JSON data (ids, integers below 2^53,
 * a body the frame decoder accepted, which the store keeps as JSON text itself).
 */
export function encodeAppendBatch(requests: readonly AppendRequest[]): string {
  return JSON.stringify(requests);
}

/** The batch {@link encodeAppendBatch} wrote. */
export function decodeAppendBatch(text: string): AppendRequest[] {
  return JSON.parse(text);
}

/**
 * A stored result without its message (the caller rebuilds it from the request), its seqs as
 * two arrays: users and their seqs, in the record's order.
 */
interface StoredOnWire {
  status: "stored";
  cseq: number;
  users: string[];
  seqs: number[];
}

/**
 * The results of an append as JSON text: a stored message travels as its cseq and seqs only;
 * duplicates (the earlier message, which the caller does not have) and fenced results whole.
 */
export function encodeAppendResults(results: readonly AppendResult[]): string {
  const wire: (StoredOnWire | AppendResult)[] = new Array(results.length);
  for (let i = 0; i < results.length; i++) {
    const r = results[i];
    wire[i] = r.status === "stored"
      ? {
        status: "stored",
        cseq: r.message.cseq,
        users: Object.keys(r.seqs),
        seqs: Object.values(r.seqs),
      }
      : r;
  }
  return JSON.stringify(wire);
}

/**
 * The results {@link encodeAppendResults} wrote, for `requests` (the batch they answer): each
 * stored message is rebuilt from its request as the store builds it (its `to` a fresh record, its
 * body the request's body, equal to the store's copy: the store keeps the body as JSON text).
 */
export function decodeAppendResults(
  text: string,
  requests: readonly AppendRequest[],
): AppendResult[] {
  const wire = JSON.parse(text) as (StoredOnWire | AppendResult)[];
  const results: AppendResult[] = new Array(wire.length);
  for (let i = 0; i < wire.length; i++) {
    if (wire[i].status !== "stored") {
      results[i] = wire[i] as AppendResult;
      continue;
    }
    const w = wire[i] as StoredOnWire;
    const req = requests[i];
    const message: StoredMessage = {
      mid: req.mid,
      conv: req.conv,
      cseq: w.cseq,
      from: req.from,
      to: "user" in req.to ? { user: req.to.user } : { group: req.to.group },
      ts: req.ts,
      body: req.body,
      cmid: req.cmid,
    };
    results[i] = { status: "stored", message, seqs: seqRecord(w.users, w.seqs) };
  }
  return results;
}

/** An error as it crosses the thread boundary. */
export interface WireError {
  name: string;
  message: string;
  code?: string;
  epoch?: number;
  storedEpoch?: number;
}

/** The wire form of anything thrown in the worker. */
export function errorToWire(err: unknown): WireError {
  if (err instanceof FencedError) {
    return {
      name: err.name,
      message: err.message,
      code: err.code,
      epoch: err.epoch,
      storedEpoch: err.storedEpoch,
    };
  }
  if (err instanceof ImError) return { name: err.name, message: err.message, code: err.code };
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: "Error", message: String(err) };
}

/** Rebuilds the error the worker threw: the port's classes keep their class and fields. */
export function errorFromWire(wire: WireError): Error {
  if (wire.name === "FencedError") {
    const err = new FencedError("", wire.epoch ?? 0, wire.storedEpoch ?? 0);
    err.message = wire.message;
    return err;
  }
  if (wire.name === "UnavailableError") return new UnavailableError(wire.message);
  if (wire.code) {
    const err = new ImError(wire.code as ErrorCode, wire.message);
    err.name = wire.name;
    return err;
  }
  const err = new Error(wire.message);
  err.name = wire.name;
  return err;
}

/**
 * The seqs record of one result, built key by key. Not by a structured clone or JSON.parse of a
 * record: those build an object of a thousand member ids through V8's map transitions, and in a
 * node holding many users the transition trees of such records grew until deserializing a
 * 1,000-member group's results took most of the main thread (docs/benchmarks.md, seventh round);
 * keyed stores turn a large record into a dictionary instead.
 */
function seqRecord(users: readonly string[], seqs: readonly number[]): Record<string, number> {
  const record: Record<string, number> = {};
  for (let i = 0; i < users.length; i++) record[users[i]] = seqs[i];
  return record;
}
