/**
 * Typed errors with a stable `code` that clients see.
 *
 * Every error that can reach a client is an {@link ImError}. Its `code` is part of the public
 * protocol (see docs/protocol.md) and never changes meaning; `message` is for humans.
 *
 * @module
 */

/** Stable error codes of the public protocol. */
export type ErrorCode =
  | "bad_request"
  | "bad_frame"
  | "unauthenticated"
  | "invalid_token"
  | "invalid_credentials"
  | "username_taken"
  | "not_member"
  | "not_found"
  | "forbidden"
  // Social graph (friends, blocks, stranger policy): see docs/protocol.md.
  | "blocked"
  | "not_friend"
  | "already_friends"
  | "limit_exceeded"
  | "muted"
  | "group_full"
  // Media uploads: over the size limit; a type (sniffed from the bytes) not allowed.
  | "too_large"
  | "unsupported_type"
  | "rate_limited"
  | "overloaded"
  | "timeout"
  | "unavailable"
  | "moved"
  | "fenced"
  | "internal";

/** An error with a stable, client-visible `code`. */
export class ImError extends Error {
  /** The stable protocol code. */
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = "ImError";
  }
}

/** A request was malformed (missing or ill-typed field). */
export class BadRequestError extends ImError {
  constructor(message: string) {
    super("bad_request", message);
    this.name = "BadRequestError";
  }
}

/** The target does not exist. */
export class NotFoundError extends ImError {
  constructor(message: string) {
    super("not_found", message);
    this.name = "NotFoundError";
  }
}

/** The caller is not a participant of the conversation. */
export class NotMemberError extends ImError {
  constructor(message = "Not a member of this conversation") {
    super("not_member", message);
    this.name = "NotMemberError";
  }
}

/** An actor's mailbox is full; the message was not enqueued. */
export class MailboxFullError extends ImError {
  constructor(actorId: string) {
    super("overloaded", `Mailbox of "${actorId}" is full`);
    this.name = "MailboxFullError";
  }
}

/** The deadline of an `ask` passed before the answer came; the message is not run late. */
export class DeadlineExceededError extends ImError {
  constructor(message = "Deadline exceeded") {
    super("timeout", message);
    this.name = "DeadlineExceededError";
  }
}

/** A dependency (store, placement, transport) cannot be reached; the client may retry. */
export class UnavailableError extends ImError {
  constructor(message: string, options?: ErrorOptions) {
    super("unavailable", message, options);
    this.name = "UnavailableError";
  }
}

/**
 * A write carried an epoch older than the one the store holds for that actor: another
 * activation has taken over. The writer must stop the actor.
 */
export class FencedError extends ImError {
  /** The epoch the write carried. */
  readonly epoch: number;
  /** The epoch the store holds. */
  readonly storedEpoch: number;
  constructor(actorId: string, epoch: number, storedEpoch: number) {
    super(
      "fenced",
      `Write of "${actorId}" with epoch ${epoch} rejected: store holds epoch ${storedEpoch}`,
    );
    this.name = "FencedError";
    this.epoch = epoch;
    this.storedEpoch = storedEpoch;
  }
}

/** The actor is not (or no longer) hosted on the node that received the call. */
export class MovedError extends ImError {
  constructor(actorId: string) {
    super("moved", `Actor "${actorId}" is not hosted here`);
    this.name = "MovedError";
  }
}

/** Turns any thrown value into an ImError, keeping ImErrors as they are. */
export function toImError(err: unknown): ImError {
  if (err instanceof ImError) return err;
  return new ImError("internal", "Internal error", { cause: err });
}

/** Rebuilds an ImError from its wire form `{code, message}` (used by transports). */
export function errorFromWire(wire: { code: string; message: string }): ImError {
  return new ImError(wire.code as ErrorCode, wire.message);
}
