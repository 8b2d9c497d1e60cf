/**
 * `ImClient`: a typed client of the IM protocol (docs/protocol.md) for browsers and Deno.
 *
 * What it promises:
 * - **Accounts.** `register`, `login` and `refresh` over REST; refreshes are serialised (a
 *   refresh token is single-use, and two concurrent refreshes would revoke the login).
 * - **One connection, kept alive.** `connect()` opens the WebSocket (`im.v1.msgpack` or
 *   `im.v1.json`), authenticates and then reconnects by itself after any loss, with exponential
 *   backoff and jitter, until `close()`. An expired token is refreshed first (close 4401 → refresh
 *   → reconnect). A forced logout, a disabled or deleted account (close 1008 with such a reason)
 *   or a refused refresh ends the session instead: `onSignedOut` fires and it does not reconnect.
 * - **Nothing missed, nothing twice.** After every (re)connect it `sync`s from the last inbox
 *   `seq` it processed; `msg` frames are delivered to `on("msg")` exactly once each, in `seq`
 *   order (a live push and a sync may overlap: duplicates are dropped; a gap triggers a sync).
 *   It acks the processed `seq` (cumulative, debounced). With a `storage`, the cursor survives a
 *   page reload.
 * - **Requests** carry ids, are matched by `re` and reject with {@link ImClientError} (the
 *   server's `code`) or `timeout` after `requestTimeoutMs`. Requests made while disconnected wait
 *   for the connection (their timeout runs meanwhile).
 * - **Offline send queue.** `send` queues the message with a `cmid` (made once) and resolves with
 *   the server's `ok` once it is durably stored. It survives disconnects and retries errors that
 *   are worth retrying (`unavailable`, `timeout`, `overloaded`, `rate_limited`, `internal`, a lost
 *   connection) with the **same** `cmid`, so the server stores it once; other errors reject.
 * - **Every push frame** (anything that is not an answer) reaches `on(op)` and `on("*")`.
 *
 * @module
 */
import { backoffDelay, type BackoffOptions } from "./backoff.ts";
import {
  decodeFrames,
  encodeFrames,
  type Frame,
  type Subprotocol,
  subprotocolOf,
  type WireFormat,
} from "./codec.ts";

/** An error from the server (its `code`) or from the client (`timeout`, `disconnected`, ...). */
export class ImClientError extends Error {
  /** The protocol error code, or a client code: `timeout`, `disconnected`, `closed`, `network`. */
  readonly code: string;
  /** HTTP status for REST errors. */
  readonly status?: number;
  constructor(code: string, message: string, status?: number) {
    super(message);
    this.name = "ImClientError";
    this.code = code;
    this.status = status;
  }
}

/** Tokens of a logged-in session. */
export interface Session {
  userId: string;
  accessToken: string;
  refreshToken: string;
  /** When the access token expires, ms since the epoch (client clock). */
  accessExpiresAt: number;
}

/** The connection's state. */
export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

/** Why a session ended. */
export type SignedOutReason =
  /** The server closed the socket with 1008 saying so (an admin forced it, or the account is gone). */
  | "forced_logout"
  | "account_disabled"
  | "account_deleted"
  /** The refresh token was refused (expired, revoked, reused). */
  | "invalid_token"
  /** `logout()` was called. */
  | "logout";

/** Somewhere to keep the session and the inbox cursor (`localStorage`/`sessionStorage` fit). */
export interface SdkStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** Where a message goes. */
export type Recipient = { user: string } | { group: string };

/** A message body: `{type: "text", text}` or any feature type. */
export type MessageBody = Record<string, unknown> & { type: string };

/** A `msg` frame (pushed or synced); history entries have the same fields without `seq`. */
export interface MsgFrame {
  op: "msg";
  seq?: number;
  mid: string;
  conv: string;
  cseq: number;
  from: string;
  to: Recipient;
  ts: number;
  body: MessageBody;
  [field: string]: unknown;
}

/** The `ok` of a send. */
export interface SendOk {
  mid: string;
  conv: string;
  cseq: number;
  ts: number;
  /** The client message id it was sent with. */
  cmid: string;
}

/** A send waiting in the offline queue. */
export interface PendingSend {
  cmid: string;
  to: Recipient;
  body: MessageBody;
  /** Attempts that reached the server and failed with a retryable error. */
  attempts: number;
}

/** Options of {@link ImClient}. */
export interface ImClientOptions {
  /** The server, e.g. `http://localhost:8080` (the WebSocket URL is derived from it). */
  baseUrl: string;
  /** Wire format (default `msgpack`). */
  format?: WireFormat;
  /** Device id used for login and auth (default: the server makes one per login). */
  device?: string;
  /** Deadline of a request, ms (default 10000). */
  requestTimeoutMs?: number;
  /** Reconnect backoff; `false` turns reconnecting off. */
  reconnect?: BackoffOptions | false;
  /** Application ping interval, ms, to notice a dead connection (default 25000; 0 = off). */
  pingIntervalMs?: number;
  /** Ack processed messages automatically (default true). */
  autoAck?: boolean;
  /** Delay before a cumulative ack is sent, ms (default 200). */
  ackDelayMs?: number;
  /** Most attempts of one send that fail with retryable server errors (default 20). */
  sendMaxAttempts?: number;
  /** Keeps the session and the inbox cursor across restarts (default: memory only). */
  storage?: SdkStorage;
  /** Storage key prefix (default `im.`). */
  storageKey?: string;
  /** WebSocket constructor (default `globalThis.WebSocket`). */
  WebSocket?: typeof WebSocket;
  /** fetch (default `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** Random source for jitter and cmids (tests). */
  random?: () => number;
}

type Handler<T> = (value: T) => void;

interface PendingRequest {
  frame: Frame;
  resolve: (f: Frame) => void;
  reject: (e: ImClientError) => void;
  timer: ReturnType<typeof setTimeout>;
  sent: boolean;
}

interface OutboxEntry extends PendingSend {
  resolve: (ok: SendOk) => void;
  reject: (err: ImClientError) => void;
  inFlight: boolean;
  retryTimer?: ReturnType<typeof setTimeout>;
}

const RETRYABLE = new Set(["unavailable", "timeout", "overloaded", "rate_limited", "internal"]);
const SIGNED_OUT_REASONS: Array<[RegExp, SignedOutReason]> = [
  [/logout/i, "forced_logout"],
  [/disabled/i, "account_disabled"],
  [/deleted/i, "account_deleted"],
];

/** A client of one IM server. See the module doc for its guarantees. */
export class ImClient {
  readonly baseUrl: string;
  readonly subprotocol: Subprotocol;
  #opts: Required<
    Pick<
      ImClientOptions,
      "requestTimeoutMs" | "pingIntervalMs" | "autoAck" | "ackDelayMs" | "sendMaxAttempts"
    >
  >;
  #backoff: BackoffOptions | false;
  #device: string | undefined;
  #storage: SdkStorage | undefined;
  #key: string;
  #WS: typeof WebSocket;
  #fetch: typeof fetch;
  #random: () => number;

  #session: Session | null = null;
  #refreshing: Promise<Session> | null = null;
  #ws: WebSocket | null = null;
  #state: ConnectionState = "idle";
  #wanted = false;
  #attempt = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #nextId = 1;
  #requests = new Map<number, PendingRequest>();
  #waitingForOpen: PendingRequest[] = [];
  #outbox: OutboxEntry[] = [];
  #lastSeq = 0;
  #ackedSeq = 0;
  #ahead = new Map<number, MsgFrame>();
  #syncing: Promise<void> | null = null;
  #resync = false;
  #handlers = new Map<string, Set<Handler<Frame>>>();
  #stateHandlers = new Set<Handler<ConnectionState>>();
  #signedOutHandlers = new Set<Handler<SignedOutReason>>();
  #sessionHandlers = new Set<Handler<Session | null>>();
  #openWaiters: Array<{ resolve: () => void; reject: (e: ImClientError) => void }> = [];
  #closedWaiter: Promise<void> = Promise.resolve();

  constructor(options: ImClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.subprotocol = subprotocolOf(options.format ?? "msgpack");
    this.#opts = {
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      pingIntervalMs: options.pingIntervalMs ?? 25_000,
      autoAck: options.autoAck ?? true,
      ackDelayMs: options.ackDelayMs ?? 200,
      sendMaxAttempts: options.sendMaxAttempts ?? 20,
    };
    this.#backoff = options.reconnect ?? {};
    this.#device = options.device;
    this.#storage = options.storage;
    this.#key = options.storageKey ?? "im.";
    this.#WS = options.WebSocket ?? globalThis.WebSocket;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#random = options.random ?? Math.random;
    const saved = this.#storage?.getItem(`${this.#key}session`);
    if (saved) {
      try {
        this.#adopt(JSON.parse(saved) as Session, false);
      } catch {
        this.#storage?.removeItem(`${this.#key}session`);
      }
    }
  }

  // ---- accessors ----

  /** The logged-in user, or null. */
  get userId(): string | null {
    return this.#session?.userId ?? null;
  }

  /** The current session (tokens), or null. */
  get session(): Session | null {
    return this.#session;
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** The highest inbox `seq` processed without gaps (what the next sync starts after). */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** Sends waiting in the offline queue, oldest first. */
  pendingSends(): PendingSend[] {
    return this.#outbox.map(({ cmid, to, body, attempts }) => ({ cmid, to, body, attempts }));
  }

  // ---- events ----

  /**
   * Calls `handler` for every push frame with this `op` (`msg` frames once each, in `seq`
   * order); `"*"` receives every push frame. Returns a function that removes the handler.
   */
  on<T extends Frame = Frame>(op: string, handler: Handler<T>): () => void {
    let set = this.#handlers.get(op);
    if (!set) {
      set = new Set();
      this.#handlers.set(op, set);
    }
    set.add(handler as Handler<Frame>);
    return () => set.delete(handler as Handler<Frame>);
  }

  /** Calls `handler` on every connection state change. */
  onState(handler: Handler<ConnectionState>): () => void {
    this.#stateHandlers.add(handler);
    return () => this.#stateHandlers.delete(handler);
  }

  /** Calls `handler` when the session ends (forced logout, refused refresh, `logout()`). */
  onSignedOut(handler: Handler<SignedOutReason>): () => void {
    this.#signedOutHandlers.add(handler);
    return () => this.#signedOutHandlers.delete(handler);
  }

  /** Calls `handler` whenever the tokens change (login, refresh, sign-out with null). */
  onSession(handler: Handler<Session | null>): () => void {
    this.#sessionHandlers.add(handler);
    return () => this.#sessionHandlers.delete(handler);
  }

  // ---- accounts (REST) ----

  /** Creates an account; resolves its user id. Rejects with `username_taken`, `bad_request`. */
  async register(username: string, password: string): Promise<string> {
    const res = await this.#post("/v1/auth/register", { username, password });
    return res.userId as string;
  }

  /** Logs in and keeps the session. Rejects with `invalid_credentials`. */
  async login(username: string, password: string): Promise<Session> {
    const res = await this.#post("/v1/auth/login", {
      username,
      password,
      ...(this.#device ? { device: this.#device } : {}),
    });
    return this.#adopt(tokenPair(res), true);
  }

  /** Registers, then logs in. */
  async signUp(username: string, password: string): Promise<Session> {
    await this.register(username, password);
    return await this.login(username, password);
  }

  /**
   * Rotates the tokens. Concurrent calls share one refresh. A refused refresh signs out
   * (`invalid_token`) and rejects.
   */
  refresh(): Promise<Session> {
    if (this.#refreshing) return this.#refreshing;
    const session = this.#session;
    if (!session) return Promise.reject(new ImClientError("unauthenticated", "Not logged in"));
    this.#refreshing = (async () => {
      try {
        const res = await this.#post("/v1/auth/refresh", { refreshToken: session.refreshToken });
        return this.#adopt(tokenPair(res), true);
      } catch (err) {
        if (err instanceof ImClientError && (err.code === "invalid_token" || err.status === 401)) {
          this.#signOut("invalid_token");
        }
        throw err;
      } finally {
        this.#refreshing = null;
      }
    })();
    return this.#refreshing;
  }

  /** Uses an existing session (e.g. kept by the application). */
  useSession(session: Session): void {
    this.#adopt(session, true);
  }

  /** Ends the session locally: closes the connection, forgets the tokens, fails queued sends. */
  async logout(): Promise<void> {
    this.#signOut("logout");
    await this.#closedWaiter;
  }

  // ---- connection ----

  /**
   * Opens the connection and keeps it open (reconnecting by itself) until `close()`. Resolves
   * when it is authenticated the first time; rejects when the session is refused for good.
   */
  connect(): Promise<void> {
    if (!this.#session) {
      return Promise.reject(new ImClientError("unauthenticated", "Log in before connecting"));
    }
    const opened = new Promise<void>((resolve, reject) => {
      if (this.#state === "open") resolve();
      else this.#openWaiters.push({ resolve, reject });
    });
    if (!this.#wanted) {
      this.#wanted = true;
      this.#attempt = 0;
      this.#open();
    }
    return opened;
  }

  /** Closes the connection for good (no reconnect); queued sends stay queued. */
  async close(): Promise<void> {
    this.#wanted = false;
    this.#stopTimers();
    this.#flushAck();
    const ws = this.#ws;
    if (ws && ws.readyState < 2) ws.close(1000, "client closed");
    this.#failRequests("closed", "The client was closed");
    for (const w of this.#openWaiters.splice(0)) {
      w.reject(new ImClientError("closed", "The client was closed"));
    }
    this.#setState("closed");
    await this.#closedWaiter;
  }

  /** Drops the current socket and reconnects now (e.g. when the browser comes back online). */
  reconnectNow(): void {
    if (!this.#wanted) return;
    clearTimeout(this.#reconnectTimer);
    this.#attempt = 0;
    if (this.#ws && this.#ws.readyState < 2) this.#ws.close(4000, "reconnect");
    else this.#open();
  }

  // ---- requests ----

  /**
   * Sends a request (`op` and fields; the id is added) and resolves with the `ok` frame.
   * Rejects with {@link ImClientError}: the server's code, `timeout`, or `closed`.
   */
  request<T extends Frame = Frame>(
    op: string,
    fields: Record<string, unknown> = {},
    options: { timeoutMs?: number } = {},
  ): Promise<T> {
    return new Promise<Frame>((resolve, reject) => {
      const id = this.#nextId++;
      const frame = { ...fields, op, id } as Frame;
      const pending: PendingRequest = {
        frame,
        resolve,
        reject,
        sent: false,
        timer: setTimeout(() => {
          this.#requests.delete(id);
          const i = this.#waitingForOpen.indexOf(pending);
          if (i >= 0) this.#waitingForOpen.splice(i, 1);
          reject(new ImClientError("timeout", `No answer to "${op}" in time`));
        }, options.timeoutMs ?? this.#opts.requestTimeoutMs),
      };
      this.#requests.set(id, pending);
      if (this.#state === "open") this.#transmit(pending);
      else if (!this.#wanted && this.#state !== "connecting") {
        clearTimeout(pending.timer);
        this.#requests.delete(id);
        reject(new ImClientError("disconnected", "Not connected: call connect() first"));
      } else this.#waitingForOpen.push(pending);
    }) as Promise<T>;
  }

  /**
   * Queues a message for `to` and resolves with its `ok` once it is stored. Retries with the
   * same `cmid` (made here unless given) across reconnects and retryable errors.
   */
  send(to: Recipient, body: MessageBody, options: { cmid?: string } = {}): Promise<SendOk> {
    const cmid = options.cmid ?? this.#newCmid();
    return new Promise<SendOk>((resolve, reject) => {
      const entry: OutboxEntry = {
        cmid,
        to,
        body,
        attempts: 0,
        resolve,
        reject,
        inFlight: false,
      };
      this.#outbox.push(entry);
      if (this.#state === "open") this.#sendEntry(entry);
    });
  }

  /** Sends a text message. */
  sendText(to: Recipient, text: string, options: { cmid?: string } = {}): Promise<SendOk> {
    return this.send(to, { type: "text", text }, options);
  }

  /** One page of a conversation's history, newest first. */
  async history(
    conv: string,
    options: { before?: number; limit?: number } = {},
  ): Promise<{ messages: MsgFrame[]; more: boolean }> {
    const ok = await this.request("history", { conv, ...options });
    return { messages: ok.messages as MsgFrame[], more: ok.more as boolean };
  }

  /** Creates a group with the caller as owner. */
  async createGroup(name: string, members: string[]): Promise<{ groupId: string; conv: string }> {
    const ok = await this.request("group.create", { name, members });
    return { groupId: ok.groupId as string, conv: ok.conv as string };
  }

  /** Round trip to the server. */
  async ping(): Promise<void> {
    await this.request("ping");
  }

  /** Syncs now (also done after every connect and on a gap). Resolves when caught up. */
  sync(): Promise<void> {
    if (this.#syncing) {
      this.#resync = true;
      return this.#syncing;
    }
    this.#syncing = (async () => {
      try {
        do {
          this.#resync = false;
          let more = true;
          while (more) {
            const ok = await this.request("sync", { after: this.#lastSeq, limit: 500 });
            more = ok.more === true;
            // Frames pushed before the ok were processed as they came.
          }
        } while (this.#resync);
      } finally {
        this.#syncing = null;
      }
    })();
    return this.#syncing;
  }

  /** Acks everything processed so far now (otherwise done after `ackDelayMs`). */
  ack(seq = this.#lastSeq): void {
    if (seq <= this.#ackedSeq || this.#state !== "open") return;
    this.#ackedSeq = seq;
    this.#write([{ op: "ack", seq }]);
  }

  // ---- internals: session ----

  #adopt(session: Session, announce: boolean): Session {
    const switched = this.#session?.userId !== session.userId;
    this.#session = session;
    if (switched) {
      this.#lastSeq = Number(this.#storage?.getItem(this.#seqKey()) ?? 0) || 0;
      this.#ackedSeq = 0;
      this.#ahead.clear();
    }
    this.#storage?.setItem(`${this.#key}session`, JSON.stringify(session));
    if (announce) { for (const h of this.#sessionHandlers) safe(h, session); }
    return session;
  }

  #seqKey(): string {
    return `${this.#key}seq.${this.#session?.userId ?? ""}.${this.#device ?? ""}`;
  }

  #signOut(reason: SignedOutReason): void {
    const had = this.#session !== null;
    this.#wanted = false;
    this.#session = null;
    this.#storage?.removeItem(`${this.#key}session`);
    this.#stopTimers();
    if (this.#ws && this.#ws.readyState < 2) this.#ws.close(1000, "signed out");
    this.#failRequests("unauthenticated", "Signed out");
    for (const e of this.#outbox.splice(0)) {
      clearTimeout(e.retryTimer);
      e.reject(new ImClientError("unauthenticated", "Signed out before the message was sent"));
    }
    for (const w of this.#openWaiters.splice(0)) {
      w.reject(new ImClientError(reason, `Signed out (${reason})`));
    }
    this.#setState("closed");
    if (had) {
      for (const h of this.#sessionHandlers) safe(h, null);
      for (const h of this.#signedOutHandlers) safe(h, reason);
    }
  }

  async #post(path: string, body: unknown): Promise<Record<string, unknown>> {
    let res: Response;
    try {
      res = await this.#fetch(`${this.baseUrl}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    } catch (err) {
      throw new ImClientError("network", `Cannot reach the server: ${(err as Error).message}`);
    }
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      // Not JSON (a proxy page): reported below by status.
    }
    if (!res.ok) {
      const e = (json.error ?? {}) as { code?: string; message?: string };
      throw new ImClientError(
        e.code ?? "http_error",
        e.message ?? `HTTP ${res.status}`,
        res.status,
      );
    }
    return json;
  }

  // ---- internals: connection ----

  #setState(state: ConnectionState): void {
    if (this.#state === state) return;
    this.#state = state;
    for (const h of this.#stateHandlers) safe(h, state);
  }

  async #open(): Promise<void> {
    if (!this.#wanted || !this.#session) return;
    this.#setState(
      this.#attempt === 0 && this.#state !== "reconnecting" ? "connecting" : "reconnecting",
    );
    // An access token that is (nearly) expired would be refused: refresh it first.
    if (this.#session.accessExpiresAt - Date.now() < 30_000) {
      try {
        await this.refresh();
      } catch (err) {
        if ((err as ImClientError).code === "invalid_token" || !this.#session) return;
        this.#scheduleReconnect();
        return;
      }
    }
    if (!this.#wanted || !this.#session) return;
    const url = this.baseUrl.replace(/^http/, "ws") + "/v1/ws";
    let ws: WebSocket;
    try {
      ws = new this.#WS(url, this.subprotocol);
    } catch {
      this.#scheduleReconnect();
      return;
    }
    ws.binaryType = "arraybuffer";
    this.#ws = ws;
    let resolveClosed!: () => void;
    this.#closedWaiter = new Promise((r) => (resolveClosed = r));
    ws.onopen = () => this.#authenticate(ws);
    ws.onmessage = (ev) => this.#onMessage(ws, ev.data);
    ws.onerror = () => {}; // the close event follows
    ws.onclose = (ev) => {
      resolveClosed();
      this.#onClose(ws, ev.code, ev.reason);
    };
  }

  #authenticate(ws: WebSocket): void {
    const session = this.#session;
    if (!session || ws !== this.#ws) return;
    const id = this.#nextId++;
    const frame: Frame = {
      op: "auth",
      id,
      token: session.accessToken,
      ...(this.#device ? { device: this.#device } : {}),
    };
    const pending: PendingRequest = {
      frame,
      sent: true,
      timer: setTimeout(() => {
        this.#requests.delete(id);
        if (ws.readyState < 2) ws.close(4000, "auth timeout");
      }, this.#opts.requestTimeoutMs),
      resolve: (ok) => this.#onAuthenticated(ws, ok),
      // A refused token closes the socket with 4401; #onClose refreshes and reconnects.
      reject: () => {},
    };
    this.#requests.set(id, pending);
    this.#write([frame]);
  }

  #onAuthenticated(ws: WebSocket, ok: Frame): void {
    if (ws !== this.#ws) return;
    const serverSeq = Number(ok.seq ?? 0);
    // A cursor beyond the server's inbox cannot be trusted (another server, a reset): start over.
    if (this.#lastSeq > serverSeq) this.#setLastSeq(0);
    this.#ackedSeq = Math.min(this.#ackedSeq, this.#lastSeq);
    this.#attempt = 0;
    this.#setState("open");
    this.#startPing(ws);
    for (const p of this.#waitingForOpen.splice(0)) {
      if (this.#requests.has(Number(p.frame.id))) this.#transmit(p);
    }
    for (const w of this.#openWaiters.splice(0)) w.resolve();
    this.sync().then(
      () => this.#flushOutbox(),
      () => this.#flushOutbox(),
    );
  }

  #onClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.#ws) return;
    this.#ws = null;
    this.#stopPing();
    clearTimeout(this.#ackTimer);
    // Requests on the lost socket: sends go back to the queue, others fail (their effect is unknown).
    for (const e of this.#outbox) e.inFlight = false;
    this.#failRequests("disconnected", "The connection was lost", true);
    if (!this.#wanted) {
      this.#setState("closed");
      return;
    }
    if (code === 1008) {
      const match = SIGNED_OUT_REASONS.find(([re]) => re.test(reason));
      if (match) {
        this.#signOut(match[1]);
        return;
      }
    }
    if (code === 4401) {
      this.#setState("reconnecting");
      this.refresh().then(
        () => this.#open(),
        () => {
          if (this.#session) this.#scheduleReconnect();
        },
      );
      return;
    }
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (!this.#wanted || this.#backoff === false) {
      this.#wanted = false;
      this.#setState("closed");
      return;
    }
    this.#setState("reconnecting");
    const delay = backoffDelay(this.#attempt++, this.#backoff, this.#random);
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => this.#open(), delay);
  }

  #startPing(ws: WebSocket): void {
    this.#stopPing();
    if (this.#opts.pingIntervalMs <= 0) return;
    this.#pingTimer = setInterval(() => {
      if (ws !== this.#ws || this.#state !== "open") return;
      this.request("ping").catch((err) => {
        // No answer: the connection is dead even if the socket does not know yet.
        if ((err as ImClientError).code === "timeout" && ws.readyState < 2) {
          ws.close(4000, "ping timeout");
        }
      });
    }, this.#opts.pingIntervalMs);
  }

  #stopPing(): void {
    clearInterval(this.#pingTimer);
    this.#pingTimer = undefined;
  }

  #stopTimers(): void {
    this.#stopPing();
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#ackTimer);
    for (const e of this.#outbox) clearTimeout(e.retryTimer);
  }

  #failRequests(code: string, message: string, keepWaiting = false): void {
    for (const [id, p] of this.#requests) {
      if (keepWaiting && !p.sent) continue;
      clearTimeout(p.timer);
      this.#requests.delete(id);
      p.reject(new ImClientError(code, message));
    }
    if (!keepWaiting) this.#waitingForOpen.length = 0;
  }

  #transmit(p: PendingRequest): void {
    p.sent = true;
    this.#write([p.frame]);
  }

  #write(frames: Frame[]): void {
    const ws = this.#ws;
    if (!ws || ws.readyState !== 1) return;
    ws.send(encodeFrames(frames, this.subprotocol));
  }

  #onMessage(ws: WebSocket, data: unknown): void {
    if (ws !== this.#ws) return;
    let frames: Frame[];
    try {
      frames = decodeFrames(data, this.subprotocol);
    } catch {
      ws.close(4000, "undecodable message from server");
      return;
    }
    for (const f of frames) this.#onFrame(f);
  }

  #onFrame(f: Frame): void {
    if ((f.op === "ok" || f.op === "error") && typeof f.re === "number") {
      const p = this.#requests.get(f.re);
      if (p) {
        this.#requests.delete(f.re);
        clearTimeout(p.timer);
        if (f.op === "ok") p.resolve(f);
        else {
          p.reject(
            new ImClientError(String(f.code ?? "internal"), String(f.message ?? "Request failed")),
          );
        }
        return;
      }
    }
    if (f.op === "msg" && typeof f.seq === "number") {
      this.#onMsg(f as unknown as MsgFrame);
      return;
    }
    this.#emit(f);
  }

  #onMsg(m: MsgFrame): void {
    const seq = m.seq!;
    if (seq <= this.#lastSeq || this.#ahead.has(seq)) return; // a duplicate
    if (seq > this.#lastSeq + 1) {
      // A gap: keep this one and fetch what is missing from the store.
      this.#ahead.set(seq, m);
      if (this.#state === "open") this.sync().catch(() => {});
      return;
    }
    this.#deliverMsg(m);
    let next = this.#ahead.get(this.#lastSeq + 1);
    while (next) {
      this.#ahead.delete(this.#lastSeq + 1);
      this.#deliverMsg(next);
      next = this.#ahead.get(this.#lastSeq + 1);
    }
    for (const s of this.#ahead.keys()) if (s <= this.#lastSeq) this.#ahead.delete(s);
  }

  #deliverMsg(m: MsgFrame): void {
    this.#setLastSeq(m.seq!);
    this.#emit(m as unknown as Frame);
    if (this.#opts.autoAck && this.#ackTimer === undefined) {
      this.#ackTimer = setTimeout(() => this.#flushAck(), this.#opts.ackDelayMs);
    }
  }

  #flushAck(): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    if (this.#opts.autoAck) this.ack();
  }

  #setLastSeq(seq: number): void {
    this.#lastSeq = seq;
    this.#storage?.setItem(this.#seqKey(), String(seq));
  }

  #emit(f: Frame): void {
    for (const h of this.#handlers.get(f.op) ?? []) safe(h, f);
    for (const h of this.#handlers.get("*") ?? []) safe(h, f);
  }

  // ---- internals: offline queue ----

  #flushOutbox(): void {
    if (this.#state !== "open") return;
    for (const e of this.#outbox) {
      if (!e.inFlight && e.retryTimer === undefined) this.#sendEntry(e);
    }
  }

  #sendEntry(e: OutboxEntry): void {
    e.inFlight = true;
    this.request("send", { to: e.to, cmid: e.cmid, body: e.body }).then(
      (ok) => {
        this.#removeEntry(e);
        e.resolve({
          mid: ok.mid as string,
          conv: ok.conv as string,
          cseq: ok.cseq as number,
          ts: ok.ts as number,
          cmid: e.cmid,
        });
      },
      (err: ImClientError) => {
        e.inFlight = false;
        if (!this.#outbox.includes(e)) return;
        if (err.code === "disconnected" || err.code === "closed") return; // resent on reconnect
        if (RETRYABLE.has(err.code) && ++e.attempts < this.#opts.sendMaxAttempts) {
          const delay = backoffDelay(e.attempts - 1, this.#backoff || {}, this.#random);
          e.retryTimer = setTimeout(() => {
            e.retryTimer = undefined;
            if (this.#state === "open" && !e.inFlight) this.#sendEntry(e);
          }, delay);
          return;
        }
        this.#removeEntry(e);
        e.reject(err);
      },
    );
  }

  #removeEntry(e: OutboxEntry): void {
    const i = this.#outbox.indexOf(e);
    if (i >= 0) this.#outbox.splice(i, 1);
    clearTimeout(e.retryTimer);
  }

  #newCmid(): string {
    const r = () => Math.floor(this.#random() * 0x100000000).toString(36);
    return `c${Date.now().toString(36)}${r()}${r()}`;
  }
}

function tokenPair(res: Record<string, unknown>): Session {
  return {
    userId: res.userId as string,
    accessToken: res.accessToken as string,
    refreshToken: res.refreshToken as string,
    accessExpiresAt: Date.now() + Number(res.expiresIn ?? 0) * 1000,
  };
}

function safe<T>(handler: Handler<T>, value: T): void {
  try {
    handler(value);
  } catch (err) {
    // An application handler's bug must not break the client's own bookkeeping.
    console.error("ImClient: an event handler threw", err);
  }
}
