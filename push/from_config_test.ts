import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../config.ts";
import { createLogger } from "../observability/log.ts";
import type { StoredMessage } from "../db/store.ts";
import { notifierFromConfig, offlinePushHook } from "./from_config.ts";

Deno.test("the webhook is chosen by PUSH_WEBHOOK_URL with its secret, the log adapter otherwise", async () => {
  const logger = createLogger({ level: "error" });
  const plain = notifierFromConfig(loadConfig({}), logger);
  assert.equal(plain.kind, "log");
  await plain.close();
  const hook = notifierFromConfig(
    loadConfig({
      PUSH_WEBHOOK_URL: "https://push.example/hook",
      PUSH_WEBHOOK_SECRET: "0123456789abcdef",
    }),
    logger,
  );
  assert.equal(hook.kind, "webhook");
  await hook.close();
});

Deno.test("push configuration errors name the variable", () => {
  const bad = (env: Record<string, string>, pattern: RegExp) =>
    assert.throws(
      () => loadConfig(env),
      (e) => e instanceof ConfigError && pattern.test(e.message),
    );
  bad({ PUSH_WEBHOOK_URL: "https://push.example/hook" }, /PUSH_WEBHOOK_SECRET/);
  bad({ PUSH_WEBHOOK_SECRET: "0123456789abcdef" }, /PUSH_WEBHOOK_URL/);
  bad({ PUSH_WEBHOOK_URL: "https://push.example/", PUSH_WEBHOOK_SECRET: "short" }, /16 bytes/);
  bad(
    { PUSH_WEBHOOK_URL: "ftp://push.example/", PUSH_WEBHOOK_SECRET: "0123456789abcdef" },
    /PUSH_WEBHOOK_URL/,
  );
});

Deno.test("the log adapter writes one debug line of ids per notice, never the text", async () => {
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", sink: (l) => lines.push(l) });
  const n = notifierFromConfig({}, logger);
  const notice = {
    userId: "u_b",
    mid: "m_1",
    conv: "d:u_a:u_b",
    cseq: 3,
    from: "u_a",
    ts: 1,
    bodyType: "text",
  };
  assert.equal(n.notify(notice), true);
  assert.equal(lines.length, 1);
  const line = JSON.parse(lines[0]);
  assert.equal(line.level, "debug");
  assert.deepEqual(
    [line.msg, line.userId, line.conv, line.mid, line.from, line.bodyType],
    ["offline push", "u_b", "d:u_a:u_b", "m_1", "u_a", "text"],
  );
  assert.equal(n.stats().sent, 1);
  await n.close();
  assert.equal(n.notify(notice), false, "closed");
});

Deno.test("the delivered hook asks every recipient but the sender, and never for system messages", async () => {
  const told: [string, string, unknown][] = [];
  const hook = offlinePushHook((to, type, body) => told.push([to, type, body]));
  const message: StoredMessage = {
    mid: "m_1",
    conv: "g:g_1",
    cseq: 4,
    from: "u_a",
    to: { group: "g_1" },
    ts: 9,
    body: { type: "text", text: "not forwarded" },
    cmid: "c1",
  };
  await hook({
    actorId: "group/g_1",
    event: "delivered",
    payload: { message, users: ["u_a", "u_b", "u_c"] },
  });
  assert.deepEqual(
    told,
    ["u_b", "u_c"].map((u) => [`user/${u}`, "push.offline", {
      mid: "m_1",
      conv: "g:g_1",
      cseq: 4,
      from: "u_a",
      ts: 9,
      bodyType: "text",
    }]),
  );
  told.length = 0;
  await hook({
    actorId: "group/g_1",
    event: "delivered",
    payload: { message: { ...message, body: { type: "system" } }, users: ["u_b"] },
  });
  assert.deepEqual(told, []);
});

Deno.test("recipients connected to this node are skipped without a message", async () => {
  const told: string[] = [];
  const hook = offlinePushHook((to) => told.push(to), (user) => user === "u_b");
  const message: StoredMessage = {
    mid: "m_1",
    conv: "g:g_1",
    cseq: 1,
    from: "u_a",
    to: { group: "g_1" },
    ts: 1,
    body: { type: "image" },
    cmid: "c1",
  };
  await hook({
    actorId: "group/g_1",
    event: "delivered",
    payload: { message, users: ["u_a", "u_b", "u_c"] },
  });
  assert.deepEqual(told, ["user/u_c"]);
});
