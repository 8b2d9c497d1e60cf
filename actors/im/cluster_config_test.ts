import assert from "node:assert/strict";
import { validateRuntimeChange } from "./cluster_config.ts";

Deno.test("runtime changes are checked field by field and unknown fields are refused", () => {
  assert.deepEqual(validateRuntimeChange({ rateLimitPerSec: 50, logLevel: "debug" }), {
    rateLimitPerSec: 50,
    logLevel: "debug",
  });
  assert.deepEqual(validateRuntimeChange({ groupMaxMembers: null }), { groupMaxMembers: null });
  for (
    const bad of [
      { rateLimitPerSec: 0 },
      { rateLimitPerSec: 1.5 },
      { maxFrameBytes: 100 },
      { logLevel: "loud" },
      { nope: 1 },
      [],
      null,
    ]
  ) {
    assert.throws(() => validateRuntimeChange(bad), { code: "bad_request" }, JSON.stringify(bad));
  }
});
