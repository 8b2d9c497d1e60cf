/**
 * The clients a load generator drives, one adapter per system under test, all reporting to one
 * {@link ClientEvents} sink so the measuring code is the same for every system:
 *
 * - `im`: the real server, `im.v1.msgpack` and PROTOCOL-CORE.md (auth with an access token,
 *   `send`, `msg`, cumulative `ack`).
 * - `bare`: the bare `Deno.serve` baseline (bench/servers/bare_server.ts): the same frames, but
 *   `auth` carries the user id as token and the rooms (groups) to join.
 * - `sio`: Socket.IO 4 (websocket transport only, msgpack parser): handshake `auth` carries the
 *   user and rooms; `send` is an event with an acknowledgement, `msg` an event.
 *
 * Every `send` carries the scheduled send time (at the start of `body.text`, wall-clock ms) so the receiver measures
 * latency from the schedule, not from when the generator got around to sending.
 *
 * @module
 */
import { Packr, Unpackr } from "msgpackr";
import { io as sioConnect, type Socket as SioSocket } from "socket.io-client";
import msgpackParser from "socket.io-msgpack-parser";
import { TcpWebSocket } from "./tcp_ws.ts";

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" });

/** Systems a generator can drive. */
export type SystemKind = "im" | "bare" | "sio";

/** A send target as in PROTOCOL-CORE.md. */
export type Target = { user: string } | { group: string };

/** Wall-clock time in ms with sub-ms precision, comparable across processes on one machine. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * The body of a benchmark message: a text starting with the scheduled send time (servers accept
 * no extra body fields, so the timestamp travels in the text itself).
 */
export function textBody(t: number, pad: string): { type: "text"; text: string } {
  return { type: "text", text: `${t.toFixed(3)}|${pad}` };
}

/** The scheduled send time carried by a received `msg` frame (0 when absent). */
export function sentAt(frame: Record<string, unknown>): number {
  const text = (frame.body as { text?: unknown } | undefined)?.text;
  return typeof text === "string" ? parseFloat(text) || 0 : 0;
}

/** Where clients report what they receive. */
export interface ClientEvents {
  /** A send was answered `ok` (`t`: its scheduled time; `ok`: the answer's fields). */
  ok(client: LoadClient, t: number, ok: Record<string, unknown>, cmid: string): void;
  /** A send was answered with an error. */
  error(client: LoadClient, t: number, code: string, cmid: string): void;
  /** A message arrived (`t`: the scheduled send time carried in its body). */
  msg(client: LoadClient, t: number, frame: Record<string, unknown>): void;
  /** The connection closed. */
  closed(client: LoadClient, code: number): void;
}

/** What the generator needs of a client. */
export interface LoadClient {
  readonly key: number;
  readonly user: string;
  /** Sends a message; the answer comes through {@link ClientEvents}. */
  send(to: Target, cmid: string, t: number, text: string): void;
  /** Sends a request frame and resolves with the answer frame (setup only). */
  request(frame: Record<string, unknown>, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Acks the highest inbox seq received since the last call (no-op where seqs do not exist). */
  flushAck(): void;
  /** Sends requests still waiting for an answer. */
  readonly outstanding: number;
  close(): Promise<void>;
}

/** How to open one client. */
export interface ClientSpec {
  key: number;
  url: string;
  user: string;
  /** Access token (`im`); the user id for the baselines. */
  token: string;
  /** Groups to join at connect time (baselines; the real server knows its members). */
  rooms?: string[];
}

/** The part of a WebSocket client that {@link WsClient} uses. */
interface FrameSocket {
  onmessage: (data: Uint8Array) => void;
  onclose: (code: number) => void;
  readonly isOpen: boolean;
  send(data: Uint8Array): void;
  close(): void;
}

/**
 * Opens the WebSocket of `im` and `bare` (`/v1/ws`, `im.v1.msgpack`): a {@link TcpWebSocket}
 * with `TCP_NODELAY`, as browsers have; `BENCH_DENO_WS=1` uses Deno's `WebSocket` client instead
 * (a diagnostic: it leaves Nagle's algorithm on, see bench/tcp_ws.ts).
 */
async function openFrameSocket(url: string): Promise<FrameSocket> {
  if (Deno.env.get("BENCH_DENO_WS") !== "1") {
    const ws = await TcpWebSocket.connect(url, "/v1/ws", "im.v1.msgpack");
    const socket: FrameSocket = {
      onmessage: () => {},
      onclose: () => {},
      get isOpen() {
        return ws.isOpen;
      },
      send: (data) => ws.send(data),
      close: () => ws.close(),
    };
    // `im.v1.msgpack` carries binary messages only; neither server sends text on it.
    ws.onmessage = (d) => typeof d !== "string" && socket.onmessage(d);
    ws.onclose = (code) => socket.onclose(code);
    return socket;
  }
  const ws = new WebSocket(url.replace(/^http/, "ws") + "/v1/ws", "im.v1.msgpack");
  ws.binaryType = "arraybuffer";
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = (e) => reject(new Error(`ws open failed: ${(e as ErrorEvent).message}`));
    ws.onclose = (e) => reject(new Error(`ws closed before open: ${e.code}`));
  });
  const socket: FrameSocket = {
    onmessage: () => {},
    onclose: () => {},
    get isOpen() {
      return ws.readyState === WebSocket.OPEN;
    },
    send: (data) => ws.send(data),
    close: () => ws.close(),
  };
  ws.onerror = () => {};
  ws.onmessage = (ev) => socket.onmessage(new Uint8Array(ev.data as ArrayBuffer));
  ws.onclose = (ev) => socket.onclose(ev.code);
  return socket;
}

interface Pending {
  t: number;
  cmid: string;
  resolve?: (f: Record<string, unknown>) => void;
}

/** A client of the `im` or `bare` system: msgpack frames over a WebSocket. */
export class WsClient implements LoadClient {
  #ws!: FrameSocket;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  #maxSeq = 0;
  #ackedSeq = 0;
  #closedP!: Promise<void>;

  private constructor(
    readonly key: number,
    readonly user: string,
    readonly events: ClientEvents,
  ) {}

  /** Opens and authenticates; rejects when either fails. */
  static async open(kind: "im" | "bare", spec: ClientSpec, events: ClientEvents) {
    const c = new WsClient(spec.key, spec.user, events);
    const ws = await openFrameSocket(spec.url);
    c.#ws = ws;
    let closeResolve!: () => void;
    c.#closedP = new Promise((r) => closeResolve = r);
    ws.onmessage = (data) => c.#onMessage(data);
    ws.onclose = (code) => {
      for (const [, p] of c.#pending) {
        if (p.resolve) p.resolve({ op: "error", code: "closed" });
        else events.error(c, p.t, "closed", p.cmid);
      }
      c.#pending.clear();
      events.closed(c, code);
      closeResolve();
    };
    const auth = kind === "im"
      ? { op: "auth", token: spec.token }
      : { op: "auth", token: spec.token, rooms: spec.rooms ?? [] };
    const ok = await c.request(auth, 30_000);
    if (ok.op !== "ok") {
      c.#ws.close();
      throw new Error(`auth failed: ${ok.code} ${ok.message}`);
    }
    c.#maxSeq = c.#ackedSeq = Number(ok.seq ?? 0);
    return c;
  }

  get outstanding(): number {
    return this.#pending.size;
  }

  send(to: Target, cmid: string, t: number, text: string): void {
    const id = this.#nextId++;
    this.#pending.set(id, { t, cmid });
    this.#ws.send(packr.pack({ op: "send", id, to, cmid, body: textBody(t, text) }));
  }

  request(frame: Record<string, unknown>, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        resolve({ op: "error", code: "client_timeout" });
      }, timeoutMs);
      this.#pending.set(id, {
        t: 0,
        cmid: "",
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
      });
      this.#ws.send(packr.pack({ ...frame, id }));
    });
  }

  flushAck(): void {
    if (this.#maxSeq > this.#ackedSeq && this.#ws.isOpen) {
      this.#ackedSeq = this.#maxSeq;
      this.#ws.send(packr.pack({ op: "ack", seq: this.#maxSeq }));
    }
  }

  #onMessage(data: Uint8Array): void {
    const frames = unpackr.unpackMultiple(data) as Record<string, unknown>[];
    for (const f of frames) {
      const op = f.op;
      if (op === "msg") {
        const seq = f.seq as number | undefined;
        if (seq !== undefined && seq > this.#maxSeq) this.#maxSeq = seq;
        this.events.msg(this, sentAt(f), f);
      } else if ((op === "ok" || op === "error") && typeof f.re === "number") {
        const p = this.#pending.get(f.re);
        if (!p) continue;
        this.#pending.delete(f.re);
        if (p.resolve) p.resolve(f);
        else if (op === "ok") this.events.ok(this, p.t, f, p.cmid);
        else this.events.error(this, p.t, String(f.code), p.cmid);
      }
    }
  }

  close(): Promise<void> {
    try {
      this.#ws.close();
    } catch { /* already closing */ }
    return this.#closedP;
  }
}

/** A Socket.IO client (websocket transport only, msgpack parser). */
export class SioClient implements LoadClient {
  #s!: SioSocket;
  #outstanding = 0;
  #closedP!: Promise<void>;

  private constructor(
    readonly key: number,
    readonly user: string,
    readonly events: ClientEvents,
  ) {}

  /** Connects; rejects when the connection fails. */
  static async open(spec: ClientSpec, events: ClientEvents): Promise<SioClient> {
    const c = new SioClient(spec.key, spec.user, events);
    const s = sioConnect(spec.url, {
      transports: ["websocket"],
      parser: msgpackParser,
      auth: { user: spec.user, rooms: spec.rooms ?? [] },
      reconnection: false,
      forceNew: true,
      timeout: 30_000,
    });
    c.#s = s;
    await new Promise<void>((resolve, reject) => {
      s.once("connect", () => resolve());
      s.once("connect_error", (e: Error) => reject(new Error(`sio connect failed: ${e.message}`)));
    });
    let closeResolve!: () => void;
    c.#closedP = new Promise((r) => closeResolve = r);
    s.on("msg", (f: Record<string, unknown>) => {
      events.msg(c, sentAt(f), f);
    });
    s.on("disconnect", () => {
      events.closed(c, 0);
      closeResolve();
    });
    return c;
  }

  get outstanding(): number {
    return this.#outstanding;
  }

  send(to: Target, cmid: string, t: number, text: string): void {
    this.#outstanding++;
    this.#s.emit(
      "send",
      { to, cmid, body: textBody(t, text) },
      (ok: Record<string, unknown>) => {
        this.#outstanding--;
        if (ok && ok.error) this.events.error(this, t, String(ok.error), cmid);
        else this.events.ok(this, t, ok, cmid);
      },
    );
  }

  request(frame: Record<string, unknown>, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve({ op: "error", code: "client_timeout" }), timeoutMs);
      this.#s.emit("request", frame, (f: Record<string, unknown>) => {
        clearTimeout(timer);
        resolve(f);
      });
    });
  }

  flushAck(): void {}

  close(): Promise<void> {
    if (this.#s.disconnected) return Promise.resolve();
    this.#s.disconnect();
    return this.#closedP;
  }
}

/** Opens a client of `kind`. */
export function openClient(
  kind: SystemKind,
  spec: ClientSpec,
  events: ClientEvents,
): Promise<LoadClient> {
  return kind === "sio" ? SioClient.open(spec, events) : WsClient.open(kind, spec, events);
}
