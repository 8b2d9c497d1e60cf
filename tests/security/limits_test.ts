/**
 * Abuse limits through a real node: the Origin allowlist, the budget of unauthenticated sockets
 * per IP with the auth deadline, throttled logins (per username and per IP → 429
 * `rate_limited`), per-connection and per-user rate limits (`rate_limited`, then close 1008 when
 * the flood goes on), and the bound on frames queued behind an `auth` in flight.
 */
import assert from "node:assert/strict";
import { type F, signUp, TestClient } from "../support/client.ts";
import { testNode } from "../support/node.ts";

function uname(p: string): string {
  return `${p}_${crypto.randomUUID().slice(0, 8)}`;
}

/** A raw upgrade request (so headers such as Origin can be set); returns the status. */
async function upgradeStatus(base: string, headers: Record<string, string>): Promise<number> {
  const url = new URL(base);
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  try {
    const lines = [
      `GET /v1/ws HTTP/1.1`,
      `Host: ${url.host}`,
      `Upgrade: websocket`,
      `Connection: Upgrade`,
      `Sec-WebSocket-Key: ${btoa("0123456789abcdef")}`,
      `Sec-WebSocket-Version: 13`,
      `Sec-WebSocket-Protocol: im.v1.msgpack`,
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      "",
      "",
    ];
    await conn.write(new TextEncoder().encode(lines.join("\r\n")));
    const buf = new Uint8Array(1024);
    const n = await conn.read(buf);
    const head = new TextDecoder().decode(buf.subarray(0, n ?? 0));
    return Number(head.split(" ")[1]);
  } finally {
    conn.close();
  }
}

const loginReq = (base: string, username: string, password: string) =>
  fetch(`${base}/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password }),
  }).then(async (r) => ({ status: r.status, body: await r.json() }));

Deno.test("the WebSocket upgrade is refused for an Origin outside the allowlist", async () => {
  const node = await testNode({ ALLOWED_ORIGINS: "https://chat.example, https://app.example" });
  try {
    assert.equal(await upgradeStatus(node.url, { Origin: "https://chat.example" }), 101);
    assert.equal(await upgradeStatus(node.url, { Origin: "https://app.example" }), 101);
    assert.equal(await upgradeStatus(node.url, { Origin: "https://evil.example" }), 403);
    assert.equal(await upgradeStatus(node.url, { Origin: "https://chat.example.evil" }), 403);
    assert.equal(await upgradeStatus(node.url, { Origin: "null" }), 403);
    // Non-browser clients send no Origin: they are not subject to the browser-only check.
    assert.equal(await upgradeStatus(node.url, {}), 101);
  } finally {
    await node.stop();
  }
});

Deno.test("an IP gets a bounded number of unauthenticated sockets; auth or the deadline frees them", async () => {
  const node = await testNode({ MAX_UNAUTH_PER_IP: "3", AUTH_TIMEOUT_MS: "1500" });
  const open: TestClient[] = [];
  try {
    const user = await signUp(node.url, uname("ip"));
    for (let i = 0; i < 3; i++) open.push(await TestClient.open(node.url));
    assert.equal(await upgradeStatus(node.url, {}), 429);
    // One authenticates: its place is freed.
    assert.equal((await open[0].request({ op: "auth", token: user.accessToken })).op, "ok");
    const fourth = await TestClient.open(node.url);
    open.push(fourth);
    assert.equal(await upgradeStatus(node.url, {}), 429);
    // The others hit the auth deadline (4401) and free theirs.
    assert.deepEqual(
      await Promise.all([open[1].closed, open[2].closed, fourth.closed]),
      [4401, 4401, 4401],
    );
    const late = await TestClient.connect(node.url, user.accessToken);
    open.push(late);
    assert.equal((await late.request({ op: "ping" })).op, "ok");
  } finally {
    for (const c of open) await c.close();
    await node.stop();
  }
});

Deno.test("failed logins are throttled per username and per IP with 429 rate_limited", async () => {
  const node = await testNode({
    LOGIN_ATTEMPTS_PER_USER_PER_MIN: "3",
    LOGIN_ATTEMPTS_PER_IP_PER_MIN: "8",
  });
  try {
    const name = uname("victim");
    await signUp(node.url, name);
    // Correct logins cost nothing.
    for (let i = 0; i < 5; i++) {
      assert.equal((await loginReq(node.url, name, "correct horse battery")).status, 200);
    }
    // Concurrent guesses cannot outrun the count.
    const guesses = await Promise.all(
      Array.from({ length: 6 }, (_, i) => loginReq(node.url, name, `wrong password ${i}`)),
    );
    const statuses = guesses.map((g) => g.status).sort();
    assert.deepEqual(statuses, [401, 401, 401, 429, 429, 429]);
    const limited = guesses.find((g) => g.status === 429)!;
    assert.equal(limited.body.error.code, "rate_limited");
    // The right password is refused too while the username is throttled (no oracle).
    assert.equal((await loginReq(node.url, name, "correct horse battery")).status, 429);

    // Per IP: spraying other usernames from the same address runs out too (8 per minute, 3 used).
    const sprayed: number[] = [];
    for (let i = 0; i < 8; i++) {
      sprayed.push((await loginReq(node.url, uname("nobody"), "whatever pass")).status);
    }
    assert.deepEqual(sprayed, [401, 401, 401, 401, 401, 429, 429, 429]);
  } finally {
    await node.stop();
  }
});

Deno.test("registrations from one address are throttled with 429 rate_limited and Retry-After", async () => {
  const node = await testNode({ REGISTRATIONS_PER_IP_PER_HOUR: "2" });
  const register = (username: string) =>
    fetch(`${node.url}/v1/auth/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username, password: "correct horse battery" }),
    });
  try {
    // Concurrent registrations cannot outrun the count either.
    const names = Array.from({ length: 4 }, (_, i) => uname(`reg${i}`));
    const all = await Promise.all(names.map(register));
    const statuses = all.map((r) => r.status).sort();
    assert.deepEqual(statuses, [201, 201, 429, 429]);
    const refused = all.find((r) => r.status === 429)!;
    assert.ok(Number(refused.headers.get("retry-after")) >= 1);
    assert.equal((await refused.json()).error.code, "rate_limited");
    for (const r of all) if (!r.bodyUsed) await r.body?.cancel();
    // The accounts that were let through work; logins are not counted against registrations.
    const created = names.filter((_, i) => all[i].status === 201);
    for (const name of created) {
      assert.equal((await loginReq(node.url, name, "correct horse battery")).status, 200);
    }
  } finally {
    await node.stop();
  }
});

function sendFrame(id: number, to: string): F {
  return { op: "send", id, to: { user: to }, cmid: `m${id}`, body: { type: "text", text: "x" } };
}

Deno.test("a message flood on one connection is answered rate_limited, then closed with 1008", async () => {
  const node = await testNode({ MESSAGE_RATE_PER_SEC: "5", FLOOD_CLOSE_AFTER: "20" });
  try {
    const a = await signUp(node.url, uname("fl"));
    const b = await signUp(node.url, uname("fl"));
    const c = await TestClient.connect(node.url, a.accessToken);
    // Burst 10 passes, the next are refused without being processed; requests still pass.
    // (ids from 1000: the auth request took the client's first ids)
    const frames = Array.from({ length: 15 }, (_, i) => sendFrame(1000 + i, b.userId));
    c.send(...frames, { op: "ping", id: 2000 });
    const answers = await Promise.all(
      [...frames, { id: 2000 }].map((f) => c.waitFor((x) => x.re === f.id, 5000, true)),
    );
    const codes = answers.map((x) => x.op === "ok" ? "ok" : String(x.code));
    assert.deepEqual(codes.slice(0, 10), Array(10).fill("ok"));
    assert.deepEqual(codes.slice(10, 15), Array(5).fill("rate_limited"));
    assert.equal(codes[15], "ok", "the request budget is separate");
    const h = await c.request({ op: "history", conv: answers[0].conv, limit: 50 });
    assert.equal((h.messages as F[]).length, 10, "refused sends were not stored");
    // The flood goes on: closed with 1008.
    c.send(...Array.from({ length: 30 }, (_, i) => sendFrame(200 + i, b.userId)));
    assert.equal(await c.closed, 1008);
  } finally {
    await node.stop();
  }
});

Deno.test("a user's connections on one node share the per-user budget", async () => {
  const node = await testNode({ MESSAGE_RATE_PER_SEC: "100", USER_MESSAGE_RATE_PER_SEC: "4" });
  try {
    const a = await signUp(node.url, uname("pu"));
    const b = await signUp(node.url, uname("pu"));
    const c1 = await TestClient.connect(node.url, a.accessToken);
    const c2 = await TestClient.connect(node.url, a.accessToken);
    const other = await TestClient.connect(node.url, b.accessToken);
    const f1 = Array.from({ length: 6 }, (_, i) => sendFrame(1000 + i, b.userId));
    const f2 = Array.from({ length: 6 }, (_, i) => sendFrame(1050 + i, b.userId));
    c1.send(...f1);
    c2.send(...f2);
    const answers = await Promise.all([
      ...f1.map((f) => c1.waitFor((x) => x.re === f.id, 5000, true)),
      ...f2.map((f) => c2.waitFor((x) => x.re === f.id, 5000, true)),
    ]);
    const ok = answers.filter((x) => x.op === "ok").length;
    assert.equal(ok, 8, "burst of 2 × 4 shared by both connections");
    // Another user is not affected.
    assert.equal((await other.request(sendFrame(1000, a.userId))).op, "ok");
    await Promise.all([c1.close(), c2.close(), other.close()]);
  } finally {
    await node.stop();
  }
});

Deno.test("acks and unknown ops draw on the request budget; silent acks are dropped, not answered", async () => {
  const node = await testNode({ RATE_LIMIT_PER_SEC: "3", FLOOD_CLOSE_AFTER: "1000" });
  try {
    const a = await signUp(node.url, uname("ack"));
    const c = await TestClient.connect(node.url, a.accessToken);
    c.send(...Array.from({ length: 20 }, () => ({ op: "ack", seq: 0 })));
    const answer = await c.request({ op: "nonsense" });
    assert.equal(answer.code, "rate_limited");
    assert.equal(c.frames.filter((f) => f.re === undefined && f.op === "error").length, 0);
    await c.close();
  } finally {
    await node.stop();
  }
});

Deno.test("frames queued behind an auth in flight are bounded", async () => {
  const node = await testNode({});
  try {
    const a = await signUp(node.url, uname("q"));
    const c = await TestClient.open(node.url);
    // One message: auth then far more frames than may wait for it.
    const frames: F[] = [{ op: "auth", id: 1, token: a.accessToken }];
    for (let i = 0; i < 400; i++) frames.push({ op: "ping", id: i + 2 });
    c.send(...frames);
    assert.equal(await c.closed, 1008);
  } finally {
    await node.stop();
  }
});
