import assert from "node:assert/strict";
import type { ActorContext } from "../behavior.ts";
import type { Delivery } from "../../cluster/transport.ts";
import { openSqliteStore } from "../../db/store_sqlite.ts";
import type { Store } from "../../db/store.ts";
import { createLogger } from "../../observability/log.ts";
import { groupAccess } from "./conv_access.ts";
import type { GroupState } from "./group.ts";
import { READ_FANOUT_LIMIT, receiptHandlers } from "./receipts.ts";
import type { ImServices } from "./services.ts";

/** A group actor's context on a real (in-memory SQLite) store that records its deliveries. */
async function groupCtx(memberCount: number) {
  const store: Store = openSqliteStore(":memory:");
  await store.migrate();
  const members: GroupState["members"] = {};
  for (let i = 0; i < memberCount; i++) {
    members[`u_${i}`] = { role: i === 0 ? "owner" : "member", joinedAt: 1 };
  }
  const state = {
    exists: true,
    dissolved: false,
    name: "g",
    description: "",
    avatar: "",
    announcement: "",
    owner: "u_0",
    createdAt: 1,
    members,
    invitePolicy: "anyone",
    joinPolicy: "approval",
    muteAll: false,
    requests: {},
  } as GroupState;
  const delivered: Delivery[] = [];
  const services = {
    store,
    deliver: (d: Delivery) => delivered.push(d),
    now: () => 1_000,
    logger: createLogger({ level: "error" }),
  } as unknown as ImServices;
  const ctx = { id: "group/g_1", key: "g_1", epoch: 1, state, services } as unknown as ActorContext<
    GroupState,
    ImServices
  >;
  await store.append([{
    actorId: "group/g_1",
    epoch: 1,
    mid: "m_1",
    conv: "g:g_1",
    from: "u_0",
    to: { group: "g_1" },
    cmid: "c1",
    ts: 1,
    body: { type: "text", text: "hi" },
    recipients: Object.keys(members),
  }]);
  return { ctx, delivered, store };
}

Deno.test("a read in a small group is pushed to every member; in a big group only to the reader's devices", async () => {
  for (const [count, everyone] of [[3, true], [READ_FANOUT_LIMIT + 1, false]] as const) {
    const { ctx, delivered, store } = await groupCtx(count);
    try {
      const res = await receiptHandlers(groupAccess).read(ctx, { user: "u_1", cseq: 5 }, {
        type: "read",
      });
      assert.deepEqual(res, { cseq: 1, unread: 0 });
      const read = delivered.find((d) => d.frame.op === "read")!;
      assert.deepEqual(read.frame, { op: "read", conv: "g:g_1", user: "u_1", cseq: 1, ts: 1_000 });
      assert.equal(read.users.length, everyone ? count : 1);
      if (!everyone) assert.deepEqual(read.users, ["u_1"]);
      const list = delivered.find((d) => d.frame.op === "conv.updated")!;
      assert.deepEqual(list.users, ["u_1"]);
      // Reading the same position again writes nothing and pushes nothing.
      delivered.length = 0;
      await receiptHandlers(groupAccess).read(ctx, { user: "u_1", cseq: 1 }, { type: "read" });
      assert.equal(delivered.length, 0);
    } finally {
      await store.close();
    }
  }
});

Deno.test("a read from someone who is not a member is refused and writes nothing", async () => {
  const { ctx, delivered, store } = await groupCtx(3);
  try {
    await assert.rejects(
      Promise.resolve(
        receiptHandlers(groupAccess).read(ctx, { user: "u_9", cseq: 1 }, { type: "read" }),
      ),
      (err: unknown) => (err as { code?: string }).code === "not_member",
    );
    assert.deepEqual(await store.readCursors("g:g_1"), []);
    assert.equal(delivered.length, 0);
  } finally {
    await store.close();
  }
});
