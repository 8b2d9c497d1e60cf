import assert from "node:assert/strict";
import { createLogger } from "../observability/log.ts";
import { startPushReceiver } from "../tests/support/push_receiver.ts";
import type { PushNotice } from "./notifier.ts";
import { createWebhookNotifier } from "./notifier_webhook.ts";

const SECRET = "unit-test-secret-abcdef";
const quiet = createLogger({ level: "error" });

function notice(i: number): PushNotice {
  return {
    userId: `u_${i}`,
    mid: `m_${i}`,
    conv: "d:u_a:u_b",
    cseq: i,
    from: "u_a",
    ts: 1_700_000_000_000 + i,
    bodyType: "text",
  };
}

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test("a webhook notice is a signed JSON POST with a delivery id and no other fields", async () => {
  const receiver = await startPushReceiver(SECRET);
  const n = createWebhookNotifier({ url: receiver.url, secret: SECRET, logger: quiet });
  try {
    assert.equal(n.notify(notice(1)), true);
    const [got] = await receiver.waitFor(1);
    assert.equal(got.signatureValid, true);
    assert.deepEqual(got.body, { type: "message", id: got.body.id, ...notice(1) });
    assert.equal(got.headers.get("x-im-delivery"), got.body.id);
    const ts = Number(got.headers.get("x-im-timestamp"));
    assert.ok(Math.abs(Date.now() - ts) < 5000);
    await until(() => n.stats().sent === 1);
    assert.deepEqual(n.stats(), { pending: 0, sent: 1, failed: 0, dropped: 0, retries: 0 });
  } finally {
    await n.close();
    await receiver.close();
  }
});

Deno.test("a signature made with another secret does not verify", async () => {
  const receiver = await startPushReceiver("a-different-secret-xyz");
  const n = createWebhookNotifier({ url: receiver.url, secret: SECRET, logger: quiet });
  try {
    n.notify(notice(1));
    const [got] = await receiver.waitFor(1);
    assert.equal(got.signatureValid, false);
  } finally {
    await n.close();
    await receiver.close();
  }
});

Deno.test("5xx and 429 answers are retried with growing delays and the same delivery id", async () => {
  const receiver = await startPushReceiver(SECRET);
  receiver.failWith.push(500, 429, 503);
  const n = createWebhookNotifier({
    url: receiver.url,
    secret: SECRET,
    logger: quiet,
    baseDelayMs: 40,
  });
  try {
    n.notify(notice(7));
    const attempts = await receiver.waitFor(4);
    const ids = new Set(attempts.map((a) => a.body.id));
    assert.equal(ids.size, 1, "one notice, four attempts");
    assert.ok(attempts.every((a) => a.signatureValid));
    const times = attempts.map((a) => Number(a.headers.get("x-im-timestamp")));
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    // Delays are in the upper half of 40, 80, 160 ms.
    assert.ok(gaps[0] >= 20 && gaps[1] >= 40 && gaps[2] >= 80, `gaps ${gaps}`);
    await until(() => n.stats().sent === 1);
    assert.deepEqual(n.stats(), { pending: 0, sent: 1, failed: 0, dropped: 0, retries: 3 });
  } finally {
    await n.close();
    await receiver.close();
  }
});

Deno.test("a 4xx refusal is not retried, and attempts stop at maxAttempts", async () => {
  const receiver = await startPushReceiver(SECRET);
  receiver.failWith.push(400, 500, 500, 500);
  const n = createWebhookNotifier({
    url: receiver.url,
    secret: SECRET,
    logger: quiet,
    baseDelayMs: 5,
    maxAttempts: 3,
  });
  try {
    n.notify(notice(1));
    await until(() => n.stats().failed === 1);
    n.notify(notice(2));
    await until(() => n.stats().failed === 2);
    assert.equal(receiver.received.filter((r) => r.body.mid === "m_1").length, 1);
    assert.equal(receiver.received.filter((r) => r.body.mid === "m_2").length, 3);
    assert.deepEqual(n.stats(), { pending: 0, sent: 0, failed: 2, dropped: 0, retries: 2 });
  } finally {
    await n.close();
    await receiver.close();
  }
});

Deno.test("an unreachable receiver is retried until the attempts run out", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close(); // nothing listens there now
  const n = createWebhookNotifier({
    url: `http://127.0.0.1:${port}/`,
    secret: SECRET,
    logger: quiet,
    baseDelayMs: 5,
    maxAttempts: 3,
  });
  try {
    n.notify(notice(1));
    await until(() => n.stats().failed === 1);
    assert.equal(n.stats().retries, 2);
  } finally {
    await n.close();
  }
});

Deno.test("a receiver slower than the timeout is aborted and retried", async () => {
  let calls = 0;
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    await req.text();
    if (++calls === 1) await new Promise((r) => setTimeout(r, 300));
    return new Response("ok");
  });
  const n = createWebhookNotifier({
    url: `http://127.0.0.1:${server.addr.port}/`,
    secret: SECRET,
    logger: quiet,
    baseDelayMs: 5,
    timeoutMs: 50,
  });
  try {
    n.notify(notice(1));
    await until(() => n.stats().sent === 1);
    assert.equal(n.stats().retries, 1);
    assert.equal(calls, 2);
  } finally {
    await n.close();
    await server.shutdown();
  }
});

Deno.test("the queue is bounded: notices beyond maxQueue are dropped, and none are taken after close", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    await req.text();
    await gate;
    return new Response("ok");
  });
  const n = createWebhookNotifier({
    url: `http://127.0.0.1:${server.addr.port}/`,
    secret: SECRET,
    logger: quiet,
    maxQueue: 2,
    concurrency: 1,
  });
  try {
    assert.equal(n.notify(notice(1)), true);
    assert.equal(n.notify(notice(2)), true);
    assert.equal(n.notify(notice(3)), false);
    assert.deepEqual(n.stats(), { pending: 2, sent: 0, failed: 0, dropped: 1, retries: 0 });
    release();
    await until(() => n.stats().sent === 2);
    // After close nothing is accepted.
    await n.close();
    assert.equal(n.notify(notice(4)), false);
    assert.equal(n.stats().dropped, 2);
  } finally {
    release();
    await n.close();
    await server.shutdown();
  }
});

Deno.test("close cancels waiting retries and resolves with nothing left running", async () => {
  const receiver = await startPushReceiver(SECRET);
  receiver.failWith.push(500);
  const n = createWebhookNotifier({
    url: receiver.url,
    secret: SECRET,
    logger: quiet,
    baseDelayMs: 60_000,
  });
  try {
    n.notify(notice(1));
    await until(() => n.stats().retries === 1);
    await n.close();
    assert.deepEqual(n.stats(), { pending: 0, sent: 0, failed: 0, dropped: 1, retries: 1 });
  } finally {
    await receiver.close();
  }
});
