import assert from "node:assert/strict";
import { TcpWebSocket } from "./tcp_ws.ts";

/** A Deno.serve WebSocket server that echoes, and closes with 4001 on the text "bye". */
function echoServer() {
  const ac = new AbortController();
  const protocols: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    (req) => {
      protocols.push(req.headers.get("sec-websocket-protocol") ?? "");
      const { socket, response } = Deno.upgradeWebSocket(req, { protocol: "p.v1" });
      socket.binaryType = "arraybuffer";
      socket.onmessage = (e) => {
        if (e.data === "bye") socket.close(4001, "bye");
        else if (e.data === "ping") socket.send("pong");
        else socket.send(e.data);
      };
      return response;
    },
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  return {
    url,
    protocols,
    async stop() {
      ac.abort();
      await server.finished;
    },
  };
}

function nextMessage(ws: TcpWebSocket): Promise<Uint8Array | string> {
  return new Promise((resolve) => ws.onmessage = resolve);
}

Deno.test("TcpWebSocket echoes small and large binary messages and closes cleanly", async () => {
  const srv = echoServer();
  const ws = await TcpWebSocket.connect(srv.url, "/v1/ws", "p.v1");
  try {
    assert.deepEqual(srv.protocols, ["p.v1"]);
    for (const size of [0, 5, 125, 126, 65535, 65536, 300_000]) {
      const data = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
      const big = new Uint8Array(size);
      for (let o = 0; o < size; o += data.length) big.set(data.subarray(0, size - o), o);
      const got = nextMessage(ws);
      ws.send(big);
      assert.deepEqual(await got, big, `size ${size}`);
    }
    // Several frames sent in one turn leave in one write and arrive as separate messages.
    const seen: Uint8Array[] = [];
    const three = new Promise<void>((resolve) => {
      ws.onmessage = (d) => {
        seen.push(d as Uint8Array);
        if (seen.length === 3) resolve();
      };
    });
    ws.send(new Uint8Array([1]));
    ws.send(new Uint8Array([2, 2]));
    ws.send(new Uint8Array([3, 3, 3]));
    await three;
    assert.deepEqual(seen.map((s) => s.length), [1, 2, 3]);
  } finally {
    const closed = new Promise<number>((resolve) => ws.onclose = resolve);
    ws.close();
    assert.equal(await closed, 1000);
    assert.equal(ws.isOpen, false);
    await srv.stop();
  }
});

Deno.test("TcpWebSocket reports the server's close code exactly once", async () => {
  const srv = echoServer();
  const ws = await TcpWebSocket.connect(srv.url, "/", "p.v1");
  const codes: number[] = [];
  const closed = new Promise<void>((resolve) =>
    ws.onclose = (c) => {
      codes.push(c);
      resolve();
    }
  );
  // A text frame, built by hand since the client sends binary only.
  const text = new TextEncoder().encode("bye");
  const frame = new Uint8Array([0x81, 0x80 | text.length, 0, 0, 0, 0, ...text]);
  await ws.conn.write(frame);
  await closed;
  ws.close(); // after the end: a no-op
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(codes, [4001]);
  await srv.stop();
});

Deno.test("TcpWebSocket delivers text messages as strings", async () => {
  const srv = echoServer();
  const ws = await TcpWebSocket.connect(srv.url, "/", "p.v1");
  const text = new TextEncoder().encode("ping");
  const got = nextMessage(ws);
  await ws.conn.write(new Uint8Array([0x81, 0x80 | text.length, 0, 0, 0, 0, ...text]));
  assert.equal(await got, "pong");
  const closed = new Promise<number>((resolve) => ws.onclose = resolve);
  ws.close();
  assert.equal(await closed, 1000);
  await srv.stop();
});

Deno.test("TcpWebSocket rejects a refused upgrade", async () => {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    () => new Response("no", { status: 403 }),
  );
  await assert.rejects(
    TcpWebSocket.connect(`http://127.0.0.1:${server.addr.port}`, "/", "p.v1"),
    /upgrade refused: HTTP\/1.1 403/,
  );
  ac.abort();
  await server.finished;
});
