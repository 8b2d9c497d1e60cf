import assert from "node:assert/strict";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import {
  BadRequestError,
  type ErrorCode,
  errorFromWire,
  ImError,
  UnavailableError,
} from "../actors/errors.ts";
import { errorBody, httpError, statusOf } from "./http_errors.ts";

interface Logged {
  level: "warn" | "error";
  msg: string;
  fields?: Record<string, unknown>;
}

function appThrowing(err: unknown, logged: Logged[] = []): Hono {
  const logger = {
    warn: (msg: string, fields?: Record<string, unknown>) =>
      logged.push({ level: "warn", msg, fields }),
    error: (msg: string, fields?: Record<string, unknown>) =>
      logged.push({ level: "error", msg, fields }),
  };
  const app = new Hono();
  app.onError((e, c) => httpError(c, e, logger));
  app.get("/boom", () => {
    throw err;
  });
  return app;
}

async function answer(err: unknown, logged?: Logged[]) {
  const res = await appThrowing(err, logged).request("/boom");
  return { status: res.status, body: await res.json(), headers: res.headers };
}

Deno.test("each client error code gets its status and keeps its message", async () => {
  const expected: [ErrorCode, number][] = [
    ["bad_request", 400],
    ["bad_frame", 400],
    ["invalid_credentials", 401],
    ["invalid_token", 401],
    ["unauthenticated", 401],
    ["forbidden", 403],
    ["not_member", 403],
    ["not_found", 404],
    ["username_taken", 409],
    ["rate_limited", 429],
  ];
  for (const [code, status] of expected) {
    assert.equal(statusOf(code), status);
    const res = await answer(new ImError(code, `message for ${code}`));
    assert.equal(res.status, status, code);
    assert.deepEqual(res.body, { error: { code, message: `message for ${code}` } });
  }
});

Deno.test("rate_limited answers carry Retry-After", async () => {
  const res = await answer(new ImError("rate_limited", "slow down"));
  assert.equal(res.headers.get("retry-after"), "1");
});

Deno.test("server-side codes answer 5xx with a fixed message and are logged", async () => {
  const expected: [ErrorCode, number][] = [
    ["internal", 500],
    ["unavailable", 503],
    ["overloaded", 503],
    ["timeout", 503],
    ["moved", 503],
    ["fenced", 503],
  ];
  for (const [code, status] of expected) {
    const logged: Logged[] = [];
    const res = await answer(
      new ImError(code, "SELECT * FROM secret_table at db.internal:5432"),
      logged,
    );
    assert.equal(res.status, status, code);
    assert.equal(res.body.error.code, code);
    assert.doesNotMatch(res.body.error.message, /secret_table|5432/);
    assert.equal(logged.length, 1);
    assert.equal(logged[0].level, code === "internal" ? "error" : "warn");
  }
  const res = await answer(new UnavailableError("pg down"));
  assert.deepEqual(res.body.error.code, "unavailable");
});

Deno.test("unknown errors answer 500 internal without leaking details", async () => {
  const logged: Logged[] = [];
  const res = await answer(new TypeError("cannot read x of undefined at /srv/app.ts"), logged);
  assert.equal(res.status, 500);
  assert.deepEqual(res.body, errorBody("internal", "Internal error"));
  assert.equal(logged.length, 1);
  assert.equal(logged[0].level, "error");
  // A code from another node that this one does not know is internal too.
  const foreign = await answer(errorFromWire({ code: "weird_code", message: "x" }));
  assert.equal(foreign.status, 500);
  assert.equal(foreign.body.error.code, "internal");
});

Deno.test("Hono HTTP exceptions keep their 4xx status with a fitting code", async () => {
  const cases: [number, string][] = [
    [400, "bad_request"],
    [401, "unauthenticated"],
    [403, "forbidden"],
    [404, "not_found"],
    [413, "bad_request"],
    [429, "rate_limited"],
  ];
  for (const [status, code] of cases) {
    const res = await answer(new HTTPException(status as 400, { message: "internal detail" }));
    assert.equal(res.status, status);
    assert.equal(res.body.error.code, code);
    assert.doesNotMatch(res.body.error.message, /internal detail/);
  }
  const server = await answer(new HTTPException(502, { message: "x" }));
  assert.equal(server.status, 500);
  assert.equal(server.body.error.code, "internal");
});

Deno.test("the error subclasses map through their code", async () => {
  const res = await answer(new BadRequestError("field x is missing"));
  assert.equal(res.status, 400);
  assert.deepEqual(res.body, { error: { code: "bad_request", message: "field x is missing" } });
});
