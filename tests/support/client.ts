/**
 * A small protocol client for tests, written straight from PROTOCOL-CORE.md (it does not reuse
 * the server's codec, so it checks the wire format independently).
 *
 * @module
 */
import { Packr, Unpackr } from "msgpackr";

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" });

/** A frame as the test sees it. */
export type F = Record<string, unknown>;

/** The two subprotocols. */
export type Proto = "im.v1.msgpack" | "im.v1.json";

/** Registers a user and logs in; returns the login answer. */
export async function signUp(
  base: string,
  username: string,
  password = "correct horse battery",
  device?: string,
): Promise<{ userId: string; accessToken: string; refreshToken: string; expiresIn: number }> {
  const r = await fetch(`${base}/v1/auth/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (r.status !== 201) throw new Error(`register ${username}: ${r.status} ${await r.text()}`);
  await r.body?.cancel();
  return await login(base, username, password, device);
}

/** Logs in. */
export async function login(base: string, username: string, password: string, device?: string) {
  const r = await fetch(`${base}/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password, ...(device ? { device } : {}) }),
  });
  if (r.status !== 200) throw new Error(`login ${username}: ${r.status} ${await r.text()}`);
  return await r.json();
}

/** A WebSocket test client that records every frame it receives. */
export class TestClient {
  readonly frames: F[] = [];
  closeCode: number | null = null;
  closeReason = "";
  #waiters: Array<{ pred: (f: F) => boolean; resolve: (f: F) => void }> = [];
  #closeWaiters: Array<(code: number) => void> = [];
  #nextId = 1;
  readonly closed: Promise<number>;

  private constructor(readonly ws: WebSocket, readonly proto: Proto) {
    this.closed = new Promise((resolve) => this.#closeWaiters.push(resolve));
    ws.binaryType = "arraybuffer";
    ws.onmessage = (ev) => {
      for (const f of this.decode(ev.data)) this.#receive(f);
    };
    ws.onclose = (ev) => {
      this.closeCode = ev.code;
      this.closeReason = ev.reason;
      for (const w of this.#closeWaiters) w(ev.code);
    };
  }

  /** Opens a connection (not authenticated). */
  static async open(base: string, proto: Proto = "im.v1.msgpack"): Promise<TestClient> {
    const ws = new WebSocket(base.replace(/^http/, "ws") + "/v1/ws", proto);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = (e) => reject(new Error(`ws open failed: ${(e as ErrorEvent).message}`));
    });
    if (ws.protocol !== proto) throw new Error(`server chose "${ws.protocol}"`);
    return new TestClient(ws, proto);
  }

  /** Opens and authenticates. */
  static async connect(
    base: string,
    token: string,
    proto: Proto = "im.v1.msgpack",
    device?: string,
  ) {
    const c = await TestClient.open(base, proto);
    const ok = await c.request({ op: "auth", token, ...(device ? { device } : {}) });
    if (ok.op !== "ok") throw new Error(`auth failed: ${JSON.stringify(ok)}`);
    return c;
  }

  decode(data: unknown): F[] {
    if (this.proto === "im.v1.json") {
      return String(data).split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
    }
    return unpackr.unpackMultiple(new Uint8Array(data as ArrayBuffer)) as F[];
  }

  encode(frames: F[]): string | Uint8Array {
    if (this.proto === "im.v1.json") return frames.map((f) => JSON.stringify(f)).join("\n");
    const parts = frames.map((f) => packr.pack(f));
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  #receive(f: F): void {
    this.frames.push(f);
    const i = this.#waiters.findIndex((w) => w.pred(f));
    if (i >= 0) this.#waiters.splice(i, 1)[0].resolve(f);
  }

  /** Sends frames as one WebSocket message. */
  send(...frames: F[]): void {
    this.ws.send(this.encode(frames));
  }

  /** Sends raw data. */
  sendRaw(data: string | Uint8Array): void {
    this.ws.send(data);
  }

  /** A fresh request id. */
  nextId(): number {
    return this.#nextId++;
  }

  /** Sends a request (id added) and waits for its answer. */
  request(frame: F, timeoutMs = 5000): Promise<F> {
    const id = (frame.id as number | undefined) ?? this.nextId();
    const p = this.waitFor((f) => f.re === id && (f.op === "ok" || f.op === "error"), timeoutMs);
    this.send({ ...frame, id });
    return p;
  }

  /** Waits for a frame matching `pred` (also looks at frames already received). */
  waitFor(pred: (f: F) => boolean, timeoutMs = 5000, includePast = false): Promise<F> {
    if (includePast) {
      const past = this.frames.find(pred);
      if (past) return Promise.resolve(past);
    }
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: (f: F) => {
          clearTimeout(t);
          resolve(f);
        },
      };
      const t = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        reject(
          new Error(`timed out waiting for a frame; got ${JSON.stringify(this.frames.slice(-5))}`),
        );
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  /** Messages (`msg` frames) received so far. */
  msgs(): F[] {
    return this.frames.filter((f) => f.op === "msg");
  }

  /** Waits until `n` msg frames have arrived. */
  async waitForMsgs(n: number, timeoutMs = 5000): Promise<F[]> {
    const end = Date.now() + timeoutMs;
    while (this.msgs().length < n) {
      if (Date.now() > end) throw new Error(`expected ${n} msgs, got ${this.msgs().length}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.msgs();
  }

  /** Closes the socket and waits for the close event. */
  async close(): Promise<void> {
    if (this.closeCode === null) {
      try {
        this.ws.close();
      } catch { /* already closing */ }
    }
    await this.closed;
  }
}
