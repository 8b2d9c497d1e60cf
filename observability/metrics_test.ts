import assert from "node:assert/strict";
import { MetricsRegistry } from "./metrics.ts";

Deno.test("counter labels render sorted and escaped, whatever their number", () => {
  const reg = new MetricsRegistry();
  const c = reg.counter("im_test_total", "Test");
  c.inc({ op: "send" });
  c.inc({ op: "send" }, 2);
  c.inc({ op: 'we"ird\\\n' });
  c.inc({ z: "1", a: "2" });
  assert.equal(c.get({ op: "send" }), 3);
  assert.equal(c.get({ a: "2", z: "1" }), 1);
  const text = reg.render();
  assert.match(text, /^im_test_total\{op="send"\} 3$/m);
  assert.match(text, /^im_test_total\{op="we\\"ird\\\\\\n"\} 1$/m);
  assert.match(text, /^im_test_total\{a="2",z="1"\} 1$/m);
});
