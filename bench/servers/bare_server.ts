/**
 * Baseline (a): a bare `Deno.serve` WebSocket server with no logic, the physical limit of one
 * Deno process on this machine. It speaks the frames the generator sends on `im.v1.msgpack`:
 *
 * - `auth {token: <userId>, rooms}`: remembers the socket under the user and each room → `ok`;
 * - `send {to: {user} | {group}}`: answers `ok`, and pushes one `msg` frame (encoded once) to
 *   every socket of the recipient and of the sender (direct), or of the room (group);
 * - anything else with an `id` → `ok`; `ack` is dropped.
 *
 * Nothing is stored, checked or sequenced. Output queued for one socket in one tick leaves as one
 * WebSocket message, as the real server does. Env: `PORT`.
 *
 * @module
 */
import { Packr, Unpackr } from "msgpackr";

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" });

interface Conn {
  ws: WebSocket;
  user: string;
  out: Uint8Array[];
  scheduled: boolean;
}

const byUser = new Map<string, Set<Conn>>();
const byRoom = new Map<string, Set<Conn>>();
let mids = 0;

function join(map: Map<string, Set<Conn>>, key: string, c: Conn) {
  let s = map.get(key);
  if (!s) map.set(key, s = new Set());
  s.add(c);
}

function flush(c: Conn) {
  c.scheduled = false;
  const parts = c.out;
  c.out = [];
  if (c.ws.readyState !== WebSocket.OPEN || parts.length === 0) return;
  if (parts.length === 1) {
    c.ws.send(parts[0]);
    return;
  }
  let n = 0;
  for (const p of parts) n += p.length;
  const buf = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    buf.set(p, o);
    o += p.length;
  }
  c.ws.send(buf);
}

function push(c: Conn, bytes: Uint8Array) {
  c.out.push(bytes);
  if (!c.scheduled) {
    c.scheduled = true;
    queueMicrotask(() => flush(c));
  }
}

function onFrame(c: Conn, f: Record<string, unknown>) {
  if (f.op === "auth") {
    c.user = String(f.token);
    join(byUser, c.user, c);
    for (const r of (f.rooms as string[] | undefined) ?? []) join(byRoom, r, c);
    push(c, packr.pack({ op: "ok", re: f.id, userId: c.user, seq: 0 }));
    return;
  }
  if (f.op === "send") {
    const to = f.to as { user?: string; group?: string };
    const mid = `m${++mids}`;
    const ts = Date.now();
    const conv = to.group ? `g:${to.group}` : `d:${c.user}:${to.user}`;
    push(c, packr.pack({ op: "ok", re: f.id, mid, conv, cseq: 0, ts }));
    const bytes = packr.pack({ op: "msg", mid, conv, cseq: 0, from: c.user, to, ts, body: f.body });
    if (to.group) {
      for (const r of byRoom.get(to.group) ?? []) push(r, bytes);
    } else {
      for (const r of byUser.get(to.user!) ?? []) push(r, bytes);
      if (to.user !== c.user) { for (const r of byUser.get(c.user) ?? []) push(r, bytes); }
    }
    return;
  }
  if (f.id !== undefined) push(c, packr.pack({ op: "ok", re: f.id }));
}

function drop(c: Conn) {
  byUser.get(c.user)?.delete(c);
  for (const s of byRoom.values()) s.delete(c);
}

Deno.serve({
  port: Number(Deno.env.get("PORT") ?? 0),
  hostname: "127.0.0.1",
  onListen: ({ port }) => console.error(`bare listening on ${port}`),
}, (req) => {
  if (new URL(req.url).pathname === "/healthz") return new Response("ok");
  const { socket, response } = Deno.upgradeWebSocket(req, { protocol: "im.v1.msgpack" });
  const c: Conn = { ws: socket, user: "", out: [], scheduled: false };
  socket.binaryType = "arraybuffer";
  socket.onmessage = (ev) => {
    const frames = unpackr.unpackMultiple(new Uint8Array(ev.data as ArrayBuffer)) as Record<
      string,
      unknown
    >[];
    for (const f of frames) onFrame(c, f);
  };
  socket.onclose = () => drop(c);
  socket.onerror = () => {};
  return response;
});
