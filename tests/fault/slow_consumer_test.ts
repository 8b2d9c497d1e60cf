/**
 * A slow consumer: a group member whose client authenticates and then stops reading its socket
 * while the group's traffic goes on. The node bounds what it queues for that socket
 * (MAX_SOCKET_BUFFER_BYTES) and closes it with 1008; the other members get every message and
 * the node's memory stays bounded.
 */
import assert from "node:assert/strict";
import { Packr } from "msgpackr";
import { type F, signUp, TestClient } from "../support/client.ts";
import { testNode } from "../support/node.ts";

const packr = new Packr({ useRecords: false });

/** A WebSocket client on a raw TCP socket that can stop reading. */
async function rawClient(base: string, token: string): Promise<Deno.TcpConn> {
  const url = new URL(base);
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  const req = [
    "GET /v1/ws HTTP/1.1",
    `Host: ${url.host}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${btoa("slowconsumer1234")}`,
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Protocol: im.v1.msgpack",
    "",
    "",
  ].join("\r\n");
  await conn.write(new TextEncoder().encode(req));
  const buf = new Uint8Array(4096);
  let head = "";
  while (!head.includes("\r\n\r\n")) {
    const n = await conn.read(buf);
    if (n === null) throw new Error("closed during the handshake");
    head += new TextDecoder().decode(buf.subarray(0, n));
  }
  assert.match(head, /^HTTP\/1\.1 101/);
  // One masked binary frame with the auth request (payload < 126 bytes... or 16-bit length).
  const payload = packr.pack({ op: "auth", id: 1, token }) as Uint8Array;
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const header = payload.length < 126
    ? [0x82, 0x80 | payload.length]
    : [0x82, 0x80 | 126, payload.length >> 8, payload.length & 255];
  const frame = new Uint8Array(header.length + 4 + payload.length);
  frame.set(header, 0);
  frame.set(mask, header.length);
  for (let i = 0; i < payload.length; i++) {
    frame[header.length + 4 + i] = payload[i] ^ mask[i % 4];
  }
  await conn.write(frame);
  return conn;
}

async function slowConsumersClosed(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("im_slow_consumers_closed_total"));
  return line ? Number(line.split(" ").pop()) : 0;
}

Deno.test("a member that stops reading is closed as a slow consumer; the others get everything", async () => {
  const node = await testNode({
    // Small enough that the test stays short, large enough that a reading socket that gets a
    // burst while the event loop is busy is never mistaken for a slow one.
    MAX_SOCKET_BUFFER_BYTES: String(1 << 20),
    MESSAGE_RATE_PER_SEC: "100000",
    USER_MESSAGE_RATE_PER_SEC: "100000",
  });
  let slow: Deno.TcpConn | null = null;
  try {
    const tag = crypto.randomUUID().slice(0, 6);
    const [s, f, r] = await Promise.all([
      signUp(node.url, `snd_${tag}`),
      signUp(node.url, `fast_${tag}`),
      signUp(node.url, `slow_${tag}`),
    ]);
    const sender = await TestClient.connect(node.url, s.accessToken);
    const fast = await TestClient.connect(node.url, f.accessToken);
    const g = await sender.request({
      op: "group.create",
      name: "firehose",
      members: [f.userId, r.userId],
    });
    slow = await rawClient(node.url, r.accessToken);
    // Let the auth land, then never read again.
    await new Promise((res) => setTimeout(res, 300));
    const heap0 = Deno.memoryUsage().heapUsed;

    const text = "z".repeat(9_000); // under the 10,000-character text limit
    const total = 2_000; // ~18 MB towards the slow socket: beyond kernel buffers and the cap
    const batch = 50;
    for (let i = 0; i < total; i += batch) {
      const frames: F[] = [];
      for (let j = i; j < i + batch; j++) {
        frames.push({
          op: "send",
          id: 1000 + j,
          to: { group: g.groupId },
          cmid: `big${j}`,
          body: { type: "text", text },
        });
      }
      // One WebSocket message per frame: each must stay under MAX_FRAME_BYTES.
      for (const fr of frames) sender.send(fr);
      await sender.waitFor((x) => x.re === 1000 + i + batch - 1, 15_000, true);
    }
    const oks = sender.frames.filter((x) => x.op === "ok" && (x.re as number) >= 1000);
    if (oks.length !== total) assert.fail(JSON.stringify(sender.frames.slice(-3)).slice(0, 500));
    await fast.waitForMsgs(total, 30_000);
    const cseqs = fast.msgs().map((m) => m.cseq as number);
    assert.deepEqual(cseqs, Array.from({ length: total }, (_, i) => i + 1));
    assert.ok((await slowConsumersClosed(node.url)) >= 1, "the slow socket was shed");
    assert.equal(node.registry.size, 2, "only the two readers are still connected");
    const growth = Deno.memoryUsage().heapUsed - heap0;
    assert.ok(growth < 128 * 1048576, `heap grew ${(growth / 1048576).toFixed(1)} MiB`);
    assert.equal((await fast.request({ op: "ping" })).op, "ok");
    await Promise.all([sender.close(), fast.close()]);
  } finally {
    try {
      slow?.close();
    } catch { /* closed by the server */ }
    await node.stop();
  }
});

Deno.test("a reading client that gets a burst larger than the buffer cap in one tick is not shed", async () => {
  const node = await testNode({ MAX_SOCKET_BUFFER_BYTES: String(256 * 1024) });
  try {
    const tag = crypto.randomUUID().slice(0, 6);
    const [a, b] = await Promise.all([
      signUp(node.url, `ba_${tag}`),
      signUp(node.url, `bb_${tag}`),
    ]);
    const sender = await TestClient.connect(node.url, a.accessToken);
    for (let i = 0; i < 30; i++) {
      const ok = await sender.request({
        op: "send",
        to: { user: b.userId },
        cmid: `burst${i}`,
        body: { type: "text", text: "q".repeat(9_000) },
      });
      assert.equal(ok.op, "ok");
    }
    // ~270 KB of msg frames leave in one flush, more than the cap: a burst, not a slow reader.
    const reader = await TestClient.connect(node.url, b.accessToken);
    const ok = await reader.request({ op: "sync", after: 0, limit: 30 });
    assert.equal(ok.op, "ok");
    assert.equal(reader.msgs().length, 30);
    assert.equal((await reader.request({ op: "ping" })).op, "ok");
    assert.equal(reader.closeCode, null);
    await Promise.all([sender.close(), reader.close()]);
  } finally {
    await node.stop();
  }
});
