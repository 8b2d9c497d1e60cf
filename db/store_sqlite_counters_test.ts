/**
 * The SQLite store's counter cache (db/sqlite_counter_cache.ts) seen from outside: appends number
 * exactly as if every counter were read from the file, whatever else wrote to it in between.
 */
import assert from "node:assert/strict";
import { openSqliteStore } from "./store_sqlite.ts";
import type { AppendRequest } from "./store.ts";
import { withDir } from "./testing_sqlite.ts";
import { assertInboxes, InboxModel, mixedBatches, msg } from "./testing_inbox.ts";

async function opened(path: string) {
  const store = openSqliteStore(path);
  await store.migrate();
  return store;
}

function stored(r: Awaited<ReturnType<ReturnType<typeof openSqliteStore>["append"]>>[number]) {
  assert.equal(r.status, "stored");
  return r as Extract<typeof r, { status: "stored" }>;
}

Deno.test("two connections appending to one file in turn number conversations and inboxes without gaps or repeats", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/im.sqlite3`;
    const a = await opened(path);
    const b = await opened(path);
    try {
      const users = ["u_1", "u_2", "u_3", "u_4"];
      let n = 0;
      const model = new InboxModel();
      const batches = mixedBatches(users, 60, () => ++n);
      // Runs of one to three batches on each connection, so each finds the other's commits.
      for (let i = 0; i < batches.length; i++) {
        const store = i % 5 < 2 ? a : b;
        model.record(await store.append(batches[i]));
      }
      await assertInboxes(a, model);
      await assertInboxes(b, model);
      for (const conv of ["g:g_0", "g:g_1"]) {
        const cseqs = [...model.entries.values()].flatMap((inbox) =>
          [...inbox.values()].filter((e) => e.conv === conv).map((e) => e.cseq)
        );
        const distinct = [...new Set(cseqs)].sort((x, y) => x - y);
        assert.deepEqual(distinct, distinct.map((_, i) => i + 1), `cseqs of ${conv}`);
        assert.equal(await a.latestCseq(conv), distinct.length);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });
});

Deno.test("an epoch raised by fencing or a snapshot after an append fences the actor's next append", async () => {
  await withDir(async (dir) => {
    const store = await opened(`${dir}/im.sqlite3`);
    try {
      const send = (n: number, epoch: number): AppendRequest => ({
        ...msg("d:u_1:u_2", "u_1", ["u_1", "u_2"], n),
        epoch,
      });
      stored((await store.append([send(1, 1)]))[0]);
      await store.fence("conv/d:u_1:u_2", 5);
      assert.deepEqual(await store.append([send(2, 2)]), [{ status: "fenced", storedEpoch: 5 }]);
      stored((await store.append([send(3, 5)]))[0]);
      await store.saveSnapshot("conv/d:u_1:u_2", 7, new Uint8Array([1]));
      assert.deepEqual(await store.append([send(4, 6)]), [{ status: "fenced", storedEpoch: 7 }]);
      assert.equal(stored((await store.append([send(5, 7)]))[0]).message.cseq, 3);
    } finally {
      await store.close();
    }
  });
});

Deno.test("after an account is deleted its inbox numbering starts over, as on a fresh connection", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/im.sqlite3`;
    const store = await opened(path);
    try {
      for (let n = 1; n <= 3; n++) await store.append([msg("d:u_1:u_9", "u_1", ["u_1", "u_9"], n)]);
      await store.deleteUser("u_9");
      const r = stored((await store.append([msg("d:u_1:u_9", "u_1", ["u_1", "u_9"], 4)]))[0]);
      assert.deepEqual(r.seqs, { u_1: 4, u_9: 1 });
      const fresh = await opened(path);
      try {
        const again = stored((await fresh.append([msg("d:u_1:u_9", "u_1", ["u_1", "u_9"], 5)]))[0]);
        assert.deepEqual(again.seqs, { u_1: 5, u_9: 2 });
      } finally {
        await fresh.close();
      }
    } finally {
      await store.close();
    }
  });
});

Deno.test("a batch that fails inside its transaction leaves the next one numbered from what was committed", async () => {
  await withDir(async (dir) => {
    const store = await opened(`${dir}/im.sqlite3`);
    try {
      stored((await store.append([msg("d:u_1:u_2", "u_1", ["u_1", "u_2"], 1)]))[0]);
      // The second request reuses the first's mid: the INSERT fails and the batch rolls back.
      const good = msg("d:u_1:u_2", "u_1", ["u_1", "u_2"], 2);
      const clash = { ...msg("d:u_1:u_2", "u_2", ["u_1", "u_2"], 3), mid: "m_d:u_1:u_2_1" };
      await assert.rejects(store.append([good, clash]));
      const r = stored((await store.append([msg("d:u_1:u_2", "u_2", ["u_1", "u_2"], 4)]))[0]);
      assert.equal(r.message.cseq, 2);
      assert.deepEqual(r.seqs, { u_1: 2, u_2: 2 });
    } finally {
      await store.close();
    }
  });
});
