import assert from "node:assert/strict";
import { Hono } from "hono";
import type { Store } from "../db/store.ts";
import { openSqliteStore } from "../db/store_sqlite.ts";
import { authRoutes, type AuthRoutesDeps } from "./auth_routes.ts";
import { hashIterations, verifyPassword } from "./password.ts";
import { RegistrationThrottle } from "./registration_throttle.ts";
import { TokenService } from "./tokens.ts";

const SECRET = "test-secret-test-secret-test-secret!";
const ITER = 1000;

interface Ctx {
  app: Hono;
  store: Store;
  tokens: TokenService;
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Response>;
  register(username: string, password: string): Promise<string>;
}

async function withApp(
  fn: (ctx: Ctx) => Promise<void>,
  extra: Partial<AuthRoutesDeps> = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "auth_routes_test_" });
  const store = openSqliteStore(`${dir}/im.db`);
  try {
    await store.migrate();
    const tokens = new TokenService({ secret: SECRET, store });
    const app = new Hono();
    app.route("/", authRoutes({ store, tokens, passwordIterations: ITER, ...extra }));
    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      Promise.resolve(app.request(path, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: typeof body === "string" ? body : JSON.stringify(body),
      }));
    const register = async (username: string, password: string) => {
      const res = await post("/v1/auth/register", { username, password });
      assert.equal(res.status, 201);
      return ((await res.json()) as { userId: string }).userId;
    };
    await fn({ app, store, tokens, post, register });
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function expectError(res: Response, status: number, code: string): Promise<void> {
  const body = await res.json();
  assert.equal(res.status, status, JSON.stringify(body));
  assert.deepEqual(Object.keys(body), ["error"]);
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, "string");
  assert.ok(body.error.message.length > 0);
  assert.match(res.headers.get("content-type") ?? "", /application\/json/);
}

// ---- register

Deno.test("register creates an account and answers 201 with its u_ id", async () => {
  await withApp(async ({ post, store }) => {
    const res = await post("/v1/auth/register", { username: "alice", password: "password1" });
    assert.equal(res.status, 201);
    const body = await res.json();
    assert.deepEqual(Object.keys(body), ["userId"]);
    assert.match(body.userId, /^u_[a-z2-7]{20}$/);
    const user = await store.getUser(body.userId);
    assert.equal(user?.username, "alice");
    assert.equal(user?.disabled, false);
    // The password is stored hashed with the configured iterations.
    assert.notEqual(user?.passwordHash, "password1");
    assert.equal(hashIterations(user!.passwordHash), ITER);
    assert.equal(await verifyPassword("password1", user!.passwordHash), true);
  });
});

Deno.test("register uses the injected id maker", async () => {
  await withApp(async ({ post }) => {
    const res = await post("/v1/auth/register", { username: "alice", password: "password1" });
    assert.deepEqual(await res.json(), { userId: "u_fixed" });
  }, { newUserId: () => "u_fixed" });
});

Deno.test("register with a taken username answers 409 username_taken", async () => {
  await withApp(async ({ post, register }) => {
    await register("alice", "password1");
    const res = await post("/v1/auth/register", { username: "alice", password: "other-pass" });
    await expectError(res, 409, "username_taken");
  });
});

Deno.test("concurrent registrations of one username give one 201 and one 409", async () => {
  await withApp(async ({ post }) => {
    const [a, b] = await Promise.all([
      post("/v1/auth/register", { username: "race", password: "password1" }),
      post("/v1/auth/register", { username: "race", password: "password2" }),
    ]);
    assert.deepEqual([a.status, b.status].sort(), [201, 409]);
    const loser = a.status === 409 ? a : b;
    await expectError(loser, 409, "username_taken");
    await (a.status === 201 ? a : b).body?.cancel();
  });
});

Deno.test("register rejects invalid usernames and passwords with 400 bad_request", async () => {
  await withApp(async ({ post }) => {
    const cases = [
      { username: "ab", password: "password1" },
      { username: "x".repeat(33), password: "password1" },
      { username: "Alice", password: "password1" },
      { username: "al ice", password: "password1" },
      { username: "alicé", password: "password1" },
      { username: "alice", password: "short" },
      { username: "alice", password: "p".repeat(129) },
    ];
    for (const body of cases) {
      await expectError(await post("/v1/auth/register", body), 400, "bad_request");
    }
    // The boundaries are accepted.
    for (
      const body of [
        { username: "abc", password: "12345678" },
        { username: "a".repeat(32), password: "p".repeat(128) },
        { username: "a_b.c-d", password: "😀".repeat(128) },
      ]
    ) {
      const res = await post("/v1/auth/register", body);
      assert.equal(res.status, 201, JSON.stringify(body).slice(0, 60));
      await res.body?.cancel();
    }
  });
});

// ---- malformed bodies, every route

const ROUTES = ["/v1/auth/register", "/v1/auth/login", "/v1/auth/refresh"];

Deno.test("malformed JSON, non-object bodies and wrong types answer 400 bad_request on every route", async () => {
  await withApp(async ({ post }) => {
    for (const path of ROUTES) {
      for (const raw of ["", "{", "not json", '{"username":', "[]", "null", "42", '"str"']) {
        await expectError(await post(path, raw), 400, "bad_request");
      }
    }
    const wrongTypes: [string, unknown][] = [
      ["/v1/auth/register", {}],
      ["/v1/auth/register", { username: "alice" }],
      ["/v1/auth/register", { username: 5, password: "password1" }],
      ["/v1/auth/register", { username: "alice", password: 12345678 }],
      ["/v1/auth/register", { username: ["alice"], password: "password1" }],
      ["/v1/auth/login", {}],
      ["/v1/auth/login", { username: "alice", password: null }],
      ["/v1/auth/login", { username: {}, password: "password1" }],
      ["/v1/auth/login", { username: "alice", password: "password1", device: 7 }],
      ["/v1/auth/login", { username: "alice", password: "password1", device: "" }],
      ["/v1/auth/login", { username: "alice", password: "password1", device: "d".repeat(65) }],
      ["/v1/auth/login", { username: "alice", password: "password1", device: "a\nb" }],
      ["/v1/auth/refresh", {}],
      ["/v1/auth/refresh", { refreshToken: 1 }],
      ["/v1/auth/refresh", { refreshToken: null }],
    ];
    for (const [path, body] of wrongTypes) {
      await expectError(await post(path, body), 400, "bad_request");
    }
  });
});

Deno.test("a body that is not declared as JSON answers 400 bad_request on every route", async () => {
  await withApp(async ({ app }) => {
    const body = JSON.stringify({ username: "alice", password: "password1", refreshToken: "x" });
    for (const path of ROUTES) {
      for (const type of [undefined, "text/plain", "application/x-www-form-urlencoded"]) {
        const headers: Record<string, string> = type ? { "content-type": type } : {};
        const res = await app.request(path, { method: "POST", headers, body });
        await expectError(res, 400, "bad_request");
      }
    }
  });
});

Deno.test("a JSON content type with a charset parameter is accepted", async () => {
  await withApp(async ({ post }) => {
    const res = await post("/v1/auth/register", { username: "alice", password: "password1" }, {
      "content-type": "Application/JSON; charset=utf-8",
    });
    assert.equal(res.status, 201);
    await res.body?.cancel();
  });
});

Deno.test("a body over the size limit answers 413 with code bad_request", async () => {
  await withApp(async ({ post, app }) => {
    const big = { username: "alice", password: "password1", pad: "x".repeat(17 * 1024) };
    for (const path of ROUTES) {
      await expectError(await post(path, big), 413, "bad_request");
      // Also when the length is not announced (a stream).
      const stream = new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode(JSON.stringify(big)));
          controller.close();
        },
      });
      const res = await app.request(path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: stream,
      });
      await expectError(res, 413, "bad_request");
    }
  });
});

// ---- login

Deno.test("login answers 200 with userId, accessToken, refreshToken and expiresIn", async () => {
  await withApp(async ({ post, register, tokens }) => {
    const userId = await register("alice", "password1");
    const res = await post("/v1/auth/login", { username: "alice", password: "password1" });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.deepEqual(Object.keys(body).sort(), [
      "accessToken",
      "expiresIn",
      "refreshToken",
      "userId",
    ]);
    assert.equal(body.userId, userId);
    assert.equal(body.expiresIn, 900);
    assert.equal(typeof body.refreshToken, "string");
    const identity = await tokens.verifyAccess(body.accessToken);
    assert.equal(identity.userId, userId);
    assert.match(identity.device, /^d_/);
  });
});

Deno.test("login with a device puts that device in the access token", async () => {
  await withApp(async ({ post, register, tokens }) => {
    await register("alice", "password1");
    const res = await post("/v1/auth/login", {
      username: "alice",
      password: "password1",
      device: "Alice's phone",
    });
    const body = await res.json();
    assert.equal((await tokens.verifyAccess(body.accessToken)).device, "Alice's phone");
  });
});

Deno.test("login with a wrong password, unknown user or disabled account answers 401 invalid_credentials", async () => {
  await withApp(async ({ post, register, store }) => {
    const bob = await register("bob", "password1");
    await register("carol", "password1");
    await store.setUserDisabled(bob, true);
    const cases = [
      { username: "carol", password: "password2" },
      { username: "carol", password: "" },
      { username: "nobody", password: "password1" },
      { username: "bob", password: "password1" }, // disabled, right password
      { username: "Carol", password: "password1" }, // usernames are not case-folded
      { username: "x", password: "password1" }, // not even a valid username
    ];
    for (const body of cases) {
      await expectError(await post("/v1/auth/login", body), 401, "invalid_credentials");
    }
    const disabledBody = await (await post("/v1/auth/login", cases[3])).json();
    const unknownBody = await (await post("/v1/auth/login", cases[2])).json();
    // One answer for all: nothing tells a disabled or missing account from a wrong password.
    assert.deepEqual(disabledBody, unknownBody);
  });
});

Deno.test("login with an unknown user costs about as much as a wrong password", async () => {
  const iterations = 60_000;
  await withApp(async ({ post, register }) => {
    await register("dave", "password1");
    const time = async (body: unknown) => {
      const t0 = performance.now();
      const res = await post("/v1/auth/login", body);
      await res.body?.cancel();
      assert.equal(res.status, 401);
      return performance.now() - t0;
    };
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const wrong: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 5; i++) {
      wrong.push(await time({ username: "dave", password: "password2" }));
      unknown.push(await time({ username: "nobody", password: "password2" }));
    }
    const w = median(wrong), u = median(unknown);
    // Both run one PBKDF2 of the same cost; without the dummy verification the unknown user
    // would answer in well under a tenth of the time.
    assert.ok(u > w * 0.3 && u < w * 3.3, `wrong password ${w} ms, unknown user ${u} ms`);
  }, { passwordIterations: iterations });
});

// ---- refresh

Deno.test("refresh answers 200 with a new pair and the old refresh token stops working", async () => {
  await withApp(async ({ post, register, tokens }) => {
    const userId = await register("erin", "password1");
    const login = await (await post("/v1/auth/login", {
      username: "erin",
      password: "password1",
      device: "web",
    })).json();
    const res = await post("/v1/auth/refresh", { refreshToken: login.refreshToken });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.deepEqual(Object.keys(body).sort(), [
      "accessToken",
      "expiresIn",
      "refreshToken",
      "userId",
    ]);
    assert.equal(body.userId, userId);
    assert.equal(body.expiresIn, 900);
    assert.notEqual(body.refreshToken, login.refreshToken);
    assert.deepEqual(await tokens.verifyAccess(body.accessToken), { userId, device: "web" });
    // Reuse of the rotated token: 401, and the family (including the new token) is revoked.
    await expectError(
      await post("/v1/auth/refresh", { refreshToken: login.refreshToken }),
      401,
      "invalid_token",
    );
    await expectError(
      await post("/v1/auth/refresh", { refreshToken: body.refreshToken }),
      401,
      "invalid_token",
    );
  });
});

Deno.test("refresh with an unknown, malformed or disabled user's token answers 401 invalid_token", async () => {
  await withApp(async ({ post, register, store }) => {
    const userId = await register("frank", "password1");
    const login = await (await post("/v1/auth/login", {
      username: "frank",
      password: "password1",
    })).json();
    for (const refreshToken of ["", "garbage", "A".repeat(43), login.accessToken]) {
      await expectError(await post("/v1/auth/refresh", { refreshToken }), 401, "invalid_token");
    }
    await store.setUserDisabled(userId, true);
    await expectError(
      await post("/v1/auth/refresh", { refreshToken: login.refreshToken }),
      401,
      "invalid_token",
    );
  });
});

Deno.test("an expired refresh token answers 401 invalid_token", async () => {
  const dir = await Deno.makeTempDir({ prefix: "auth_routes_test_" });
  const store = openSqliteStore(`${dir}/im.db`);
  try {
    await store.migrate();
    let now = Date.now();
    const tokens = new TokenService({ secret: SECRET, store, clock: () => now, refreshTtlSec: 60 });
    const app = authRoutes({ store, tokens, passwordIterations: ITER });
    const post = (path: string, body: unknown) =>
      Promise.resolve(app.request(path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }));
    await (await post("/v1/auth/register", { username: "gina", password: "password1" })).json();
    const login = await (await post("/v1/auth/login", { username: "gina", password: "password1" }))
      .json();
    now += 60_000;
    await expectError(
      await post("/v1/auth/refresh", { refreshToken: login.refreshToken }),
      401,
      "invalid_token",
    );
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a store outage answers 503 unavailable without internal details", async () => {
  await withApp(async ({ post, store }) => {
    await store.close();
    for (
      const [path, body] of [
        ["/v1/auth/register", { username: "hank", password: "password1" }],
        ["/v1/auth/login", { username: "hank", password: "password1" }],
      ] as const
    ) {
      const res = await post(path, body);
      const json = await res.json();
      assert.equal(res.status, 503);
      assert.equal(json.error.code, "unavailable");
      assert.doesNotMatch(json.error.message, /sqlite/i);
    }
  });
});

Deno.test("registrations are throttled per client address with 429 rate_limited and Retry-After", async () => {
  const registrationThrottle = new RegistrationThrottle({ perIpPerHour: 2, now: () => 0 });
  await withApp(async ({ post }) => {
    const from = (ip: string) => ({ "x-test-ip": ip });
    // Input that breaks the rules is answered before the throttle: it costs nothing.
    for (let i = 0; i < 3; i++) {
      await expectError(
        await post("/v1/auth/register", { username: "x", password: "password1" }, from("a")),
        400,
        "bad_request",
      );
    }
    for (const name of ["ivan", "judy"]) {
      const res = await post(
        "/v1/auth/register",
        { username: name, password: "password1" },
        from("a"),
      );
      assert.equal(res.status, 201);
    }
    const refused = await post(
      "/v1/auth/register",
      { username: "kate", password: "password1" },
      from("a"),
    );
    assert.equal(refused.headers.get("retry-after"), "1800");
    await expectError(refused, 429, "rate_limited");
    const other = await post(
      "/v1/auth/register",
      { username: "kate", password: "password1" },
      from("b"),
    );
    assert.equal(other.status, 201, "another address has its own allowance");
  }, { registrationThrottle, clientIp: (c) => c.req.header("x-test-ip") ?? "" });
});

Deno.test("a registration the store could not serve gives its allowance back", async () => {
  const registrationThrottle = new RegistrationThrottle({ perIpPerHour: 1, now: () => 0 });
  await withApp(async ({ post, store }) => {
    await store.close();
    for (let i = 0; i < 3; i++) {
      await expectError(
        await post("/v1/auth/register", { username: "lena", password: "password1" }),
        503,
        "unavailable",
      );
    }
  }, { registrationThrottle });
});

Deno.test("other methods and paths are not routes of this app", async () => {
  await withApp(async ({ app }) => {
    assert.equal((await app.request("/v1/auth/login", { method: "GET" })).status, 404);
    assert.equal((await app.request("/v1/auth/nope", { method: "POST" })).status, 404);
  });
});
