/**
 * Fuzzing every op handler through a real node (real WebSocket, real store): frames with every
 * registered op and random, ill-typed or extreme field values (wrong types, NaN, ±Infinity, -0,
 * 2^64, bigints, huge strings, control characters, prototype-looking ids, real ids of other
 * users and conversations), then raw garbage and oversized messages.
 *
 * The node must answer every request with exactly one `ok` or `error` whose code is a documented
 * snake_case code (never `internal`), keep the connection open for bad requests, close with 1007
 * for undecodable messages and 1009 for oversized ones, still answer a ping afterwards, and keep
 * its memory bounded.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { OpRegistry } from "../../gateway/op_registry.ts";
import { registerAllOps } from "../../gateway/ops_all.ts";
import { type F, type Proto, signUp, TestClient } from "../support/client.ts";
import { testNode } from "../support/node.ts";

/** Ops that end the caller's own account or session: fuzzed elsewhere, not in this loop. */
const SELF_DESTRUCTIVE = /(^|\.)(delete|logout|deactivate|disable)($|\.)/;
const FRAMES_PER_PROTO = 500;

const registered = (() => {
  const ops = new OpRegistry();
  registerAllOps(ops);
  return ops.ops().filter((op) => !SELF_DESTRUCTIVE.test(op));
})();

/** Field names the ops of docs/protocol.md use, plus a few nobody uses. */
const FIELDS = [
  "to",
  "cmid",
  "body",
  "conv",
  "before",
  "after",
  "limit",
  "seq",
  "name",
  "members",
  "member",
  "group",
  "groupId",
  "user",
  "userId",
  "users",
  "role",
  "mid",
  "cseq",
  "text",
  "type",
  "status",
  "from",
  "ts",
  "query",
  "reason",
  "until",
  "owner",
  "device",
  "token",
];

/** JSON of a frame with bigints and bytes shown (for failure messages). */
function show(f: unknown): string {
  return JSON.stringify(
    f,
    (_k, v) => typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? `bin(${v.length})` : v,
  ).slice(0, 500);
}

function uname(p: string): string {
  return `${p}_${crypto.randomUUID().slice(0, 8)}`;
}

Deno.test("every op answers hostile frames with one documented error and the node stays healthy", async () => {
  const node = await testNode({
    // The fuzzer wants to reach the handlers, not the rate limiter.
    RATE_LIMIT_PER_SEC: "100000",
    USER_RATE_LIMIT_PER_SEC: "100000",
    MESSAGE_RATE_PER_SEC: "100000",
    USER_MESSAGE_RATE_PER_SEC: "100000",
    PRESENCE_RATE_PER_SEC: "100000",
    USER_PRESENCE_RATE_PER_SEC: "100000",
    REQUEST_TIMEOUT_MS: "3000",
  });
  try {
    const a = await signUp(node.url, uname("fa"));
    const b = await signUp(node.url, uname("fb"));
    const setup = await TestClient.connect(node.url, a.accessToken);
    const g = await setup.request({ op: "group.create", name: "fuzz", members: [b.userId] });
    assert.equal(g.op, "ok");
    const sent = await setup.request({
      op: "send",
      to: { user: b.userId },
      cmid: "seed",
      body: { type: "text", text: "seed" },
    });
    assert.equal(sent.op, "ok");
    await setup.close();

    // Values a handler must survive: real ids, wrong types, extremes.
    const ids = [a.userId, b.userId, g.groupId, g.conv, sent.conv, "u_nobody", "__proto__"];
    const leaf: fc.Arbitrary<unknown> = fc.oneof(
      fc.constantFrom(...ids),
      fc.constantFrom(
        NaN,
        Infinity,
        -Infinity,
        -0,
        0,
        -1,
        2 ** 53,
        2 ** 64,
        Number.MAX_VALUE,
        Number.MIN_VALUE,
        1.5,
        2n ** 63n - 1n,
        -(2n ** 63n),
        true,
        false,
        null,
        "",
        "constructor",
        "toString",
        "hasOwnProperty",
        "\u0000\u0001\u001f",
        "\ud800",
        "x".repeat(5000),
        "g:",
        "d:",
        "d:a:b:c",
        `g:${g.groupId}`,
      ),
      fc.string({ maxLength: 80 }),
      fc.integer(),
      fc.double(),
      fc.uint8Array({ maxLength: 32 }),
    );
    const value = fc.letrec((tie) => ({
      v: fc.oneof(
        { depthSize: "small", withCrossShrink: true },
        leaf,
        fc.array(tie("v"), { maxLength: 4 }),
        fc.dictionary(fc.constantFrom(...FIELDS, "user", "group", "type", "text"), tie("v"), {
          maxKeys: 4,
        }),
      ),
    })).v;
    const random = fc.record({
      op: fc.constantFrom(...registered),
      fields: fc.dictionary(fc.constantFrom(...FIELDS), value, { maxKeys: 6 }),
    }).map(({ op, fields }) => ({ ...fields, op }) as F);
    // Nearly valid frames reach deeper than random ones: plausible values for every field an op
    // may read, with one or two of them replaced by hostile values.
    const plausible: F = {
      op: "",
      to: { group: g.groupId },
      cmid: "c1",
      body: { type: "text", text: "hi" },
      conv: g.conv,
      group: g.groupId,
      groupId: g.groupId,
      user: b.userId,
      userId: b.userId,
      members: [b.userId],
      name: "n",
      role: "admin",
      after: 0,
      limit: 10,
      before: 5,
      seq: 1,
    };
    const nearlyValid = fc.record({
      op: fc.constantFrom(...registered),
      changes: fc.dictionary(fc.constantFrom(...Object.keys(plausible).slice(1)), value, {
        minKeys: 1,
        maxKeys: 2,
      }),
    }).map(({ op, changes }) => ({ ...plausible, ...changes, op }) as F);
    const frame = fc.oneof(random, nearlyValid);

    for (const proto of ["im.v1.msgpack", "im.v1.json"] as Proto[]) {
      const c = await TestClient.connect(node.url, a.accessToken, proto);
      const frames = fc.sample(frame, { numRuns: FRAMES_PER_PROTO, seed: 4242 });
      const codes = new Map<string, number>();
      const heap0 = Deno.memoryUsage().heapUsed;
      for (const f of frames) {
        let wire: F = f;
        if (proto === "im.v1.json") {
          // JSON cannot carry bigints or bytes: send what a JSON client could.
          wire = JSON.parse(
            JSON.stringify(
              f,
              (_k, v) => typeof v === "bigint" ? Number(v) : v instanceof Uint8Array ? [...v] : v,
            ),
          );
        }
        const answer = await c.request({ ...wire, id: undefined }, 8000);
        assert.ok(answer.op === "ok" || answer.op === "error");
        if (answer.op === "error") {
          const code = String(answer.code);
          assert.match(code, /^[a-z][a-z_]*$/);
          if (code === "internal") assert.fail(`internal error for ${show(f)}`);
          assert.notEqual(code, "bad_frame", `${f.op}: a decodable frame is not a bad frame`);
          codes.set(code, (codes.get(code) ?? 0) + 1);
        }
        if (c.closeCode !== null) assert.fail(`closed ${c.closeCode} after ${show(f)}`);
      }
      const answered = c.frames.filter((x) => x.op === "ok" || x.op === "error").length;
      assert.equal(answered, FRAMES_PER_PROTO + 1, "exactly one answer per request (+ auth)");
      const pong = await c.request({ op: "ping" });
      assert.equal(pong.op, "ok");
      // Generous bound: a leak per frame would show as tens of MB over the run.
      const growth = Deno.memoryUsage().heapUsed - heap0;
      assert.ok(growth < 96 * 1024 * 1024, `heap grew ${(growth / 1048576).toFixed(1)} MiB`);
      if (Deno.env.get("FUZZ_DEBUG")) console.log(proto, registered, [...codes]);
      assert.ok((codes.get("bad_request") ?? 0) > 0, "the fuzzer reached the validators");
      await c.close();
    }
  } finally {
    await node.stop();
  }
});

Deno.test("garbage and oversized messages close the socket with 1007 or 1009 and the node serves on", async () => {
  const node = await testNode({ MAX_FRAME_BYTES: "4096" });
  try {
    const a = await signUp(node.url, uname("fg"));
    const garbage = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 512 }), {
      numRuns: 40,
      seed: 7,
    });
    let undecodable = 0;
    for (const bytes of garbage) {
      const c = await TestClient.connect(node.url, a.accessToken);
      c.sendRaw(bytes);
      // Either a decodable prefix was answered and the rest refused (1007), or the bytes
      // happened to form frames that were answered without closing.
      const code = await Promise.race([
        c.closed,
        c.request({ op: "ping", id: 999_999 }, 3000).then(() => 0).catch(() => -1),
      ]);
      assert.ok(code === 1007 || code === 0, `closed with ${code}`);
      if (code === 1007) {
        undecodable++;
        const err = c.frames.find((f) => f.op === "error" && f.code === "bad_frame");
        assert.ok(err, "bad_frame before the close");
      }
      await c.close();
    }
    assert.ok(undecodable > garbage.length / 2, `${undecodable} of ${garbage.length} refused`);

    for (const proto of ["im.v1.msgpack", "im.v1.json"] as Proto[]) {
      const big = await TestClient.connect(node.url, a.accessToken, proto);
      const huge = "x".repeat(5000);
      big.send({ op: "ping", id: 1, pad: huge });
      assert.equal(await big.closed, 1009);
      assert.equal(big.frames.length, 1, "only the auth answer: nothing processed");
    }

    const c = await TestClient.connect(node.url, a.accessToken);
    assert.equal((await c.request({ op: "ping" })).op, "ok");
    await c.close();
  } finally {
    await node.stop();
  }
});
