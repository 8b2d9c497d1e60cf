/**
 * The WebSocket op table: which handler answers which `op`.
 *
 * The session owns the connection rules (auth first, ids, rate limits, framing); everything a
 * request does is an {@link OpHandler} registered here. Feature modules add ops by registering
 * handlers (`gateway/ops_*.ts`), so no feature edits the session.
 *
 * A handler receives the authenticated {@link OpContext} and the decoded frame; it returns the
 * `ok` fields (or a promise of them), or throws an ImError whose code the client sees. It must
 * authorise against server-side state (actors), never trust ids in the frame for identity: the
 * caller is `ctx.userId`.
 *
 * @module
 */
import type { Frame } from "./ops.ts";

/** Settings a handler may read. */
export interface OpSettings {
  groupMaxMembers: number;
  requestTimeoutMs: number;
}

/** What a handler may do on behalf of its authenticated connection. */
export interface OpContext {
  /** The authenticated user (set by the server from the token). */
  readonly userId: string;
  /** The device this connection acks for. */
  readonly device: string;
  /** This connection's id (per node). */
  readonly connId: string;
  /** Asks an actor anywhere in the cluster, with the request deadline. */
  ask(to: string, type: string, body: unknown): Promise<unknown>;
  /** Tells an actor (fire-and-forget). */
  tell(to: string, type: string, body: unknown): void;
  /** Pushes a frame to this connection (e.g. `msg` frames before a `sync`'s `ok`). */
  push(frame: Record<string, unknown>): void;
  /** A new random id with a prefix. */
  newId(prefix: string): string;
  readonly settings: OpSettings;
}

/** Answers one op; returns the `ok` fields. */
export type OpHandler = (ctx: OpContext, frame: Frame) => unknown;

/**
 * Which rate budget an op draws from (gateway/rate_limit.ts): `message` for ops that store or
 * relay a message, `presence` for presence/typing updates, `request` for everything else.
 */
export type OpBudget = "request" | "message" | "presence";

/** The op table of a node. */
export class OpRegistry {
  readonly #handlers = new Map<string, { handler: OpHandler; budget: OpBudget }>();

  /** Registers `op`; throws TypeError when it is already taken (ops are a public contract). */
  register(op: string, handler: OpHandler, options: { budget?: OpBudget } = {}): this {
    if (this.#handlers.has(op)) throw new TypeError(`Op "${op}" is already registered`);
    this.#handlers.set(op, { handler, budget: options.budget ?? "request" });
    return this;
  }

  /** The handler of `op`, if any. */
  get(op: string): { handler: OpHandler; budget: OpBudget } | undefined {
    return this.#handlers.get(op);
  }

  /** Whether `op` is registered. */
  has(op: string): boolean {
    return this.#handlers.has(op);
  }

  /** Registered op names. */
  ops(): string[] {
    return [...this.#handlers.keys()];
  }
}
