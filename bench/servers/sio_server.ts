/**
 * Baseline (b): Socket.IO 4 with the Redis adapter and the msgpack parser, websocket transport
 * only, doing what the generator's `sio` client expects:
 *
 * - handshake `auth: {user, rooms}`: the socket joins `u:<user>` and `g:<room>` for each room;
 * - event `send {to, cmid, body}` with an acknowledgement: emits one `msg` frame to the rooms of
 *   the recipient and the sender (direct) or of the group, then acknowledges `{mid, conv, ts}`;
 * - event `request` (setup) is acknowledged `{op: "ok"}`.
 *
 * Every emit goes through the Redis adapter (so several processes form one cluster, as Socket.IO
 * users run it). Env: `PORT`, `REDIS_URL`, `REDIS_PREFIX`.
 *
 * @module
 */
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import msgpackParser from "socket.io-msgpack-parser";
import { Redis } from "ioredis";

const pub = new Redis(Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379");
const sub = pub.duplicate();
const http = createServer();
const io = new Server(http, {
  transports: ["websocket"],
  parser: msgpackParser,
  adapter: createAdapter(pub, sub, { key: Deno.env.get("REDIS_PREFIX") ?? "sio" }),
  serveClient: false,
});
let mids = 0;
const nodeTag = Math.random().toString(36).slice(2, 6);

io.on("connection", (socket) => {
  const auth = socket.handshake.auth as { user: string; rooms?: string[] };
  const user = String(auth.user);
  socket.join([`u:${user}`, ...(auth.rooms ?? []).map((r) => `g:${r}`)]);
  socket.on("send", (req: { to: { user?: string; group?: string }; body: unknown }, ack) => {
    const mid = `m${nodeTag}${++mids}`;
    const ts = Date.now();
    const to = req.to;
    const conv = to.group ? `g:${to.group}` : `d:${user}:${to.user}`;
    const frame = { op: "msg", mid, conv, cseq: 0, from: user, to, ts, body: req.body };
    if (to.group) io.to(`g:${to.group}`).emit("msg", frame);
    else io.to([`u:${to.user}`, `u:${user}`]).emit("msg", frame);
    if (typeof ack === "function") ack({ mid, conv, cseq: 0, ts });
  });
  socket.on("request", (_frame: unknown, ack) => {
    if (typeof ack === "function") ack({ op: "ok" });
  });
});

http.on("request", (req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200);
    res.end("ok");
  }
});
http.listen(Number(Deno.env.get("PORT") ?? 0), "127.0.0.1", () => {
  console.error(`sio listening on ${(http.address() as { port: number }).port}`);
});
