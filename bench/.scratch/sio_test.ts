import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import msgpackParser from "socket.io-msgpack-parser";
import { io as ioc } from "socket.io-client";
import { Redis } from "ioredis";
import { createServer } from "node:http";
import * as hdr from "hdr-histogram-js";

const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
for (let i = 1; i <= 1000; i++) h.recordValue(i);
console.log("hdr p99", h.getValueAtPercentile(99), h.maxValue, h.totalCount);
const enc = hdr.encodeIntoCompressedBase64(h);
console.log("encoded", enc.length, hdr.decodeFromCompressedBase64(enc).getValueAtPercentile(50));

const pub = new Redis("redis://127.0.0.1:6379");
const sub = pub.duplicate();
const http = createServer();
const io = new Server(http, { transports: ["websocket"], parser: msgpackParser, adapter: createAdapter(pub, sub, { key: "benchtest" }) });
io.on("connection", (s) => {
  s.join("room1");
  s.on("send", (data, ack) => { io.to("room1").emit("msg", data); ack?.({ ok: 1 }); });
});
await new Promise<void>((r) => http.listen(0, "127.0.0.1", () => r()));
const port = (http.address() as { port: number }).port;
console.log("listening", port);
const c = ioc(`http://127.0.0.1:${port}`, { transports: ["websocket"], parser: msgpackParser });
await new Promise<void>((r) => c.on("connect", () => r()));
const got = new Promise((r) => c.on("msg", (d) => r(d)));
const ack = await c.emitWithAck("send", { t: Date.now(), x: "hi" });
console.log("ack", ack, "msg", await got);
c.close(); io.close(); pub.quit(); sub.quit();
