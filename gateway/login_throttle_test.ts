import assert from "node:assert/strict";
import { LoginThrottle } from "./login_throttle.ts";

function clock() {
  const c = { t: 0, now: () => c.t };
  return c;
}

Deno.test("failed attempts on one username are throttled whatever the address", () => {
  const c = clock();
  const t = new LoginThrottle({ perUserPerMinute: 3, perIpPerMinute: 100, now: c.now });
  for (let i = 0; i < 3; i++) assert.ok(t.attempt("alice", `10.0.0.${i}`));
  assert.equal(t.attempt("alice", "10.0.0.9"), null);
  assert.ok(t.attempt("bob", "10.0.0.9"), "another username is not affected");
  c.t += 20_000; // 3 per minute: one attempt back after 20 s
  assert.ok(t.attempt("alice", "10.0.0.9"));
  assert.equal(t.attempt("alice", "10.0.0.9"), null);
});

Deno.test("failed attempts from one address are throttled whatever the username", () => {
  const c = clock();
  const t = new LoginThrottle({ perUserPerMinute: 100, perIpPerMinute: 4, now: c.now });
  for (let i = 0; i < 4; i++) assert.ok(t.attempt(`user${i}`, "1.1.1.1"));
  assert.equal(t.attempt("user9", "1.1.1.1"), null);
  assert.ok(t.attempt("user9", "2.2.2.2"));
});

Deno.test("successful logins give their attempt back", () => {
  const t = new LoginThrottle({ perUserPerMinute: 2, perIpPerMinute: 2, now: () => 0 });
  for (let i = 0; i < 10; i++) t.attempt("alice", "1.1.1.1")!.succeeded();
  assert.ok(t.attempt("alice", "1.1.1.1"));
});

Deno.test("the throttle keeps a bounded number of buckets", () => {
  const c = clock();
  const t = new LoginThrottle({ perUserPerMinute: 1, perIpPerMinute: 1, maxKeys: 100, now: c.now });
  for (let i = 0; i < 1000; i++) t.attempt(`user${i}`, `ip${i}`);
  assert.ok(t.size.users <= 100 && t.size.ips <= 100, JSON.stringify(t.size));
});
