import assert from "node:assert/strict";
import type { ActorContext } from "../behavior.ts";
import { openSqliteStore } from "../../db/store_sqlite.ts";
import type { Store } from "../../db/store.ts";
import { createLogger } from "../../observability/log.ts";
import { groupAccess } from "./conv_access.ts";
import type { GroupState } from "./group.ts";
import { messageActionHandlers } from "./message_actions.ts";
import type { ImServices } from "./services.ts";

Deno.test("reactions made in the same millisecond are listed in the order they were made", async () => {
  const store: Store = openSqliteStore(":memory:");
  try {
    await store.migrate();
    const members: GroupState["members"] = {};
    for (const u of ["u_a", "u_b", "u_c"]) members[u] = { role: "member", joinedAt: 1 };
    const state = {
      exists: true,
      dissolved: false,
      owner: "u_a",
      members,
      muteAll: false,
      requests: {},
    } as unknown as GroupState;
    const services = {
      store,
      deliver: () => {},
      // A frozen clock: every reaction gets the same millisecond from it.
      now: () => 1_000,
      logger: createLogger({ level: "error" }),
    } as unknown as ImServices;
    const ctx = {
      id: "group/g_1",
      key: "g_1",
      epoch: 1,
      state,
      services,
    } as unknown as ActorContext<
      GroupState,
      ImServices
    >;
    await store.append([{
      actorId: "group/g_1",
      epoch: 1,
      mid: "m_1",
      conv: "g:g_1",
      from: "u_a",
      to: { group: "g_1" },
      cmid: "c1",
      ts: 1,
      body: { type: "text", text: "hi" },
      recipients: Object.keys(members),
    }]);
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
