/**
 * The public behaviour API: how an actor kind is defined.
 *
 * The built-in IM actors (`actors/im/`) are defined with exactly this API; so are extensions
 * (see docs/extending.md and examples/).
 *
 * @module
 */

/** Actor identity `kind/key`, e.g. `user/u_123`. */
export type ActorId = string;

/** Splits `kind/key`; the key may itself contain `/`. Throws TypeError when malformed. */
export function parseActorId(id: ActorId): { kind: string; key: string } {
  const i = id.indexOf("/");
  if (i <= 0 || i === id.length - 1) throw new TypeError(`Cannot parse actor id "${id}"`);
  return { kind: id.slice(0, i), key: id.slice(i + 1) };
}

/** Builds `kind/key`. */
export function actorId(kind: string, key: string): ActorId {
  return `${kind}/${key}`;
}

/** Metadata of the message a handler is running. */
export interface MessageMeta {
  /** The message type (handler name). */
  type: string;
  /** Sender identity when given (per-sender order is kept). */
  sender?: string;
  /** Absolute deadline (ms since the epoch) when the message came by `ask`. */
  deadline?: number;
}

/** A reply that is produced after the turn has ended (see {@link ActorContext.defer}). */
export interface Deferred<T> {
  readonly deferred: Promise<T>;
}

/** What a handler sees: the actor's state and what it may do. */
export interface ActorContext<S, Svc = unknown> {
  /** `kind/key`. */
  readonly id: ActorId;
  readonly kind: string;
  readonly key: string;
  /** This activation's fencing epoch; every durable write carries it. */
  readonly epoch: number;
  /** The actor's state; handlers mutate or replace it. */
  state: S;
  /** Services the node injects (store, clock, deliveries, ...). */
  readonly services: Svc;
  /** Fire-and-forget to another actor (anywhere in the cluster). */
  tell(to: ActorId, type: string, body: unknown): void;
  /** Request/reply to another actor; rejects with DeadlineExceededError after `timeoutMs`. */
  ask<T = unknown>(to: ActorId, type: string, body: unknown, timeoutMs?: number): Promise<T>;
  /**
   * Schedules `type`/`body` to this actor after `delayMs` (repeating when `repeat`); it runs as
   * an ordinary turn. A timer with the same name replaces the previous one.
   */
  setTimer(name: string, delayMs: number, type: string, body?: unknown, repeat?: boolean): void;
  /** Cancels a timer by name (no-op when absent). */
  cancelTimer(name: string): void;
  /** Writes a snapshot of the state now (fenced by `epoch`). */
  snapshot(): Promise<void>;
  /**
   * Ends the turn now and answers later with `work`'s outcome. The mailbox moves on to the next
   * message while `work` runs (pipelining, e.g. awaiting a group commit).
   */
  defer<T>(work: Promise<T>): Deferred<T>;
  /** Passivates this activation once the current turn ends. */
  stop(): void;
  /** Runs the hooks registered for `event` on this kind (e.g. `stored`). Never throws. */
  emit(event: string, payload: unknown): void;
}

/** A message handler. Its (awaited) return value is the `ask` reply. */
export type Handler<S, Svc = unknown> = (
  ctx: ActorContext<S, Svc>,
  // deno-lint-ignore no-explicit-any
  body: any,
  meta: MessageMeta,
) => unknown;

/** When the runtime writes snapshots by itself. */
export type SnapshotPolicy =
  /** Only when a handler calls `ctx.snapshot()`, and on passivation. */
  | "manual"
  /** After every turn that did not throw. */
  | "every-turn"
  /** After every N turns, and on passivation. */
  | { everyTurns: number };

/** Definition of an actor kind. */
export interface Behavior<S, Svc = unknown> {
  /** The kind name (`user`, `group`, ...); no `/`. */
  kind: string;
  /** Fresh state for an actor that has no snapshot. */
  initialState(key: string): S;
  /** Handlers by message type. An unknown type is answered with `bad_request`. */
  handlers: Record<string, Handler<S, Svc>>;
  /** Snapshot policy (default `manual`). */
  snapshot?: SnapshotPolicy;
  /** Encodes state for a snapshot (default: the state itself, MessagePack-encoded). */
  encode?(state: S): unknown;
  /** Decodes a snapshot (default: identity). */
  decode?(raw: unknown, key: string): S;
  /** Runs once after the state is restored, as the first turn (e.g. to load from the store). */
  onActivate?(ctx: ActorContext<S, Svc>): unknown;
  /** Runs as the last turn before passivation. */
  onPassivate?(ctx: ActorContext<S, Svc>): unknown;
  /** Idle time before passivation, ms (default: the host's). */
  passivateAfterMs?: number;
  /** Mailbox capacity (default: the host's). */
  mailboxCapacity?: number;
}

/** Identity helper that keeps type inference for a behaviour definition. */
export function defineBehavior<S, Svc = unknown>(behavior: Behavior<S, Svc>): Behavior<S, Svc> {
  return behavior;
}

/**
 * A hook that runs before a message is accepted by an actor of some kind. It may throw an
 * ImError to refuse the message (the caller gets that error) or return a replacement body.
 */
export type BeforeAcceptHook = (
  input: { actorId: ActorId; type: string; body: unknown },
) => unknown | Promise<unknown>;

/** A hook that runs after an event a behaviour emits (e.g. `stored` after a message commit). */
export type AfterEventHook = (
  input: { actorId: ActorId; event: string; payload: unknown },
) => void | Promise<void>;
