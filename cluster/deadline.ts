/**
 * Deadline helpers shared by the transport adapters (no driver imports).
 *
 * @module
 */

import { DeadlineExceededError, errorFromWire, ImError, toImError } from "../actors/errors.ts";

/** Deadline used by transports when an envelope carries none, so nothing waits forever. */
export const FALLBACK_TIMEOUT_MS = 30_000;

/**
 * Resolves or rejects like `work`, or rejects with DeadlineExceededError once `deadline`
 * (milliseconds since the epoch) passes first. The timer is always cleared, so no timer outlives
 * the call.
 */
export function withDeadline<T>(work: Promise<T>, deadline: number): Promise<T> {
  const remaining = deadline - Date.now();
  if (remaining <= 0) {
    // The work may still settle later; observe it so a late rejection is not unhandled.
    work.catch(() => {});
    return Promise.reject(new DeadlineExceededError());
  }
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new DeadlineExceededError()), remaining);
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/** The wire form of an error: only the stable code and the human message cross nodes. */
export interface WireError {
  code: string;
  message: string;
}

/** Turns any thrown value into its wire form (non-ImErrors become `internal`). */
export function errorToWire(err: unknown): WireError {
  const e = toImError(err);
  return { code: e.code, message: e.message };
}

/** Rebuilds an ImError as a remote caller sees it. */
export function errorFromRemote(err: unknown): ImError {
  const w = errorToWire(err);
  return errorFromWire(w);
}

/** Invokes a handler so that a synchronous throw becomes a rejected promise. */
export function invoke<A, R>(fn: (arg: A) => Promise<R>, arg: A): Promise<R> {
  try {
    return Promise.resolve(fn(arg));
  } catch (err) {
    return Promise.reject(err);
  }
}

/** Rejection handler that keeps ImErrors as they are and turns anything else into `internal`. */
export function rethrowAsImError(err: unknown): never {
  throw toImError(err);
}
