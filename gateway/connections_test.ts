import assert from "node:assert/strict";
import { type Connection, ConnectionRegistry } from "./connections.ts";
import { encodeFrames, SeqFrame } from "./frame_codec.ts";

function conn(id: string, userId: string): Connection & { frames: Record<string, unknown>[] } {
  const frames: Record<string, unknown>[] = [];
  return { id, userId, frames, push: (f) => frames.push(f), close: () => {} };
}

Deno.test("a delivery gives each user its own seq right after op, on every device", () => {
  const reg = new ConnectionRegistry();
  const a1 = conn("c1", "u_a");
  const a2 = conn("c2", "u_a");
  const b = conn("c3", "u_b");
  for (const c of [a1, a2, b]) reg.add(c);
  const frame = { op: "msg", mid: "m_1", conv: "g:g_1", ts: 1_795_000_000_000 };
  const n = reg.deliver([{ frame, users: ["u_a", "u_b", "u_gone"], seqs: [4, 9, 1] }]);
  assert.equal(n, 3);
  assert.deepEqual(a1.frames, [{
    op: "msg",
    seq: 4,
    mid: "m_1",
    conv: "g:g_1",
    ts: 1_795_000_000_000,
  }]);
  assert.deepEqual(Object.keys(b.frames[0]), ["op", "seq", "mid", "conv", "ts"]);
  assert.equal(b.frames[0].seq, 9);
  assert.equal(a1.frames[0], a2.frames[0], "one frame object per user, shared by its devices");
  assert.deepEqual(
    encodeFrames([b.frames[0]], "im.v1.msgpack"),
    encodeFrames([{ ...b.frames[0] }], "im.v1.msgpack"),
  );
});

Deno.test("a connection that takes fan-out copies gets one SeqFrame per user, encoding like the frame; others get the plain frame", () => {
  const reg = new ConnectionRegistry();
  const queued: Record<string, unknown[]> = { c1: [], c2: [] };
  const fast = (id: string, userId: string): Connection => ({
    ...conn(id, userId),
    pushSeq: (f) => queued[id].push(f),
  });
  const a1 = fast("c1", "u_a");
  const a2 = fast("c2", "u_a");
  const a3 = conn("c3", "u_a");
  for (const c of [a1, a2, a3]) reg.add(c);
  const frame = { op: "msg", mid: "m_1", conv: "g:g_1", ts: 1_795_000_000_000 };
  assert.equal(reg.deliver([{ frame, users: ["u_a"], seqs: [300] }]), 3);
  const [copy] = queued.c1 as SeqFrame[];
  assert.ok(copy instanceof SeqFrame);
  assert.equal(queued.c2[0], copy, "one copy per user, shared by its devices");
  assert.deepEqual(a3.frames, [{
    op: "msg",
    seq: 300,
    mid: "m_1",
    conv: "g:g_1",
    ts: 1_795_000_000_000,
  }]);
  for (const proto of ["im.v1.msgpack", "im.v1.json"] as const) {
    assert.deepEqual(encodeFrames([copy], proto), encodeFrames([{ ...a3.frames[0] }], proto));
  }
});

Deno.test("a delivery without seqs pushes the frame unchanged", () => {
  const reg = new ConnectionRegistry();
  const a = conn("c1", "u_a");
  reg.add(a);
  const frame = { op: "typing", from: "u_b" };
  reg.deliver([{ frame, users: ["u_a"] }]);
  assert.equal(a.frames[0], frame);
});

Deno.test("a user's connections are added and removed one by one, whatever their number", () => {
  const reg = new ConnectionRegistry();
  const a1 = conn("c1", "u_a");
  const a2 = conn("c2", "u_a");
  const a3 = conn("c3", "u_a");
  reg.add(a1);
  reg.add(a1); // idempotent
  assert.equal(reg.size, 1);
  assert.deepEqual([...reg.forUser("u_a")], [a1]);
  reg.add(a2);
  reg.add(a3);
  reg.add(a2);
  assert.equal(reg.size, 3);
  assert.equal(reg.users, 1);
  assert.deepEqual(new Set(reg.forUser("u_a")), new Set([a1, a2, a3]));
  reg.remove(a2);
  reg.remove(a2); // idempotent
  reg.remove(a1);
  assert.deepEqual([...reg.forUser("u_a")], [a3]);
  assert.deepEqual([...reg.all()], [a3]);
  reg.add(a1);
  assert.equal(reg.deliver([{ frame: { op: "typing" }, users: ["u_a"] }]), 2);
  reg.remove(a3);
  reg.remove(a1);
  assert.equal(reg.size, 0);
  assert.equal(reg.users, 0);
  assert.deepEqual([...reg.forUser("u_a")], []);
});
