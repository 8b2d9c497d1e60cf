/**
 * Hooks on the built-in IM kinds, through a real node and a real WebSocket: a moderation hook
 * refuses a send before it is accepted (nothing stored), another rewrites the body, and an
 * after-hook sees every stored message (a bot or webhook would sit there).
 */
import assert from "node:assert/strict";
import { ImError } from "../actors/errors.ts";
import type { StoredMessage } from "../db/store.ts";
import { type F, signUp, TestClient } from "./support/client.ts";
import { testNode } from "./support/node.ts";

Deno.test("hooks on built-in kinds moderate sends and observe stored messages", async () => {
  const node = await testNode();
  try {
    const stored: StoredMessage[] = [];
    for (const kind of ["direct", "group"]) {
      node.host.hooks.beforeAccept(kind, "send", ({ body }) => {
        const b = body as { body: { text?: string } };
        if (b.body.text?.includes("spam")) throw new ImError("forbidden", "Refused by moderation");
        if (b.body.text?.includes("darn")) {
          return { ...b, body: { ...b.body, text: b.body.text.replaceAll("darn", "****") } };
        }
      });
      node.host.hooks.after(kind, "stored", ({ payload }) => {
        stored.push(payload as StoredMessage);
      });
    }
    const sfx = Date.now().toString(36);
    const a = await signUp(node.url, `hooka${sfx}`);
    const b = await signUp(node.url, `hookb${sfx}`);
    const ca = await TestClient.connect(node.url, a.accessToken);
    const cb = await TestClient.connect(node.url, b.accessToken);

    const refused = await ca.request({
      op: "send",
      to: { user: b.userId },
      cmid: "s1",
      body: { type: "text", text: "buy spam now" },
    });
    assert.equal(refused.code, "forbidden");
    const rewritten = await ca.request({
      op: "send",
      to: { user: b.userId },
      cmid: "s2",
      body: { type: "text", text: "oh darn" },
    });
    assert.equal(rewritten.op, "ok");
    assert.equal(rewritten.cseq, 1, "the refused send took no sequence number");
    const [m] = await cb.waitForMsgs(1);
    assert.equal((m.body as F).text, "oh ****");
    const g = await ca.request({ op: "group.create", name: "hooked", members: [b.userId] });
    await cb.request({
      op: "send",
      to: { group: g.groupId },
      cmid: "g1",
      body: { type: "text", text: "hi" },
    });
    const end = Date.now() + 3000;
    while (stored.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(stored.map((s) => s.conv), [rewritten.conv, g.conv]);
    assert.equal(stored[0].body.text, "oh ****");
    await ca.close();
    await cb.close();
  } finally {
    await node.stop();
  }
});
