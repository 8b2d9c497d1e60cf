import assert from "node:assert/strict";
import { decodeFrames, encodeFrames, type Frame } from "./codec.ts";

const frames: Frame[] = [
  { op: "send", id: 1, to: { user: "u_1" }, cmid: "c1", body: { type: "text", text: "hé\n" } },
  { op: "ack", seq: 2 ** 40 },
];

Deno.test("several frames round-trip in one message on both subprotocols", () => {
  for (const proto of ["im.v1.msgpack", "im.v1.json"] as const) {
    assert.deepEqual(decodeFrames(encodeFrames(frames, proto), proto), frames);
    assert.deepEqual(decodeFrames(encodeFrames([frames[1]], proto), proto), [frames[1]]);
  }
});

Deno.test("a message of the wrong kind or without an op is refused", () => {
  assert.throws(() => decodeFrames("{}", "im.v1.msgpack"), TypeError);
  assert.throws(() => decodeFrames('{"id":1}', "im.v1.json"), TypeError);
  assert.throws(() => decodeFrames(new Uint8Array([0x01]).buffer, "im.v1.msgpack"), TypeError);
});
