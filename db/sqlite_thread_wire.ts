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

/** Opens the database in the worker (first message). */
export interface OpenRequest {
  type: "open";
  path: string;
  options: SqliteStoreOptions;
}

/** One call of a Store method. */
export interface CallRequest {
  type: "call";
  id: number;
  method: string;
  args: unknown[];
}

/** The worker's answer to a call (or to `open`, with id 0). */
export type Reply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: WireError };

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
