import assert from "node:assert/strict";
import { groupAccess } from "./conv_access.ts";
import { messageActionHandlers } from "./message_actions.ts";
import { groupContext } from "./testing_group.ts";

Deno.test("reactions made in the same millisecond are listed in the order they were made", async () => {
  // The context's clock is frozen: every reaction gets the same millisecond from it.
  const { ctx, store } = await groupContext(["u_a", "u_b", "u_c"]);
  try {
    const react = messageActionHandlers(groupAccess).react;
    // u_c (sorts last) reacts first.
    for (const user of ["u_c", "u_a", "u_b"]) {
      await react(ctx, { user, mid: "m_1", emoji: "👍", on: true }, { type: "react" });
    }
    const res = await react(ctx, { user: "u_a", mid: "m_1", emoji: "🎉", on: true }, {
      type: "react",
    }) as { reactions: { emoji: string; users: string[] }[] };
    assert.deepEqual(res.reactions.map((r) => [r.emoji, r.users]), [
      ["👍", ["u_c", "u_a", "u_b"]],
      ["🎉", ["u_a"]],
    ]);
  } finally {
    await store.close();
  }
});
