import assert from "node:assert/strict";
import { RegistrationThrottle } from "./registration_throttle.ts";

function clock() {
  const c = { t: 0, now: () => c.t };
  return c;
}

Deno.test("registrations from one address are throttled, with the wait until the next one", () => {
  const c = clock();
  const t = new RegistrationThrottle({ perIpPerHour: 3, now: c.now });
  for (let i = 0; i < 3; i++) assert.ok("refund" in t.take("1.1.1.1"));
  // 3 per hour: one comes back every 20 minutes.
  assert.deepEqual(t.take("1.1.1.1"), { retryAfterSec: 1200 });
  assert.ok("refund" in t.take("2.2.2.2"), "another address is not affected");
  c.t += 600_000;
  assert.deepEqual(t.take("1.1.1.1"), { retryAfterSec: 600 });
  c.t += 600_000;
  assert.ok("refund" in t.take("1.1.1.1"));
  assert.ok("retryAfterSec" in t.take("1.1.1.1"));
});

Deno.test("a refunded registration gives its token back once", () => {
  const t = new RegistrationThrottle({ perIpPerHour: 1, now: () => 0 });
  const ticket = t.take("1.1.1.1");
  assert.ok("refund" in ticket);
  ticket.refund();
  ticket.refund();
  const again = t.take("1.1.1.1");
  assert.ok("refund" in again);
  assert.ok("retryAfterSec" in t.take("1.1.1.1"), "the double refund gave back only one");
});

Deno.test("the registration throttle keeps a bounded number of addresses", () => {
  const t = new RegistrationThrottle({ perIpPerHour: 1, maxKeys: 100, now: () => 0 });
  for (let i = 0; i < 1000; i++) t.take(`ip${i}`);
  assert.ok(t.size <= 100, String(t.size));
});

Deno.test("a registration throttle needs a positive rate", () => {
  assert.throws(() => new RegistrationThrottle({ perIpPerHour: 0 }), RangeError);
});
