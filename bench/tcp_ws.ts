/**
 * A minimal RFC 6455 WebSocket client over `Deno.connect` with `TCP_NODELAY` set, for the load
 * generators.
 *
 * Deno's own `WebSocket` client leaves Nagle's algorithm on (it sets `TCP_NODELAY` to 0), while
 * browsers and Deno's own server turn it off. With Nagle on, a client's small frame waits until
 * the server has acknowledged the previous one, and a server that answers only after a commit
 * lets the kernel's delayed-ACK timer (40 ms) decide when the next send leaves the generator:
 * latency a real browser client would never see, charged to whichever server answers late.
 * This client writes every frame at once (frames issued in the same turn of the event loop, or
 * while the previous write is in flight, go out in one write), and is otherwise what the
 * generators need: binary and text messages, fragmented messages, ping/pong, and the closing
 * handshake. A connection that fails (reset, EOF, a failed write) ends with close code 1006.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** WebSocket opcodes (RFC 6455 §5.2). */
const OP = { cont: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

/**
 * Encodes one masked frame (clients must mask, RFC 6455 §5.3) with FIN set.
 * The masking key is random per frame, as the RFC asks.
 */
export function maskedFrame(payload: Uint8Array, opcode: number = OP.binary): Uint8Array {
  const len = payload.length;
  const headLen = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = new Uint8Array(headLen + 4 + len);
  out[0] = 0x80 | opcode;
  if (len < 126) {
    out[1] = 0x80 | len;
  } else if (len < 65536) {
    out[1] = 0x80 | 126;
    out[2] = len >> 8;
    out[3] = len & 0xff;
  } else {
    out[1] = 0x80 | 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(len));
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  out.set(mask, headLen);
  const base = headLen + 4;
  for (let i = 0; i < len; i++) out[base + i] = payload[i] ^ mask[i & 3];
  return out;
}

/**
 * Opens a TCP connection to `url` (`http://` or `ws://host:port`), sets `TCP_NODELAY`, and
 * performs the HTTP upgrade on `path` asking for `protocol`. Resolves with the connection and
 * whatever bytes arrived after the upgrade answer; rejects (and closes the connection) when the
 * server does not answer `101`.
 */
export async function upgrade(
  url: string,
  path: string,
  protocol: string,
): Promise<{ conn: Deno.TcpConn; rest: Uint8Array }> {
  const u = new URL(url);
  const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
  try {
    conn.setNoDelay(true);
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    const req = `GET ${path} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
      `Sec-WebSocket-Protocol: ${protocol}\r\n\r\n`;
    await writeAll(conn, encoder.encode(req));
    let head: Uint8Array = new Uint8Array(0);
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) throw new Error("connection closed during the upgrade");
      head = concat([head, buf.subarray(0, n)]);
      const end = indexOfHeaderEnd(head);
      if (end < 0) continue;
      const status = decoder.decode(head.subarray(0, end)).split("\r\n")[0];
      if (!status.startsWith("HTTP/1.1 101")) throw new Error(`upgrade refused: ${status}`);
      return { conn, rest: head.slice(end + 4) };
    }
  } catch (err) {
    try {
      conn.close();
    } catch { /* already closed */ }
    throw err;
  }
}

function indexOfHeaderEnd(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let o = 0; o < bytes.length;) o += await conn.write(bytes.subarray(o));
}

/**
 * A connected WebSocket client. Messages arrive through {@link TcpWebSocket.onmessage} (binary
 * messages as `Uint8Array`, text as `string`); {@link TcpWebSocket.onclose} fires exactly once,
 * with the close code the server sent (1006 when the connection ended without one).
 */
export class TcpWebSocket {
  /** A whole message from the server. */
  onmessage: (data: Uint8Array | string) => void = () => {};
  /** The connection is over (after the closing handshake, an error, or the peer's EOF). */
  onclose: (code: number) => void = () => {};

  #open = true;
  #closeSent = false;
  #closed = false;
  #out: Uint8Array[] = [];
  #flushing = false;
  #fragments: Uint8Array[] = [];
  #fragmentOp = 0;
  /** The code of the server's close frame; 1006 (abnormal) until one arrives. */
  #peerCode = 1006;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;

  private constructor(readonly conn: Deno.TcpConn) {}

  /** Connects and upgrades (see {@link upgrade}), then starts reading. */
  static async connect(url: string, path: string, protocol: string): Promise<TcpWebSocket> {
    const { conn, rest } = await upgrade(url, path, protocol);
    const ws = new TcpWebSocket(conn);
    ws.#readLoop(rest);
    return ws;
  }

  /** Whether messages can still be sent (no close frame sent or received). */
  get isOpen(): boolean {
    return this.#open;
  }

  /** Sends one binary message; ignored once the connection is closing. */
  send(data: Uint8Array): void {
    if (!this.#open) return;
    this.#enqueue(maskedFrame(data, OP.binary));
  }

  /** Starts the closing handshake (code 1000); `onclose` fires when it completes. */
  close(code = 1000): void {
    if (this.#closeSent || this.#closed) return;
    this.#open = false;
    this.#closeSent = true;
    this.#enqueue(maskedFrame(new Uint8Array([code >> 8, code & 0xff]), OP.close));
    // A server that never answers the close frame does not keep the client forever.
    this.#closeTimer = setTimeout(() => this.#finish(1006), 5_000);
  }

  #enqueue(frame: Uint8Array): void {
    this.#out.push(frame);
    if (this.#flushing) return;
    this.#flushing = true;
    // Frames issued in this turn of the event loop leave in one write, and so do those issued
    // while that write is in flight (as Chromium writes the frames pending on a socket).
    queueMicrotask(() => this.#flush());
  }

  async #flush(): Promise<void> {
    try {
      while (this.#out.length > 0 && !this.#closed) {
        const bytes = concat(this.#out);
        this.#out = [];
        await writeAll(this.conn, bytes);
      }
    } catch {
      this.#finish(1006);
    } finally {
      this.#flushing = false;
    }
  }

  async #readLoop(initial: Uint8Array): Promise<void> {
    let buf = new Uint8Array(Math.max(65536, initial.length * 2));
    buf.set(initial);
    let start = 0;
    let end = initial.length;
    try {
      for (;;) {
        start = this.#parse(buf, start, end);
        if (this.#closed) return;
        if (start === end) start = end = 0;
        if (end === buf.length) {
          // Make room: move the partial frame to the front, or grow for a large one.
          const pending = end - start;
          if (pending > buf.length / 2) {
            const bigger = new Uint8Array(buf.length * 2);
            bigger.set(buf.subarray(start, end));
            buf = bigger;
          } else {
            buf.copyWithin(0, start, end);
          }
          start = 0;
          end = pending;
        }
        const n = await this.conn.read(buf.subarray(end));
        if (n === null) break;
        end += n;
      }
    } catch {
      // A reset or a local close: the connection is over either way.
    }
    this.#finish(this.#peerCode);
  }

  /** Handles every complete frame in `buf[start, end)`; returns where the unparsed rest starts. */
  #parse(buf: Uint8Array, start: number, end: number): number {
    while (end - start >= 2 && !this.#closed) {
      const b0 = buf[start];
      const b1 = buf[start + 1];
      let len = b1 & 0x7f;
      let head = 2;
      if (len === 126) {
        if (end - start < 4) break;
        len = (buf[start + 2] << 8) | buf[start + 3];
        head = 4;
      } else if (len === 127) {
        if (end - start < 10) break;
        len = Number(new DataView(buf.buffer, buf.byteOffset + start + 2, 8).getBigUint64(0));
        head = 10;
      }
      if (b1 & 0x80) head += 4; // servers do not mask, but a masked frame is still parseable
      // An incomplete frame waits for more bytes (the read loop grows the buffer when full).
      if (end - start < head + len) break;
      let payload = buf.slice(start + head, start + head + len);
      if (b1 & 0x80) {
        const mask = buf.subarray(start + head - 4, start + head);
        payload = payload.map((v, i) => v ^ mask[i & 3]);
      }
      start += head + len;
      this.#frame(b0 & 0x80, b0 & 0x0f, payload);
    }
    return start;
  }

  #frame(fin: number, op: number, payload: Uint8Array): void {
    switch (op) {
      case OP.ping:
        if (!this.#closeSent) this.#enqueue(maskedFrame(payload, OP.pong));
        return;
      case OP.pong:
        return;
      case OP.close: {
        const code = payload.length >= 2 ? (payload[0] << 8) | payload[1] : 1005;
        this.#peerCode = code;
        this.#open = false;
        if (!this.#closeSent) {
          this.#closeSent = true;
          this.#enqueue(maskedFrame(payload.subarray(0, 2), OP.close));
        }
        // The server closes the TCP connection after the handshake (the read loop then ends);
        // one that does not is left after a while.
        clearTimeout(this.#closeTimer);
        this.#closeTimer = setTimeout(() => this.#finish(code), 1_000);
        return;
      }
      case OP.cont:
        this.#fragments.push(payload);
        if (fin) {
          const whole = concat(this.#fragments);
          this.#fragments = [];
          this.#deliver(this.#fragmentOp, whole);
        }
        return;
      default:
        if (fin) {
          this.#deliver(op, payload);
        } else {
          this.#fragmentOp = op;
          this.#fragments = [payload];
        }
    }
  }

  #deliver(op: number, payload: Uint8Array): void {
    this.onmessage(op === OP.text ? decoder.decode(payload) : payload);
  }

  #finish(code: number): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#open = false;
    clearTimeout(this.#closeTimer);
    try {
      this.conn.close();
    } catch { /* already closed */ }
    this.onclose(code);
  }
}
