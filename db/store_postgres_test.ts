import assert from "node:assert/strict";
import postgres from "postgres";
import { UnavailableError } from "../actors/errors.ts";
import { openPostgresStore } from "./store_postgres.ts";
import { POSTGRES_MIGRATIONS } from "./migrations_postgres.ts";
import { runStoreContract } from "./store_contract.ts";
import {
  createTempDatabase,
  type TempDatabase,
  unreachablePostgresUrl,
} from "../tests/support/postgres.ts";
import type { AppendRequest } from "./store.ts";

// Each batch goes to im_append or is numbered in the node by its size (NODE_NUMBERING_MIN_ENTRIES):
// the contract runs with the default, with every batch numbered in the node and with every batch
// going to im_append. One fresh database per run, made on first use and dropped after it.
for (
  const [name, nodeNumberingMinEntries] of [
    ["postgres", undefined],
    ["postgres, every batch numbered in the node", 0],
    ["postgres, every batch numbered by im_append", Infinity],
  ] as const
) {
  let database: TempDatabase | undefined;
  runStoreContract(name, async () => {
    database ??= await createTempDatabase();
    const url = database.url;
    const open = async () => {
      const store = openPostgresStore(url, { max: 4, nodeNumberingMinEntries });
      await store.migrate();
      return store;
    };
    const store = await open();
    return { store, reopen: open, cleanup: () => store.close() };
  }, {
    afterAll: async () => {
      await database?.drop();
    },
  });
}

/** Polls `check` until it holds (a session reached the state the test waits for). */
async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Runs `fn` with a fresh database and an admin connection to it, dropping both after. */
async function withDatabase(
  fn: (db: TempDatabase, admin: postgres.Sql) => Promise<void>,
): Promise<void> {
  const db = await createTempDatabase();
  const admin = postgres(db.url, { max: 2, onnotice: () => {} });
  try {
    await fn(db, admin);
  } finally {
    await admin.end({ timeout: 5 });
    await db.drop();
  }
}

function sessionsWaitingOnLocks(admin: postgres.Sql, db: TempDatabase) {
  return async () => {
    const [{ n }] = await admin`
      SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = ${db.name} AND wait_event_type = 'Lock'`;
    return n === 1;
  };
}

Deno.test("a Postgres store on an unreachable server rejects with UnavailableError", async () => {
  const store = openPostgresStore(unreachablePostgresUrl(), { connectTimeoutSeconds: 2 });
  try {
    await assert.rejects(store.getUser("u_1"), UnavailableError);
    await assert.rejects(store.migrate(), UnavailableError);
    await assert.rejects(store.append([request("u_1", "c1", "g:x")]), UnavailableError);
  } finally {
    await store.close();
  }
});

/**
 * Holds a row lock from an admin transaction while `act` runs, kills the store's session once it
 * waits on that lock, then releases the lock. Returns what `act` settled to.
 */
async function killWhileBlocked<T>(
  db: TempDatabase,
  admin: postgres.Sql,
  lockSql: string,
  act: () => Promise<T>,
): Promise<PromiseSettledResult<T>> {
  let release!: () => void;
  const hold = new Promise<void>((resolve) => release = resolve);
  let locked!: () => void;
  const isLocked = new Promise<void>((resolve) => locked = resolve);
  const holder = admin.begin(async (tx) => {
    await tx.unsafe(lockSql);
    locked();
    await hold;
  });
  try {
    await isLocked;
    let done = false;
    const settled = Promise.allSettled([act()]).then(([outcome]) => {
      done = true;
      return outcome;
    });
    const waiting = sessionsWaitingOnLocks(admin, db);
    await waitFor(waiting, "the store to wait on the row lock");
    await admin`
      SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE datname = ${db.name} AND wait_event_type = 'Lock'`;
    // Either the call failed, or it was retried and waits on the lock again.
    await waitFor(async () => done || await waiting(), "the call to fail or to wait again");
    release();
    const outcome = await settled;
    return outcome;
  } finally {
    release();
    await holder;
  }
}

Deno.test("a write that is not idempotent fails with UnavailableError when its connection dies, and nothing of it is written", async () => {
  await withDatabase(async (db, admin) => {
    const store = openPostgresStore(db.url, { max: 1 });
    try {
      await store.migrate();
      await store.createUser({
        userId: "u_1",
        username: "alice",
        passwordHash: "h",
        createdAt: 1,
        disabled: false,
      });
      await store.saveRefreshToken({
        tokenHash: "th",
        userId: "u_1",
        device: "phone",
        familyId: "f",
        expiresAt: 2,
        usedAt: null,
        revoked: false,
      });
      const outcome = await killWhileBlocked(
        db,
        admin,
        "SELECT 1 FROM refresh_tokens WHERE token_hash = 'th' FOR UPDATE",
        () => store.useRefreshToken("th", 10),
      );
      assert.equal(outcome.status, "rejected");
      assert.ok(outcome.reason instanceof UnavailableError, `got ${outcome.reason}`);
      assert.equal((await store.getRefreshToken("th"))?.usedAt, null);
      assert.equal(await store.useRefreshToken("th", 11), true);
    } finally {
      await store.close();
    }
  });
});

Deno.test("an append numbered by the node whose connection dies while it waits for its locks fails with UnavailableError, writes nothing, and the next append works", async () => {
  await withDatabase(async (db, admin) => {
    const store = openPostgresStore(db.url, { max: 1, nodeNumberingMinEntries: 0 });
    try {
      await store.migrate();
      await store.append([request("u_1", "k1", "g:a")]);
      // Step 1 (BEGIN and the locking call, sent together) waits on the conversation's row.
      const outcome = await killWhileBlocked(
        db,
        admin,
        "SELECT 1 FROM conversations WHERE conv = 'g:a' FOR UPDATE",
        () => store.append([request("u_1", "k2", "g:a")]),
      );
      assert.equal(outcome.status, "rejected");
      assert.ok(outcome.reason instanceof UnavailableError, `got ${outcome.reason}`);
      assert.equal(await store.latestCseq("g:a"), 1);
      assert.equal(await store.latestSeq("u_2"), 1);
      // The caller retries with the same key: stored once, with the next cseq and seqs.
      const [again] = await store.append([request("u_1", "k2", "g:a")]);
      assert.equal(again.status, "stored");
      assert.equal(again.status === "stored" && again.message.cseq, 2);
      assert.deepEqual(again.status === "stored" && again.seqs, { u_1: 2, u_2: 2 });
    } finally {
      await store.close();
    }
  });
});

Deno.test("an idempotent call whose connection dies is retried once on a fresh connection pool", async () => {
  await withDatabase(async (db, admin) => {
    const store = openPostgresStore(db.url, { max: 1 });
    try {
      await store.migrate();
      await store.fence("user/x", 1);
      const outcome = await killWhileBlocked(
        db,
        admin,
        "SELECT 1 FROM actor_epochs WHERE actor_id = 'user/x' FOR UPDATE",
        () => store.fence("user/x", 2),
      );
      assert.equal(
        outcome.status,
        "fulfilled",
        outcome.status === "rejected"
          ? String(outcome.reason?.cause?.code + " " + outcome.reason)
          : "",
      );
      assert.equal(await store.storedEpoch("user/x"), 2);
      // Pooled connections the server closes while idle (a restart, again and again): every
      // read after each still succeeds, and the store never wedges.
      for (let round = 0; round < 3; round++) {
        await admin`
          SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = ${db.name} AND pid <> pg_backend_pid()`;
        assert.equal(await store.storedEpoch("user/x"), 2);
        assert.equal(await store.latestSeq("u_1"), 0);
      }
    } finally {
      await store.close();
    }
  });
});

/**
 * Runs `fn` with the URL of a server that accepts connections and never says a word, like a
 * hung server; `connections()` tells how many it accepted.
 */
async function withSilentServer(
  fn: (url: string, connections: () => number) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  try {
    await fn(`postgres://postgres@127.0.0.1:${listener.addr.port}/x`, () => held.length);
  } finally {
    listener.close();
    await accepting;
    for (const conn of held) conn.close();
  }
}

Deno.test("a call the server never answers rejects with UnavailableError at its deadline", async () => {
  await withSilentServer(async (url) => {
    const store = openPostgresStore(url, { connectTimeoutSeconds: 30, callTimeoutMs: 200 });
    try {
      const started = Date.now();
      await assert.rejects(store.latestSeq("u_1"), UnavailableError);
      await assert.rejects(store.append([request("u_1", "c1", "g:x")]), UnavailableError);
      assert.ok(Date.now() - started < 5000);
    } finally {
      await store.close();
    }
  });
});

Deno.test("start-up against a server that accepts and never answers fails with UnavailableError within the connect timeout", async () => {
  // migrate() has no call deadline (a schema version may convert much data), so what bounds it
  // here is the connect timeout: it covers the whole start-up exchange, not only TCP.
  await withSilentServer(async (url, connections) => {
    const store = openPostgresStore(url, { connectTimeoutSeconds: 1 });
    try {
      const started = Date.now();
      await assert.rejects(store.migrate(), UnavailableError);
      // One attempt and the retry on a fresh pool, each cut off after a second.
      assert.ok(Date.now() - started < 10_000);
      assert.ok(connections() >= 1, "the store did connect");
    } finally {
      await store.close();
    }
  });
});

function request(from: string, cmid: string, conv: string, extra: Partial<AppendRequest> = {}) {
  return {
    actorId: `group/${conv}`,
    epoch: 1,
    mid: `m_${from}_${cmid}_${conv}`,
    conv,
    from,
    to: { group: conv.slice(2) },
    cmid,
    ts: 1_700_000_000_000,
    body: { type: "text", text: cmid },
    recipients: [from, "u_2"],
    ...extra,
  };
}

for (const [path, nodeNumberingMinEntries] of [["im_append", Infinity], ["node", 0]] as const) {
  Deno.test(`append retries when the same (from, cmid) commits concurrently in another conversation, leaving no gap (numbered by ${path})`, async () => {
    await withDatabase(async (db, admin) => {
      const store = openPostgresStore(db.url, { max: 1, nodeNumberingMinEntries });
      try {
        await store.migrate();
        let release!: () => void;
        const hold = new Promise<void>((resolve) => release = resolve);
        let inserted!: () => void;
        const isInserted = new Promise<void>((resolve) => inserted = resolve);
        // Another node's transaction stores (u_1, k1) in g:a and has not committed yet.
        const holder = admin.begin(async (tx) => {
          await tx`INSERT INTO conversations (conv, last_cseq) VALUES ('g:a', 1)`;
          await tx`
          INSERT INTO messages (mid, conv, cseq, sender, cmid, to_kind, to_id, ts, body)
          VALUES ('m_first', 'g:a', 1, 'u_1', 'k1', 'group', 'a', 5, '{"type":"text"}')`;
          inserted();
          await hold;
        });
        await isInserted;
        const pending = store.append([
          request("u_1", "k1", "g:b"),
          request("u_1", "k2", "g:b"),
        ]);
        await waitFor(sessionsWaitingOnLocks(admin, db), "append to wait on the (from, cmid) key");
        release();
        await holder;
        const results = await pending;
        assert.deepEqual(results[0], {
          status: "duplicate",
          message: {
            mid: "m_first",
            conv: "g:a",
            cseq: 1,
            from: "u_1",
            to: { group: "a" },
            ts: 5,
            body: { type: "text" },
            cmid: "k1",
          },
        });
        assert.equal(results[1].status, "stored");
        assert.equal(results[1].status === "stored" && results[1].message.cseq, 1);
        assert.deepEqual(results[1].status === "stored" && results[1].seqs, { u_1: 1, u_2: 1 });
        assert.equal(await store.latestCseq("g:b"), 1);
        assert.deepEqual((await store.readInbox("u_2", 0, 10)).map((e) => e.message.cmid), ["k2"]);
      } finally {
        await store.close();
      }
    });
  });
}

Deno.test("several Postgres stores migrating a fresh database at once apply each version once", async () => {
  await withDatabase(async (db, admin) => {
    const stores = [1, 2, 3, 4].map(() => openPostgresStore(db.url, { max: 1 }));
    try {
      await Promise.all(stores.map((s) => s.migrate()));
      const rows = await admin`SELECT version FROM schema_migrations ORDER BY version`;
      assert.deepEqual(rows.map((r) => r.version), POSTGRES_MIGRATIONS.map((m) => m.version));
      const [result] = await stores[3].append([request("u_1", "k1", "g:a")]);
      assert.equal(result.status, "stored");
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });
});

Deno.test("a failing Postgres migration rolls back entirely and is not recorded", async () => {
  await withDatabase(async (db, admin) => {
    const broken = [
      ...POSTGRES_MIGRATIONS,
      {
        version: 1000,
        description: "fails halfway",
        sql: "CREATE TABLE half_done (x int); SELECT no_such_function();",
      },
    ];
    const store = openPostgresStore(db.url, { max: 1, migrations: broken });
    try {
      await assert.rejects(store.migrate());
      const versions = await admin`SELECT version FROM schema_migrations ORDER BY version`;
      assert.deepEqual(
        versions.map((r) => r.version),
        POSTGRES_MIGRATIONS.map((m) => m.version),
      );
      const [{ exists }] = await admin`SELECT to_regclass('half_done') IS NOT NULL AS exists`;
      assert.equal(exists, false);
    } finally {
      await store.close();
    }
  });
});

Deno.test("a Postgres migration that takes longer than the call deadline still completes; other calls keep the deadline", async () => {
  await withDatabase(async (db, admin) => {
    const slow = [
      ...POSTGRES_MIGRATIONS,
      {
        version: 1000,
        description: "slow",
        sql: "SELECT pg_sleep(0.6); CREATE TABLE slow_done ();",
      },
    ];
    const store = openPostgresStore(db.url, { max: 1, migrations: slow, callTimeoutMs: 200 });
    try {
      await store.migrate();
      const [{ exists }] = await admin`SELECT to_regclass('slow_done') IS NOT NULL AS exists`;
      assert.equal(exists, true);
      await store.fence("user/x", 1);
      let release!: () => void;
      const hold = new Promise<void>((resolve) => release = resolve);
      let locked!: () => void;
      const isLocked = new Promise<void>((resolve) => locked = resolve);
      const holder = admin.begin(async (tx) => {
        await tx`SELECT 1 FROM actor_epochs WHERE actor_id = 'user/x' FOR UPDATE`;
        locked();
        await hold;
      });
      try {
        await isLocked;
        await assert.rejects(store.fence("user/x", 2), UnavailableError);
      } finally {
        release();
        await holder;
      }
    } finally {
      await store.close();
    }
  });
});
