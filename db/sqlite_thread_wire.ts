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
import { Packr, Unpackr } from "msgpackr";

/** Opens the database in the worker (first message). */
export interface OpenRequest {
  type: "open";
  path: string;
  options: SqliteStoreOptions;
}

/** One call of a Store method; an `append` batch may travel packed instead ({@link shouldPack}). */
export interface CallRequest {
  type: "call";
  id: number;
  method: string;
  args: unknown[];
  packed?: Uint8Array<ArrayBuffer>;
}

/** The worker's answer to a call (or to `open`, with id 0); packed when the call was. */
export type Reply =
  | { id: number; ok: true; value: unknown; packed?: Uint8Array<ArrayBuffer> }
  | { id: number; ok: false; error: WireError };

const packr = new Packr({ useRecords: true });
const unpackr = new Unpackr({ useRecords: true, mapsAsObjects: true, int64AsType: "number" });

/** Most recipients per request, on average, of a batch that travels packed. */
const PACK_MAX_RECIPIENTS_PER_REQUEST = 16;

/**
 * Whether an `append` batch travels packed ({@link packValue}) instead of structured-cloned.
 * Packed: batches of many small requests (direct messages), whose requests and results are
 * records of one shape, cheaper to pack and much cheaper to unpack than to clone (the node's
 * main thread unpacks the results). Cloned: requests with large recipient lists (group
 * messages), whose results carry one `seqs` map per request with a key per member; MessagePack
 * records of a thousand keys cost more than a clone.
 */
export function shouldPack(batch: readonly { recipients: readonly string[] }[]): boolean {
  let recipients = 0;
  for (const r of batch) recipients += r.recipients.length;
  return recipients <= PACK_MAX_RECIPIENTS_PER_REQUEST * batch.length;
}

/**
 * A value as MessagePack in a buffer of its own, to be transferred, not copied (see
 * {@link shouldPack}). Round-trips what `append` exchanges: records, arrays, strings, numbers
 * (integers up to 2^53), booleans and null. (A key `__proto__` would come back renamed: message
 * bodies cannot hold one, the frame decoder refuses it.)
 */
export function packValue(value: unknown): Uint8Array<ArrayBuffer> {
  return new Uint8Array(packr.pack(value));
}

/** The value {@link packValue} packed. */
export function unpackValue(bytes: Uint8Array): unknown {
  return unpackr.unpack(bytes);
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
