import assert from "node:assert/strict";
import {
  DEFAULT_RATE_LIMITS,
  type RateLimits,
  TokenBucket,
  UserRateLimiter,
} from "./rate_limit.ts";

function clock() {
  const c = { t: 0, now: () => c.t };
  return c;
}

const LIMITS: RateLimits = {
  request: { perConnection: 10, perUser: 15 },
  message: { perConnection: 2, perUser: 3 },
  presence: { perConnection: 1, perUser: 1 },
  floodCloseAfter: 5,
};

Deno.test("a token bucket allows its burst, then refills at its rate", () => {
  const c = clock();
  const b = new TokenBucket(2, 4, c.now);
  for (let i = 0; i < 4; i++) assert.ok(b.take());
  assert.equal(b.take(), false);
  c.t += 500; // half a second at 2/s: one token
  assert.ok(b.take());
  assert.equal(b.take(), false);
  c.t += 60_000; // never above the burst
  for (let i = 0; i < 4; i++) assert.ok(b.take());
  assert.equal(b.take(), false);
});

Deno.test("a connection is refused beyond its own burst and closed when the flood goes on", () => {
  const c = clock();
  const users = new UserRateLimiter(LIMITS, c.now);
  const conn = users.connect("u1");
  for (let i = 0; i < 4; i++) assert.equal(conn.check("message"), "allow");
  const decisions = Array.from({ length: 6 }, () => conn.check("message"));
  assert.deepEqual(decisions, ["refuse", "refuse", "refuse", "refuse", "refuse", "close"]);
});

Deno.test("an allowed frame resets the flood count", () => {
  const c = clock();
  const conn = new UserRateLimiter(LIMITS, c.now).connect("u1");
  for (let i = 0; i < 4; i++) conn.check("message");
  for (let i = 0; i < 5; i++) assert.equal(conn.check("message"), "refuse");
  c.t += 500;
  assert.equal(conn.check("message"), "allow");
  for (let i = 0; i < 5; i++) assert.equal(conn.check("message"), "refuse");
});

Deno.test("budgets are separate: a message flood leaves requests allowed", () => {
  const c = clock();
  const conn = new UserRateLimiter(LIMITS, c.now).connect("u1");
  while (conn.check("message") === "allow");
  assert.equal(conn.check("request"), "allow");
  assert.equal(conn.check("presence"), "allow");
});

Deno.test("a user's connections on one node share the per-user budget", () => {
  const c = clock();
  const users = new UserRateLimiter(LIMITS, c.now);
  const a = users.connect("u1");
  const b = users.connect("u1");
  const other = users.connect("u2");
  // per user: burst 6 messages; per connection: burst 4
  let allowed = 0;
  for (let i = 0; i < 10; i++) if (a.check("message") === "allow") allowed++;
  for (let i = 0; i < 10; i++) if (b.check("message") === "allow") allowed++;
  assert.equal(allowed, 6);
  assert.equal(other.check("message"), "allow");
});

Deno.test("per-user entries are dropped when the user's last connection is released", () => {
  const users = new UserRateLimiter(DEFAULT_RATE_LIMITS);
  const a = users.connect("u1");
  const b = users.connect("u1");
  assert.equal(users.size, 1);
  a.release();
  a.release(); // idempotent
  assert.equal(users.size, 1);
  b.release();
  assert.equal(users.size, 0);
});
