/**
 * One client WebSocket connection: framing, authentication, op dispatch and output coalescing.
 *
 * Follows PROTOCOL-CORE.md exactly: `auth` first (within the auth deadline), then requests
 * answered by exactly one `ok`/`error` with `re`; undecodable messages → `bad_frame` + 1007;
 * oversized → 1009 with nothing processed; a bad token → `invalid_token` + 4401; ill-typed fields
 * → `bad_request` with the connection left open; floods → `rate_limited`, then 1008.
 *
 * Frames are dispatched in the order they arrive (requests are pipelined, so a slow request does
 * not hold later ones back, and the mailbox of each actor keeps their order). Frames that arrive
 * while `auth` is in flight wait for it. Output frames queued in one event-loop turn leave as one
 * WebSocket message (several frames back to back), which is what keeps the per-delivery write
 * cost down.
 *
 * @module
 */
import { atEndOfTurn } from "./turn_flush.ts";
import { type ImError, toImError } from "../actors/errors.ts";
import { userActor } from "../actors/im/conversation_ids.ts";
import type { Logger } from "../observability/log.ts";
import type { Connection, ConnectionRegistry } from "./connections.ts";
import {
  decodeMessage,
  encodeFrames,
  messageByteLength,
  type SeqFrame,
  type Subprotocol,
} from "./frame_codec.ts";
import { type Frame, parseAck, parseAuth, positiveInt } from "./ops.ts";
import type { OpContext, OpRegistry } from "./op_registry.ts";
import type { GatewayMetrics } from "./metrics.ts";
import type { ConnectionLimiter, RateBudget, UserRateLimiter } from "./rate_limit.ts";

/** Close codes of PROTOCOL-CORE.md. */
export const CloseCode = {
  authFailed: 4401,
  undecodable: 1007,
  tooLarge: 1009,
  policy: 1008,
  restarting: 1012,
} as const;

/** How a session reaches actors (the cluster router). */
export interface ActorCaller {
  ask(
    to: string,
    type: string,
    body: unknown,
    opts?: { deadline?: number; sender?: string },
  ): Promise<unknown>;
  tell(to: string, type: string, body: unknown, opts?: { sender?: string }): void;
}

/** Verifies access tokens. */
export interface AccessVerifier {
  verifyAccess(token: string): Promise<{ userId: string; device: string }>;
}

/** Session settings (from the node configuration). */
export interface SessionSettings {
  maxFrameBytes: number;
  authTimeoutMs: number;
  requestTimeoutMs: number;
  rateLimitPerSec: number;
  maxSocketBufferBytes: number;
  groupMaxMembers: number;
}

/** What every session of a node shares. */
export interface SessionDeps {
  router: ActorCaller;
  /** The op table (core ops and features). */
  ops: OpRegistry;
  tokens: AccessVerifier;
  registry: ConnectionRegistry;
  settings: SessionSettings;
  newId(prefix: string): string;
  logger: Logger;
  metrics: GatewayMetrics;
  /**
   * This node's id: a connection is known to its user's actor as `<nodeId>/<connId>` (presence
   * drops the connections of nodes that left the cluster). Default `local`.
   */
  nodeId?: string;
  /** Per-user and per-connection rate limits (rate_limit.ts), shared by the node's sessions. */
  limits: UserRateLimiter;
  /**
   * The cluster's connection directory (cluster/connection_directory.ts): told when a user's
   * connection opens here (awaited before the `auth` answer's `seq` is read, so deliveries find
   * this node) and when it closes.
   */
  directory?: {
    connected(userId: string): Promise<void>;
    disconnected(userId: string): void;
  };
}

/** How long a socket's backlog may stay above MAX_SOCKET_BUFFER_BYTES before it is shed. */
export const SLOW_CONSUMER_GRACE_MS = 2_000;

/** Most frames held while `auth` is in flight; more is a flood (close 1008). */
const MAX_WAITING_FRAMES = 256;

let nextConnId = 0;

/**
 * A client connection. Created by the gateway on upgrade; lives until the socket closes.
 *
 * Kept lean, since an idle authenticated connection costs exactly this object and what it holds:
 * the session itself is the socket's event listener (no closures), the frame queues exist only
 * while they hold frames, the auth timer is dropped once authenticated, and the rate limiter
 * makes its buckets on the first frame.
 */
export class Session implements Connection {
  readonly id: string;
  #userId = "";
  #device = "";
  #state: "new" | "authenticating" | "open" | "closed" = "new";
  /** Frames that arrived while auth was in flight, in order (null when none). */
  #waiting: Frame[] | null = null;
  /** Frames queued for the next flush (null when none). */
  #out: (Record<string, unknown> | SeqFrame)[] | null = null;
  #flushScheduled = false;
  #authTimer: ReturnType<typeof setTimeout> | undefined;
  #limiter: ConnectionLimiter | null = null;
  /** Called once when the connection authenticates (e.g. to free an unauthenticated slot). */
  onOpen: (() => void) | undefined;
  readonly connectedAt = Date.now();

  constructor(
    readonly socket: WebSocket,
    readonly subprotocol: Subprotocol,
    readonly deps: SessionDeps,
    readonly remoteAddr: string,
  ) {
    this.id = `c${++nextConnId}`;
    socket.binaryType = "arraybuffer";
    // The session is the listener object (handleEvent): no closure per connection. Errors need
    // no listener: the close event follows.
    socket.addEventListener("message", this);
    socket.addEventListener("close", this);
    this.#authTimer = setTimeout(() => {
      if (this.#state === "new" || this.#state === "authenticating") {
        this.close(CloseCode.authFailed, "auth timeout");
      }
    }, deps.settings.authTimeoutMs);
    deps.metrics.connectionsOpened.inc();
  }

  /** The socket's events (this object is the listener); not for other callers. */
  handleEvent(ev: Event): void {
    if (ev.type === "message") this.#onMessage((ev as MessageEvent).data);
    else if (ev.type === "close") this.#onClose();
  }

  #clearAuthTimer(): void {
    if (this.#authTimer === undefined) return;
    clearTimeout(this.#authTimer);
    // Dropped, not merely cleared: a cleared timer object would stay for the connection's life.
    this.#authTimer = undefined;
  }

  /** The authenticated user ("" before auth). */
  get userId(): string {
    return this.#userId;
  }

  /** The device this connection acks for. */
  get device(): string {
    return this.#device;
  }

  /**
   * Queues a frame; frames queued in one event-loop turn leave as one WebSocket message
   * (turn_flush.ts).
   */
  push(frame: Record<string, unknown>): void {
    this.pushSeq(frame);
  }

  /** Queues a fan-out copy (or any frame); see {@link Connection.pushSeq}. */
  pushSeq(frame: SeqFrame | Record<string, unknown>): void {
    if (this.#state === "closed") return;
    (this.#out ??= []).push(frame);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      atEndOfTurn(this.#flushFn);
    }
  }

  /** Sends what is queued, then closes with `code` (idempotent). */
  close(code: number, reason: string): void {
    if (this.#state === "closed") return;
    this.#flush();
    this.#state = "closed";
    this.#clearAuthTimer();
    try {
      this.socket.close(code, reason);
    } catch {
      // Already closing: the close event does the clean-up.
    }
    // A node that shuts down leaves the cluster: its connections stop counting by themselves.
    if (code === CloseCode.restarting) this.#inPresence = false;
    this.#detach();
  }

  readonly #flushFn = () => this.#flush();

  #flush(): void {
    this.#flushScheduled = false;
    const frames = this.#out;
    this.#out = null;
    if (frames === null || frames.length === 0 || this.socket.readyState !== WebSocket.OPEN) {
      return;
    }
    if (this.#slowConsumer()) {
      // A consumer that does not read must not hold the node's memory: shed it.
      this.deps.logger.warn("closing slow consumer", { conn: this.id, user: this.#userId });
      this.deps.metrics.slowConsumers.inc();
      this.close(CloseCode.policy, "slow consumer");
      return;
    }
    // One counter update per op per flush, not per frame: a fan-out flush holds many `msg`s.
    let op = String(frames[0].op), run = 0;
    for (const f of frames) {
      if (f.op === op) run++;
      else {
        this.deps.metrics.framesOut.inc({ op }, run);
        op = String(f.op);
        run = 1;
      }
    }
    this.deps.metrics.framesOut.inc({ op }, run);
    this.socket.send(encodeFrames(frames, this.subprotocol));
  }

  #overSince = 0;
  /**
   * Whether the bytes of earlier flushes that the peer has not taken yet (measured before this
   * write) show a consumer that does not read: above MAX_SOCKET_BUFFER_BYTES for longer than
   * {@link SLOW_CONSUMER_GRACE_MS}, or above four times it at any moment. A reader that merely
   * got a large burst (a sync page) drains within the grace; memory stays bounded by the hard cap.
   */
  #slowConsumer(): boolean {
    const backlog = this.socket.bufferedAmount;
    const cap = this.deps.settings.maxSocketBufferBytes;
    if (backlog <= cap) {
      this.#overSince = 0;
      return false;
    }
    const now = performance.now();
    if (this.#overSince === 0) this.#overSince = now;
    return backlog > 4 * cap || now - this.#overSince > SLOW_CONSUMER_GRACE_MS;
  }

  #onClose(): void {
    if (this.#state !== "closed") {
      this.#state = "closed";
      this.#clearAuthTimer();
      this.#detach();
    }
  }

  #detached = false;
  #detach(): void {
    if (this.#detached) return;
    this.#detached = true;
    this.#leavePresence();
    this.#leaveDirectory();
    this.#limiter?.release();
    this.deps.registry.remove(this);
    this.deps.metrics.connectionsClosed.inc();
  }

  #onMessage(data: unknown): void {
    if (this.#state === "closed") return;
    const raw = data as string | ArrayBuffer;
    if (messageByteLength(raw) > this.deps.settings.maxFrameBytes) {
      this.close(CloseCode.tooLarge, "message too large");
      return;
    }
    const { frames, error } = decodeMessage(raw, this.subprotocol);
    for (const frame of frames) {
      if (this.#closed()) return;
      if (this.#state === "authenticating") {
        const waiting = this.#waiting ??= [];
        if (waiting.length >= MAX_WAITING_FRAMES) {
          this.close(CloseCode.policy, "flooding");
          return;
        }
        waiting.push(frame);
      } else this.#handle(frame);
    }
    if (error && !this.#closed()) {
      this.push({
        op: "error",
        ...(error.re !== undefined ? { re: error.re } : {}),
        code: "bad_frame",
        message: error.message,
      });
      this.close(CloseCode.undecodable, "undecodable message");
    }
  }

  /** A method, not a field read, so TypeScript does not narrow the state across awaits. */
  #closed(): boolean {
    return this.#state === "closed";
  }

  /** Draws on `budget`; false when refused (answered by the caller, or closed here). */
  #allow(budget: RateBudget, id: number | null): boolean {
    const decision = this.#limiter?.check(budget) ?? "allow";
    if (decision === "allow") return true;
    if (id !== null) this.#error(id, "rate_limited", "Too many requests");
    if (decision === "close") this.close(CloseCode.policy, "flooding");
    return false;
  }

  #handle(frame: Frame): void {
    const op = frame.op;
    this.deps.metrics.framesIn.inc({
      op: op === "auth" || op === "ack" || this.deps.ops.has(op) ? op : "other",
    });
    const rawId = frame.id;
    const id = rawId === undefined ? null : positiveInt(rawId);

    if (this.#state === "new") {
      if (op !== "auth") {
        this.#error(id, "unauthenticated", "The first frame must be auth");
        this.close(CloseCode.authFailed, "unauthenticated");
        return;
      }
      if (id === null) {
        this.#error(null, "bad_request", `"id" must be a positive integer`);
        return;
      }
      this.#auth(frame, id);
      return;
    }

    if (op === "ack") {
      // Acks are never answered unless they carry a valid id.
      const ackId = rawId === undefined ? null : id;
      if (this.#allow("request", ackId)) this.#ack(frame, ackId);
      return;
    }
    if (id === null) {
      this.#error(null, "bad_request", `"id" must be a positive integer`);
      return;
    }
    const entry = op === "auth" ? undefined : this.deps.ops.get(op);
    if (!this.#allow(entry?.budget ?? "request", id)) return;
    if (op === "auth") {
      this.#error(id, "bad_request", "Already authenticated");
      return;
    }
    if (!entry) {
      this.#error(id, "bad_request", `Unknown op "${String(op).slice(0, 32)}"`);
      return;
    }
    this.#request(id, () => entry.handler(this.#context(), frame));
  }

  #ctx: OpContext | null = null;
  /** The handler context of this connection (built once, after auth). */
  #context(): OpContext {
    if (this.#ctx) return this.#ctx;
    this.#ctx = {
      userId: this.#userId,
      device: this.#device,
      connId: this.id,
      ask: (to, type, body) => this.#ask(to, type, body),
      tell: (to, type, body) => this.deps.router.tell(to, type, body, { sender: this.id }),
      push: (frame) => this.push(frame),
      newId: (prefix) => this.deps.newId(prefix),
      settings: this.deps.settings,
    };
    return this.#ctx;
  }

  #ask(to: string, type: string, body: unknown): Promise<unknown> {
    return this.deps.router.ask(to, type, body, {
      deadline: Date.now() + this.deps.settings.requestTimeoutMs,
      sender: this.id,
    });
  }

  #request(id: number, run: () => unknown): void {
    let result: unknown;
    try {
      result = run();
    } catch (err) {
      this.#fail(id, err);
      return;
    }
    Promise.resolve(result).then(
      (value) => this.push({ op: "ok", re: id, ...(value as Record<string, unknown> ?? {}) }),
      (err) => this.#fail(id, err),
    );
  }

  #fail(id: number | null, err: unknown): void {
    const e = toImError(err);
    if (e.code === "internal") {
      this.deps.logger.error("request failed", { conn: this.id, err: e.cause as Error ?? e });
    }
    const { code, message } = clientError(e);
    this.#error(id, code, message);
  }

  #error(id: number | null, code: string, message: string): void {
    this.push({ op: "error", ...(id !== null ? { re: id } : {}), code, message });
  }

  #auth(frame: Frame, id: number): void {
    let req: { token: string; device?: string };
    try {
      req = parseAuth(frame);
    } catch (err) {
      this.#fail(id, err);
      return;
    }
    this.#state = "authenticating";
    (async () => {
      let claims: { userId: string; device: string };
      try {
        claims = await this.deps.tokens.verifyAccess(req.token);
      } catch {
        this.#error(id, "invalid_token", "Invalid or expired token");
        this.close(CloseCode.authFailed, "invalid token");
        return;
      }
      if (this.#state === "closed") return;
      this.#userId = claims.userId;
      this.#device = req.device ?? claims.device;
      try {
        const directory = this.deps.directory;
        if (directory) {
          this.#inDirectory = true;
          await directory.connected(this.#userId);
          if (this.#closed()) return; // #detach left the directory
        }
        this.#inPresence = true;
        const res = await this.#ask(userActor(this.#userId), "connect", {
          device: this.#device,
          conn: this.#presenceKey(),
        }) as {
          seq: number;
        };
        if (this.#closed()) {
          this.#leavePresence();
          return;
        }
        this.#clearAuthTimer();
        this.#state = "open";
        this.#limiter = this.deps.limits.connect(this.#userId);
        const onOpen = this.onOpen;
        this.onOpen = undefined;
        onOpen?.();
        this.deps.registry.add(this);
        this.push({ op: "ok", re: id, userId: this.#userId, seq: res.seq });
        const waiting = this.#waiting ?? [];
        this.#waiting = null;
        for (const f of waiting) {
          if (this.#state !== "open") break;
          this.#handle(f);
        }
      } catch (err) {
        // The token was fine but the node could not serve it: the client may retry.
        this.#fail(id, err);
        // The connect may have run before it failed here; this undoes it (a no-op otherwise).
        this.#leavePresence();
        this.#leaveDirectory();
        this.#state = "new";
        this.#waiting = null;
      }
    })();
  }

  /** Whether this connection is counted in the connection directory. */
  #inDirectory = false;

  #leaveDirectory(): void {
    if (!this.#inDirectory) return;
    this.#inDirectory = false;
    this.deps.directory?.disconnected(this.#userId);
  }

  /** Whether the user's actor may count this connection as one of its devices. */
  #inPresence = false;

  #presenceKey(): string {
    return `${this.deps.nodeId ?? "local"}/${this.id}`;
  }

  /** Tells the user's actor this connection is gone (once; after its `connect` in send order). */
  #leavePresence(): void {
    if (!this.#inPresence) return;
    this.#inPresence = false;
    this.deps.router.tell(userActor(this.#userId), "presence.disconnect", {
      conn: this.#presenceKey(),
    }, { sender: this.id });
  }

  /**
   * Tells the user's actor again that this connection is open: asked (through the registry) by
   * a user actor that was re-activated without a clean hand-off and so may not know it.
   */
  reassertPresence(): void {
    if (this.#state !== "open" || !this.#inPresence) return;
    this.deps.router.tell(userActor(this.#userId), "presence.reassert", {
      conn: this.#presenceKey(),
    }, { sender: this.id });
  }

  #ack(frame: Frame, id: number | null): void {
    let seq: number;
    try {
      seq = parseAck(frame).seq;
    } catch (err) {
      if (id !== null) this.#fail(id, err);
      return;
    }
    if (id === null) {
      this.deps.router.tell(userActor(this.#userId), "ack", { device: this.#device, seq }, {
        sender: this.id,
      });
      return;
    }
    this.#request(
      id,
      () => this.#ask(userActor(this.#userId), "ack", { device: this.#device, seq }),
    );
  }
}

/** Maps internal codes to what a client may see. */
function clientError(e: ImError): { code: string; message: string } {
  switch (e.code) {
    case "moved":
    case "fenced":
      return { code: "unavailable", message: "Try again" };
    case "internal":
      return { code: "internal", message: "Internal error" };
    default:
      return { code: e.code, message: e.message };
  }
}
