/**
 * A WebSocket client that stops reading: the slow consumer of scenario 6.
 *
 * A WebSocket client always reads in the background, so a consumer that does not read is the
 * upgrade of bench/tcp_ws.ts without its read loop: one masked binary frame (`auth`), then
 * nothing is ever read again, so the server's writes pile up in the kernel buffers and then
 * in the server's socket buffer, until the server sheds the connection.
 *
 * @module
 */
import { Packr } from "msgpackr";
import { maskedFrame, upgrade } from "./tcp_ws.ts";

const packr = new Packr({ useRecords: false });

/** A connection that authenticated and then stopped reading. */
export interface StalledClient {
  /** Closes the TCP connection (idempotent). */
  close(): void;
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
  const { conn } = await upgrade(url, "/v1/ws", "im.v1.msgpack");
  await conn.write(maskedFrame(packr.pack({ ...authFrame, id: 1 })));
  return {
    close() {
      try {
        conn.close();
      } catch { /* already closed */ }
    },
  };
}
