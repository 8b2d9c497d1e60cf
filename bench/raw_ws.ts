/**
 * A WebSocket client that stops reading: the slow consumer of scenario 6.
 *
 * Deno's WebSocket client always reads in the background, so a consumer that does not read has
 * to be written by hand: a TCP connection, the HTTP upgrade, one masked binary frame (`auth`),
 * then nothing is ever read again, so the server's writes pile up in the kernel buffers and then
 * in the server's socket buffer, until the server sheds the connection.
 *
 * @module
 */
import { Packr } from "msgpackr";

const packr = new Packr({ useRecords: false });

/** A connection that authenticated and then stopped reading. */
export interface StalledClient {
  /** Closes the TCP connection (idempotent). */
  close(): void;
}

/** Encodes one masked binary WebSocket frame (clients must mask, RFC 6455 §5.3). */
function maskedFrame(payload: Uint8Array): Uint8Array {
  const len = payload.length;
  const headLen = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = new Uint8Array(headLen + 4 + len);
  out[0] = 0x82; // FIN + binary
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
  for (let i = 0; i < len; i++) out[headLen + 4 + i] = payload[i] ^ mask[i & 3];
  return out;
}

/**
 * Connects to `url` (`http://host:port`), upgrades on `/v1/ws` with `im.v1.msgpack`, sends
 * `authFrame` (with `id: 1`) and from then on never reads: the `ok` and everything after it
 * stay unread.
 */
export async function openStalled(
  url: string,
  authFrame: Record<string, unknown>,
): Promise<StalledClient> {
  const u = new URL(url);
  const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  const req = `GET /v1/ws HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
    `Sec-WebSocket-Protocol: im.v1.msgpack\r\n\r\n`;
  await conn.write(new TextEncoder().encode(req));
  // Read the upgrade answer (and nothing more than what arrives with it).
  const buf = new Uint8Array(4096);
  let head = "";
  while (!head.includes("\r\n\r\n")) {
    const n = await conn.read(buf);
    if (n === null) throw new Error("connection closed during the upgrade");
    head += new TextDecoder().decode(buf.subarray(0, n));
  }
  if (!head.startsWith("HTTP/1.1 101")) {
    conn.close();
    throw new Error(`upgrade refused: ${head.split("\r\n")[0]}`);
  }
  await conn.write(maskedFrame(packr.pack({ ...authFrame, id: 1 })));
  return {
    close() {
      try {
        conn.close();
      } catch { /* already closed */ }
    },
  };
}
