import assert from "node:assert/strict";
import { groupAccess } from "./conv_access.ts";
import { groupContext } from "./testing_group.ts";
import { READ_FANOUT_LIMIT, receiptHandlers } from "./receipts.ts";

/** The group context of testing_group.ts with members u_0 … u_{n-1}. */
function groupCtx(memberCount: number) {
  return groupContext(Array.from({ length: memberCount }, (_, i) => `u_${i}`));
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
