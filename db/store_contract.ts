/**
 * The one test suite every {@link Store} adapter passes: each guarantee of `store.ts` is a step.
 *
 * Steps may share one database (the Postgres run uses one fresh database per test run), so every
 * step names its users, conversations and actors with a random prefix and never assumes an empty
 * store.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { FencedError, ImError, UnavailableError } from "../actors/errors.ts";
import type {
  AppendRequest,
  AppendResult,
  AuditEntry,
  RefreshTokenRecord,
  Store,
  StoredMessage,
  UserRecord,
} from "./store.ts";
import { ACK_STEPS } from "./store_contract_acks.ts";
import { MESSAGE_FEATURE_STEPS } from "./store_contract_messages.ts";
import { SOCIAL_STEPS } from "./store_contract_social.ts";

/** A store to test, and how to release it. */
export interface StoreUnderTest {
  /** A migrated store. */
  store: Store;
  /** Closes `store` (the suite may have closed it already) and removes what `open` created. */
  cleanup: () => Promise<void>;
  /**
   * Opens another migrated Store on the same data (same file, same database): the durability
   * step reopens through it after a close, the multi-writer steps use it as a second node.
   * The suite closes what it returns. Required by those steps (they fail without it).
   */
  reopen?: () => Promise<Store>;
}

/** Hooks around the whole suite. */
export interface StoreContractOptions {
  /** Runs once after every step, pass or fail (e.g. drop the test database). */
  afterAll?: () => Promise<void>;
}

type Step = (subject: StoreUnderTest, p: string) => Promise<void>;

/**
 * Registers one Deno test named after `name` whose steps check every guarantee of the storage
 * port against stores made by `open` (called once per step).
 */
export function runStoreContract(
  name: string,
  open: () => Promise<StoreUnderTest>,
  options: StoreContractOptions = {},
): void {
  Deno.test(`${name} store keeps every guarantee of the storage port`, async (t) => {
    try {
      for (const [stepName, step] of STEPS) {
        await t.step(stepName, async () => {
          const subject = await open();
          try {
            await step(subject, prefix());
          } finally {
            await subject.cleanup();
          }
        });
      }
    } finally {
      await options.afterAll?.();
    }
  });
}

// ---- helpers ----

/** A short random prefix that keeps each step's ids apart from every other step's. */
function prefix(): string {
  return `t${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}_`;
}

function user(p: string, name: string, extra: Partial<UserRecord> = {}): UserRecord {
  return {
    userId: `${p}id_${name}`,
    username: `${p}${name}`,
    passwordHash: `hash-of-${name}`,
    createdAt: 1_700_000_000_123,
    disabled: false,
    ...extra,
  };
}

function token(
  p: string,
  name: string,
  userId: string,
  extra: Partial<RefreshTokenRecord> = {},
): RefreshTokenRecord {
  return {
    tokenHash: `${p}hash_${name}`,
    userId,
    device: "phone",
    familyId: `${p}family`,
    expiresAt: 1_800_000_000_000,
    usedAt: null,
    revoked: false,
    ...extra,
  };
}

let midCounter = 0;

/** A direct message `from` → `to` in conv `d:from:to`, written by its direct actor at epoch 1. */
function direct(
  p: string,
  from: string,
  to: string,
  cmid: string,
  extra: Partial<AppendRequest> = {},
): AppendRequest {
  const [a, b] = [`${p}${from}`, `${p}${to}`].sort();
  return {
    actorId: `direct/${a}:${b}`,
    epoch: 1,
    mid: `${p}m${++midCounter}`,
    conv: `d:${a}:${b}`,
    from: `${p}${from}`,
    to: { user: `${p}${to}` },
    cmid,
    ts: 1_700_000_000_000 + midCounter,
    body: { type: "text", text: `${cmid} from ${from}` },
    recipients: [`${p}${from}`, `${p}${to}`],
    ...extra,
  };
}

/** A group message from `from` to group `group` with the given member recipients. */
function grouped(
  p: string,
  group: string,
  from: string,
  members: string[],
  cmid: string,
  extra: Partial<AppendRequest> = {},
): AppendRequest {
  return {
    actorId: `group/${p}${group}`,
    epoch: 1,
    mid: `${p}m${++midCounter}`,
    conv: `g:${p}${group}`,
    from: `${p}${from}`,
    to: { group: `${p}${group}` },
    cmid,
    ts: 1_700_000_000_000 + midCounter,
    body: { type: "text", text: cmid },
    recipients: members.map((m) => `${p}${m}`),
    ...extra,
  };
}

function stored(result: AppendResult | undefined): Extract<AppendResult, { status: "stored" }> {
  assert.ok(result, "missing result");
  assert.equal(result.status, "stored", `expected stored, got ${JSON.stringify(result)}`);
  return result as Extract<AppendResult, { status: "stored" }>;
}

/** The message a request stores, once `cseq` is known. */
function expectedMessage(req: AppendRequest, cseq: number): StoredMessage {
  return {
    mid: req.mid,
    conv: req.conv,
    cseq,
    from: req.from,
    to: req.to,
    ts: req.ts,
    body: req.body,
    cmid: req.cmid,
  };
}

function isFenced(epoch: number, storedEpoch: number) {
  return (err: unknown) => {
    assert.ok(err instanceof FencedError, `expected FencedError, got ${err}`);
    assert.equal(err.code, "fenced");
    assert.equal(err.epoch, epoch);
    assert.equal(err.storedEpoch, storedEpoch);
    return true;
  };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}

async function withSecondStore(
  subject: StoreUnderTest,
  fn: (other: Store) => Promise<void>,
): Promise<void> {
  assert.ok(subject.reopen, "this step needs StoreUnderTest.reopen");
  const other = await subject.reopen();
  try {
    await fn(other);
  } finally {
    await other.close();
  }
}

// ---- the steps ----

const STEPS: [string, Step][] = [
  // ---- accounts ----
  [
    "createUser stores an account that getUser and getUserByUsername return unchanged",
    async ({ store }, p) => {
      const alice = user(p, "alice");
      await store.createUser(alice);
      assert.deepEqual(await store.getUser(alice.userId), alice);
      assert.deepEqual(await store.getUserByUsername(alice.username), alice);
    },
  ],
  [
    "getUser and getUserByUsername resolve null for unknown accounts",
    async ({ store }, p) => {
      assert.equal(await store.getUser(`${p}nobody`), null);
      assert.equal(await store.getUserByUsername(`${p}nobody`), null);
    },
  ],
  [
    "createUser rejects a taken username with username_taken and keeps the first account",
    async ({ store }, p) => {
      const first = user(p, "bob");
      await store.createUser(first);
      const second = { ...user(p, "bob"), userId: `${p}other_id`, passwordHash: "other" };
      await assert.rejects(store.createUser(second), (err: unknown) => {
        assert.ok(err instanceof ImError, `expected ImError, got ${err}`);
        assert.equal(err.code, "username_taken");
        return true;
      });
      assert.deepEqual(await store.getUserByUsername(first.username), first);
      assert.equal(await store.getUser(second.userId), null);
    },
  ],
  [
    "existingUsers returns exactly the given ids that name accounts",
    async ({ store }, p) => {
      const a = user(p, "a1");
      const b = user(p, "b1");
      await store.createUser(a);
      await store.createUser(b);
      const found = await store.existingUsers([`${p}ghost`, b.userId, a.userId, b.userId]);
      assert.deepEqual([...new Set(found)].sort(), [a.userId, b.userId].sort());
      assert.deepEqual(await store.existingUsers([`${p}ghost`]), []);
      assert.deepEqual(await store.existingUsers([]), []);
    },
  ],
  [
    "setUserDisabled sets and clears the disabled flag",
    async ({ store }, p) => {
      const carol = user(p, "carol");
      await store.createUser(carol);
      await store.setUserDisabled(carol.userId, true);
      assert.equal((await store.getUser(carol.userId))?.disabled, true);
      assert.equal((await store.getUserByUsername(carol.username))?.disabled, true);
      await store.setUserDisabled(carol.userId, false);
      assert.equal((await store.getUser(carol.userId))?.disabled, false);
    },
  ],

  // ---- refresh tokens ----
  [
    "saveRefreshToken stores a token that getRefreshToken returns unchanged",
    async ({ store }, p) => {
      const dave = user(p, "dave");
      await store.createUser(dave);
      const tok = token(p, "t1", dave.userId);
      await store.saveRefreshToken(tok);
      assert.deepEqual(await store.getRefreshToken(tok.tokenHash), tok);
      assert.equal(await store.getRefreshToken(`${p}unknown`), null);
    },
  ],
  [
    "useRefreshToken succeeds once, records the time, and resolves false on reuse",
    async ({ store }, p) => {
      const erin = user(p, "erin");
      await store.createUser(erin);
      const tok = token(p, "t1", erin.userId);
      await store.saveRefreshToken(tok);
      assert.equal(await store.useRefreshToken(tok.tokenHash, 1_750_000_000_000), true);
      assert.equal((await store.getRefreshToken(tok.tokenHash))?.usedAt, 1_750_000_000_000);
      assert.equal(await store.useRefreshToken(tok.tokenHash, 1_750_000_000_001), false);
      assert.equal((await store.getRefreshToken(tok.tokenHash))?.usedAt, 1_750_000_000_000);
      assert.equal(await store.useRefreshToken(`${p}unknown`, 1), false);
    },
  ],
  [
    "useRefreshToken resolves true for exactly one of many concurrent callers on two stores",
    async (subject, p) => {
      const { store } = subject;
      const frank = user(p, "frank");
      await store.createUser(frank);
      const tok = token(p, "t1", frank.userId);
      await store.saveRefreshToken(tok);
      await withSecondStore(subject, async (other) => {
        const outcomes = await Promise.all(
          range(1, 24).map((i) => (i % 2 ? store : other).useRefreshToken(tok.tokenHash, i)),
        );
        assert.equal(outcomes.filter((x) => x).length, 1);
      });
    },
  ],
  [
    "revokeRefreshFamily revokes every token of that family only, and revoked tokens are unusable",
    async ({ store }, p) => {
      const gina = user(p, "gina");
      await store.createUser(gina);
      const t1 = token(p, "t1", gina.userId, { usedAt: 5 });
      const t2 = token(p, "t2", gina.userId);
      const other = token(p, "t3", gina.userId, { familyId: `${p}other_family` });
      for (const tok of [t1, t2, other]) await store.saveRefreshToken(tok);
      await store.revokeRefreshFamily(t1.familyId);
      assert.equal((await store.getRefreshToken(t1.tokenHash))?.revoked, true);
      assert.equal((await store.getRefreshToken(t2.tokenHash))?.revoked, true);
      assert.equal((await store.getRefreshToken(other.tokenHash))?.revoked, false);
      assert.equal(await store.useRefreshToken(t2.tokenHash, 10), false);
      assert.equal(await store.useRefreshToken(other.tokenHash, 10), true);
    },
  ],

  // ---- fencing and snapshots ----
  [
    "storedEpoch is 0 for an unknown actor and fence raises it",
    async ({ store }, p) => {
      const actor = `user/${p}x`;
      assert.equal(await store.storedEpoch(actor), 0);
      await store.fence(actor, 3);
      assert.equal(await store.storedEpoch(actor), 3);
      await store.fence(actor, 3);
      await store.fence(actor, 7);
      assert.equal(await store.storedEpoch(actor), 7);
    },
  ],
  [
    "fence with an older epoch rejects with FencedError and keeps the stored epoch",
    async ({ store }, p) => {
      const actor = `user/${p}x`;
      await store.fence(actor, 5);
      await assert.rejects(store.fence(actor, 4), isFenced(4, 5));
      assert.equal(await store.storedEpoch(actor), 5);
    },
  ],
  [
    "concurrent fences on two stores leave the highest epoch and reject only older ones",
    async (subject, p) => {
      const { store } = subject;
      const actor = `group/${p}g`;
      const epochs = [7, 2, 9, 4, 12, 1, 11, 3, 10, 5, 8, 6];
      await withSecondStore(subject, async (other) => {
        const outcomes = await Promise.allSettled(
          epochs.map((e, i) => (i % 2 ? store : other).fence(actor, e)),
        );
        assert.equal(await store.storedEpoch(actor), 12);
        assert.equal(outcomes[epochs.indexOf(12)].status, "fulfilled");
        for (const [i, outcome] of outcomes.entries()) {
          if (outcome.status === "rejected") {
            const err = outcome.reason;
            assert.ok(err instanceof FencedError, `unexpected ${err}`);
            assert.equal(err.epoch, epochs[i]);
            assert.ok(err.storedEpoch > epochs[i]);
          }
        }
      });
    },
  ],
  [
    "saveSnapshot and loadSnapshot round-trip the bytes and epoch, and a newer one replaces it",
    async ({ store }, p) => {
      const actor = `user/${p}snap`;
      assert.equal(await store.loadSnapshot(actor), null);
      const bytes = new Uint8Array(range(0, 255).concat(range(0, 255).reverse()));
      await store.saveSnapshot(actor, 1, bytes);
      const loaded = await store.loadSnapshot(actor);
      assert.ok(loaded);
      assert.equal(loaded.epoch, 1);
      assert.ok(loaded.data instanceof Uint8Array);
      assert.deepEqual([...loaded.data], [...bytes]);
      await store.saveSnapshot(actor, 2, new Uint8Array([]));
      const replaced = await store.loadSnapshot(actor);
      assert.equal(replaced?.epoch, 2);
      assert.equal(replaced?.data.length, 0);
      assert.equal(await store.storedEpoch(actor), 2);
    },
  ],
  [
    "saveSnapshot with an older epoch rejects with FencedError and keeps the stored snapshot",
    async ({ store }, p) => {
      const actor = `user/${p}snap`;
      await store.saveSnapshot(actor, 1, new Uint8Array([1]));
      await store.fence(actor, 3);
      await assert.rejects(store.saveSnapshot(actor, 2, new Uint8Array([2])), isFenced(2, 3));
      const kept = await store.loadSnapshot(actor);
      assert.equal(kept?.epoch, 1);
      assert.deepEqual([...(kept?.data ?? [])], [1]);
      await store.saveSnapshot(actor, 3, new Uint8Array([3]));
      assert.deepEqual([...((await store.loadSnapshot(actor))?.data ?? [])], [3]);
    },
  ],
  [
    "saveSnapshot with a newer epoch raises the stored epoch and fences the older writer",
    async ({ store }, p) => {
      const actor = `user/${p}snap`;
      await store.fence(actor, 1);
      await store.saveSnapshot(actor, 4, new Uint8Array([4]));
      assert.equal(await store.storedEpoch(actor), 4);
      await assert.rejects(store.fence(actor, 1), isFenced(1, 4));
    },
  ],
  [
    "saveAck moves each device's cursor forward and never back",
    async ({ store }, p) => {
      const actor = `user/${p}u`;
      const userId = `${p}u`;
      assert.deepEqual(await store.loadAcks(userId), []);
      await store.saveAck(actor, 1, userId, "phone", 5);
      await store.saveAck(actor, 1, userId, "phone", 3);
      await store.saveAck(actor, 1, userId, "laptop", 2);
      const sortByDevice = (xs: { device: string; seq: number }[]) =>
        [...xs].sort((a, b) => a.device.localeCompare(b.device));
      assert.deepEqual(sortByDevice(await store.loadAcks(userId)), [
        { device: "laptop", seq: 2 },
        { device: "phone", seq: 5 },
      ]);
      await store.saveAck(actor, 1, userId, "phone", 9);
      assert.deepEqual(sortByDevice(await store.loadAcks(userId)), [
        { device: "laptop", seq: 2 },
        { device: "phone", seq: 9 },
      ]);
      assert.deepEqual(await store.loadAcks(`${p}other`), []);
    },
  ],
  [
    "saveAck with an older epoch rejects with FencedError and leaves the cursor; a newer one raises the epoch",
    async ({ store }, p) => {
      const actor = `user/${p}u`;
      const userId = `${p}u`;
      await store.saveAck(actor, 2, userId, "phone", 4);
      await assert.rejects(store.saveAck(actor, 1, userId, "phone", 8), isFenced(1, 2));
      assert.deepEqual(await store.loadAcks(userId), [{ device: "phone", seq: 4 }]);
      await store.saveAck(actor, 3, userId, "phone", 6);
      assert.equal(await store.storedEpoch(actor), 3);
      assert.deepEqual(await store.loadAcks(userId), [{ device: "phone", seq: 6 }]);
    },
  ],

  // ---- append ----
  [
    "append of an empty batch resolves to an empty list",
    async ({ store }) => {
      assert.deepEqual(await store.append([]), []);
    },
  ],
  [
    "append stores messages with cseq from 1 without gaps, counted per conversation",
    async ({ store }, p) => {
      const batch1 = [
        direct(p, "a", "b", "c1"),
        direct(p, "b", "a", "c1"),
        direct(p, "a", "c", "c2"),
      ];
      const r1 = await store.append(batch1);
      assert.deepEqual(r1.map((r) => stored(r).message.cseq), [1, 2, 1]);
      assert.deepEqual(stored(r1[0]).message, expectedMessage(batch1[0], 1));
      const r2 = await store.append([direct(p, "a", "b", "c3"), direct(p, "c", "a", "c4")]);
      assert.deepEqual(r2.map((r) => stored(r).message.cseq), [3, 2]);
      assert.equal(await store.latestCseq(batch1[0].conv), 3);
      assert.equal(await store.latestCseq(batch1[2].conv), 2);
      assert.equal(await store.latestCseq(`d:${p}nobody:${p}none`), 0);
    },
  ],
  [
    "append gives every recipient, the sender included, inbox seqs from 1 without gaps across conversations",
    async ({ store }, p) => {
      const members = ["a", "b", "c"];
      const results = await store.append([
        direct(p, "a", "b", "c1"),
        grouped(p, "g1", "c", members, "c2"),
        direct(p, "b", "c", "c3"),
      ]);
      assert.deepEqual(stored(results[0]).seqs, { [`${p}a`]: 1, [`${p}b`]: 1 });
      assert.deepEqual(stored(results[1]).seqs, { [`${p}a`]: 2, [`${p}b`]: 2, [`${p}c`]: 1 });
      assert.deepEqual(stored(results[2]).seqs, { [`${p}b`]: 3, [`${p}c`]: 2 });
      const more = await store.append([grouped(p, "g1", "a", members, "c4")]);
      assert.deepEqual(stored(more[0]).seqs, { [`${p}a`]: 3, [`${p}b`]: 4, [`${p}c`]: 3 });
      assert.equal(await store.latestSeq(`${p}a`), 3);
      assert.equal(await store.latestSeq(`${p}b`), 4);
      assert.equal(await store.latestSeq(`${p}c`), 3);
      assert.equal(await store.latestSeq(`${p}nobody`), 0);
      const inbox = await store.readInbox(`${p}b`, 0, 100);
      assert.deepEqual(inbox.map((e) => e.seq), [1, 2, 3, 4]);
      assert.deepEqual(inbox.map((e) => e.message.cmid), ["c1", "c2", "c3", "c4"]);
    },
  ],
  [
    "append ignores duplicate recipients",
    async ({ store }, p) => {
      const req = grouped(p, "g1", "a", ["a", "b", "a", "b", "c"], "c1");
      const [result] = await store.append([req]);
      assert.deepEqual(stored(result).seqs, { [`${p}a`]: 1, [`${p}b`]: 1, [`${p}c`]: 1 });
      assert.equal((await store.readInbox(`${p}a`, 0, 10)).length, 1);
      assert.equal(await store.latestSeq(`${p}b`), 1);
    },
  ],
  [
    "append stores a message with no recipients without touching any inbox",
    async ({ store }, p) => {
      const [result] = await store.append([direct(p, "a", "b", "c1", { recipients: [] })]);
      assert.deepEqual(stored(result).seqs, {});
      assert.equal(stored(result).message.cseq, 1);
      assert.equal(await store.latestSeq(`${p}a`), 0);
    },
  ],
  [
    "append stores a (from, cmid) repeated within one batch once and answers the rest duplicate with it",
    async ({ store }, p) => {
      const first = direct(p, "a", "b", "same");
      const again = direct(p, "a", "b", "same", { body: { type: "text", text: "changed" } });
      const other = direct(p, "a", "b", "other");
      const results = await store.append([first, again, other, { ...again, mid: `${p}m_x` }]);
      const original = stored(results[0]).message;
      assert.deepEqual(original, expectedMessage(first, 1));
      assert.deepEqual(results[1], { status: "duplicate", message: original });
      assert.equal(stored(results[2]).message.cseq, 2);
      assert.deepEqual(stored(results[2]).seqs, { [`${p}a`]: 2, [`${p}b`]: 2 });
      assert.deepEqual(results[3], { status: "duplicate", message: original });
      assert.equal(await store.latestCseq(first.conv), 2);
      assert.equal(await store.latestSeq(`${p}b`), 2);
    },
  ],
  [
    "append answers a (from, cmid) stored by an earlier batch with duplicate and the original, storing nothing",
    async ({ store }, p) => {
      const first = direct(p, "a", "b", "c1");
      const [r1] = await store.append([first]);
      const retry = direct(p, "a", "b", "c1", {
        ts: first.ts + 5000,
        body: { type: "text", text: "a retry with a new body" },
      });
      const [r2] = await store.append([retry]);
      assert.deepEqual(r2, { status: "duplicate", message: stored(r1).message });
      // The same sender and cmid in another conversation is still the same message.
      const elsewhere = direct(p, "a", "c", "c1");
      const [r3] = await store.append([elsewhere]);
      assert.deepEqual(r3, { status: "duplicate", message: stored(r1).message });
      assert.equal(await store.latestCseq(first.conv), 1);
      assert.equal(await store.latestCseq(elsewhere.conv), 0);
      assert.equal(await store.latestSeq(`${p}a`), 1);
      assert.equal(await store.latestSeq(`${p}c`), 0);
      assert.deepEqual(await store.findByCmid(first.from, "c1"), stored(r1).message);
      assert.deepEqual((await store.history(first.conv, null, 10)).map((m) => m.mid), [first.mid]);
      // Another sender may use the same cmid.
      const [r4] = await store.append([direct(p, "b", "a", "c1")]);
      assert.equal(stored(r4).message.cseq, 2);
    },
  ],
  [
    "append answers a fenced request with its stored epoch and still stores the rest of the batch",
    async ({ store }, p) => {
      const a = direct(p, "a", "b", "c1");
      await store.fence(a.actorId, 5);
      const group = grouped(p, "g1", "a", ["a", "b"], "c2");
      const results = await store.append([
        { ...a, epoch: 4 },
        group,
        direct(p, "a", "b", "c3", { epoch: 5 }),
      ]);
      assert.deepEqual(results[0], { status: "fenced", storedEpoch: 5 });
      assert.deepEqual(stored(results[1]).seqs, { [`${p}a`]: 1, [`${p}b`]: 1 });
      assert.equal(stored(results[2]).message.cseq, 1);
      assert.deepEqual(stored(results[2]).seqs, { [`${p}a`]: 2, [`${p}b`]: 2 });
      assert.equal(await store.findByCmid(a.from, "c1"), null);
      assert.equal(await store.storedEpoch(a.actorId), 5);
    },
  ],
  [
    "append raises the stored epoch, fencing later requests and writes of an older epoch",
    async ({ store }, p) => {
      const first = direct(p, "a", "b", "c1", { epoch: 3 });
      const results = await store.append([
        direct(p, "a", "b", "c0", { epoch: 2 }),
        first,
        direct(p, "a", "b", "c2", { epoch: 2 }),
        direct(p, "a", "b", "c3", { epoch: 3 }),
      ]);
      assert.deepEqual(results.map((r) => r.status), ["stored", "stored", "fenced", "stored"]);
      assert.deepEqual(results[2], { status: "fenced", storedEpoch: 3 });
      assert.deepEqual(results.map((r) => r.status === "stored" && r.message.cseq), [
        1,
        2,
        false,
        3,
      ]);
      assert.equal(await store.storedEpoch(first.actorId), 3);
      await assert.rejects(store.fence(first.actorId, 2), isFenced(2, 3));
      const [late] = await store.append([direct(p, "a", "b", "c4", { epoch: 1 })]);
      assert.deepEqual(late, { status: "fenced", storedEpoch: 3 });
    },
  ],
  [
    "append checks fencing before duplicates: a stale writer learns it is fenced",
    async ({ store }, p) => {
      const first = direct(p, "a", "b", "c1", { epoch: 2 });
      await store.append([first]);
      const [result] = await store.append([direct(p, "a", "b", "c1", { epoch: 1 })]);
      assert.deepEqual(result, { status: "fenced", storedEpoch: 2 });
    },
  ],
  [
    "append returns one result per request in request order",
    async ({ store }, p) => {
      const a = direct(p, "a", "b", "c1");
      await store.append([a]);
      await store.fence(`group/${p}g1`, 2);
      const batch = [
        direct(p, "b", "a", "c1"),
        grouped(p, "g1", "a", ["a", "b"], "c2", { epoch: 1 }),
        direct(p, "a", "b", "c1"),
        grouped(p, "g1", "b", ["a", "b"], "c3", { epoch: 2 }),
        direct(p, "a", "b", "c4"),
      ];
      const results = await store.append(batch);
      assert.deepEqual(results.map((r) => r.status), [
        "stored",
        "fenced",
        "duplicate",
        "stored",
        "stored",
      ]);
      assert.equal(stored(results[0]).message.mid, batch[0].mid);
      assert.equal(stored(results[3]).message.mid, batch[3].mid);
      assert.equal(stored(results[4]).message.mid, batch[4].mid);
      assert.deepEqual(results.map((r) => r.status === "stored" && r.message.cseq), [
        2,
        false,
        false,
        1,
        3,
      ]);
    },
  ],
  [
    "a failed append batch leaves nothing of it behind",
    async ({ store }, p) => {
      const first = direct(p, "a", "b", "c1");
      await store.append([first]);
      // A reused mid violates the primary key: the whole batch must fail as one.
      const batch = [
        direct(p, "a", "b", "c2"),
        grouped(p, "g1", "c", ["a", "b", "c"], "c3", { mid: first.mid }),
      ];
      await assert.rejects(store.append(batch));
      assert.equal(await store.findByCmid(`${p}a`, "c2"), null);
      assert.equal(await store.latestCseq(first.conv), 1);
      assert.equal(await store.latestCseq(`g:${p}g1`), 0);
      assert.equal(await store.latestSeq(`${p}a`), 1);
      assert.equal(await store.latestSeq(`${p}c`), 0);
      const [next] = await store.append([direct(p, "a", "b", "c2")]);
      assert.equal(stored(next).message.cseq, 2);
      assert.deepEqual(stored(next).seqs, { [`${p}a`]: 2, [`${p}b`]: 2 });
    },
  ],
  [
    "message bodies and recipients round-trip as JSON",
    async ({ store }, p) => {
      const body = {
        type: "text",
        text: 'héllo 👋 "quoted" \\ \n new line \u0000 nul',
        nested: { list: [1, 2.5, -3, null, true, "x"], empty: {}, deep: { a: { b: [[]] } } },
        big: 9_007_199_254_740_991,
      };
      const req = grouped(p, "g1", "a", ["a"], "c1", { body });
      const [result] = await store.append([req]);
      assert.deepEqual(stored(result).message.body, body);
      assert.deepEqual((await store.history(req.conv, null, 1))[0].body, body);
      assert.deepEqual((await store.readInbox(`${p}a`, 0, 1))[0].message.body, body);
      assert.deepEqual((await store.findByCmid(req.from, "c1"))?.body, body);
      assert.deepEqual((await store.findByCmid(req.from, "c1"))?.to, { group: `${p}g1` });
    },
  ],
  [
    "findByCmid returns the stored message for (from, cmid) and null otherwise",
    async ({ store }, p) => {
      const req = direct(p, "a", "b", "c1");
      const [result] = await store.append([req]);
      assert.deepEqual(await store.findByCmid(req.from, "c1"), stored(result).message);
      assert.equal(await store.findByCmid(req.from, "c2"), null);
      assert.equal(await store.findByCmid(`${p}b`, "c1"), null);
    },
  ],
  [
    "readInbox returns entries with seq > after, ascending, at most limit",
    async ({ store }, p) => {
      const batch = range(1, 12).map((i) =>
        i % 3 === 0 ? grouped(p, "g1", "b", ["a", "b"], `c${i}`) : direct(p, "a", "b", `c${i}`)
      );
      const results = await store.append(batch);
      const all = await store.readInbox(`${p}a`, 0, 100);
      assert.deepEqual(all.map((e) => e.seq), range(1, 12));
      for (const [i, entry] of all.entries()) {
        assert.deepEqual(entry.message, stored(results[i]).message);
      }
      assert.deepEqual((await store.readInbox(`${p}a`, 4, 3)).map((e) => e.seq), [5, 6, 7]);
      assert.deepEqual((await store.readInbox(`${p}a`, 10, 5)).map((e) => e.seq), [11, 12]);
      assert.deepEqual(await store.readInbox(`${p}a`, 12, 5), []);
      assert.deepEqual(await store.readInbox(`${p}nobody`, 0, 5), []);
    },
  ],
  [
    "history pages newest first with before exclusive, and latestCseq names the last",
    async ({ store }, p) => {
      const batch = range(1, 9).map((i) => direct(p, i % 2 ? "a" : "b", i % 2 ? "b" : "a", `${i}`));
      const results = await store.append(batch);
      const conv = batch[0].conv;
      assert.equal(await store.latestCseq(conv), 9);
      const newest = await store.history(conv, null, 4);
      assert.deepEqual(newest.map((m) => m.cseq), [9, 8, 7, 6]);
      assert.deepEqual(newest[0], stored(results[8]).message);
      assert.deepEqual((await store.history(conv, 6, 4)).map((m) => m.cseq), [5, 4, 3, 2]);
      assert.deepEqual((await store.history(conv, 2, 4)).map((m) => m.cseq), [1]);
      assert.deepEqual(await store.history(conv, 1, 4), []);
      assert.deepEqual(
        (await store.history(conv, null, 100)).map((m) => m.cseq),
        range(1, 9).reverse(),
      );
      assert.deepEqual(await store.history(`g:${p}none`, null, 10), []);
    },
  ],
  [
    "concurrent append batches on two stores keep every cseq and inbox seq gapless",
    async (subject) => {
      const { store } = subject;
      await withSecondStore(subject, async (other) => {
        await fc.assert(
          fc.asyncProperty(arbitraryBatches, async (batches) => {
            await checkConcurrentBatches([store, other], batches);
          }),
          { numRuns: 12 },
        );
      });
    },
  ],

  // ---- lifecycle ----
  [
    "migrate is idempotent and safe to run from several stores at once",
    async (subject, p) => {
      const { store } = subject;
      await store.migrate();
      assert.ok(subject.reopen, "this step needs StoreUnderTest.reopen");
      const others = await Promise.all([subject.reopen(), subject.reopen()]);
      try {
        await Promise.all([store.migrate(), ...others.map((s) => s.migrate())]);
        const req = direct(p, "a", "b", "c1");
        await others[0].append([req]);
        assert.equal(await store.latestCseq(req.conv), 1);
      } finally {
        await Promise.all(others.map((s) => s.close()));
      }
    },
  ],
  [
    "everything written is still there after close and reopen",
    async (subject, p) => {
      const { store } = subject;
      const hana = user(p, "hana", { disabled: true, userId: `${p}hana` });
      await store.createUser(hana);
      const tok = token(p, "t1", hana.userId, { usedAt: 42, revoked: true });
      await store.saveRefreshToken(tok);
      await store.fence(`user/${p}hana`, 6);
      await store.saveSnapshot(`group/${p}g1`, 2, new Uint8Array([9, 8, 7]));
      await store.saveAck(`user/${p}hana`, 6, hana.userId, "phone", 2);
      const batch = [
        direct(p, "hana", "ivan", "c1"),
        grouped(p, "g1", "ivan", ["hana"], "c2", {
          epoch: 2,
        }),
      ];
      const results = await store.append(batch);
      await store.close();

      assert.ok(subject.reopen, "this step needs StoreUnderTest.reopen");
      const reopened = await subject.reopen();
      try {
        assert.deepEqual(await reopened.getUserByUsername(hana.username), hana);
        assert.deepEqual(await reopened.getRefreshToken(tok.tokenHash), tok);
        assert.equal(await reopened.storedEpoch(`user/${p}hana`), 6);
        const snap = await reopened.loadSnapshot(`group/${p}g1`);
        assert.equal(snap?.epoch, 2);
        assert.deepEqual([...(snap?.data ?? [])], [9, 8, 7]);
        assert.deepEqual(await reopened.loadAcks(hana.userId), [{ device: "phone", seq: 2 }]);
        assert.deepEqual(
          (await reopened.readInbox(hana.userId, 0, 10)).map((e) => e.message),
          results.map((r) => stored(r).message),
        );
        assert.equal(await reopened.latestSeq(hana.userId), 2);
        assert.equal(await reopened.latestCseq(batch[0].conv), 1);
        assert.deepEqual(await reopened.findByCmid(`${p}ivan`, "c2"), stored(results[1]).message);
        // Counters continue where they were, and dedup still sees the old messages.
        const after = await reopened.append([
          direct(p, "hana", "ivan", "c1"),
          direct(p, "ivan", "hana", "c3"),
        ]);
        assert.equal(after[0].status, "duplicate");
        assert.equal(stored(after[1]).message.cseq, 2);
        assert.deepEqual(stored(after[1]).seqs, { [`${p}hana`]: 3, [`${p}ivan`]: 2 });
      } finally {
        await reopened.close();
      }
    },
  ],
  [
    "a closed store rejects calls with UnavailableError",
    async ({ store }, p) => {
      await store.close();
      await store.close();
      await assert.rejects(store.getUser(`${p}x`), UnavailableError);
      await assert.rejects(store.append([direct(p, "a", "b", "c1")]), UnavailableError);
    },
  ],
  // ---- administration ----
  [
    "setUserRole grants and removes a role that getUserRole reports",
    async ({ store }, p) => {
      const alice = user(p, "alice");
      await store.createUser(alice);
      assert.equal(await store.getUserRole(alice.userId), null);
      await store.setUserRole(alice.userId, "admin");
      await store.setUserRole(alice.userId, "admin");
      assert.equal(await store.getUserRole(alice.userId), "admin");
      await store.setUserRole(alice.userId, null);
      assert.equal(await store.getUserRole(alice.userId), null);
    },
  ],
  [
    "revokeUserRefreshTokens revokes every live token of that user and no one else's",
    async ({ store }, p) => {
      const [alice, bob] = [user(p, "alice"), user(p, "bob")];
      await store.createUser(alice);
      await store.createUser(bob);
      await store.saveRefreshToken(token(p, "a1", alice.userId, { familyId: `${p}fa` }));
      await store.saveRefreshToken(token(p, "a2", alice.userId, { familyId: `${p}fb` }));
      await store.saveRefreshToken(token(p, "a3", alice.userId, { revoked: true }));
      await store.saveRefreshToken(token(p, "b1", bob.userId, { familyId: `${p}fc` }));
      assert.equal(await store.revokeUserRefreshTokens(alice.userId), 2);
      assert.equal((await store.getRefreshToken(`${p}hash_a1`))?.revoked, true);
      assert.equal((await store.getRefreshToken(`${p}hash_a2`))?.revoked, true);
      assert.equal((await store.getRefreshToken(`${p}hash_b1`))?.revoked, false);
      assert.equal(await store.revokeUserRefreshTokens(alice.userId), 0);
    },
  ],
  [
    "deleteUser removes the account, its tokens, role, cursors and inbox but keeps sent messages",
    async ({ store }, p) => {
      const [alice, bob] = [user(p, "alice"), user(p, "bob")];
      // The ids `direct` uses: `${p}alice`, `${p}bob`.
      alice.userId = `${p}alice`;
      bob.userId = `${p}bob`;
      await store.createUser(alice);
      await store.createUser(bob);
      await store.setUserRole(alice.userId, "admin");
      await store.saveRefreshToken(token(p, "a1", alice.userId));
      const [sent] = await store.append([direct(p, "alice", "bob", "c1")]);
      assert.equal(sent.status, "stored");
      await store.saveAck(`user/${alice.userId}`, 1, alice.userId, "phone", 1);

      assert.equal(await store.deleteUser(alice.userId), true);
      assert.equal(await store.getUser(alice.userId), null);
      assert.equal(await store.getUserByUsername(alice.username), null);
      assert.equal(await store.getRefreshToken(`${p}hash_a1`), null);
      assert.equal(await store.getUserRole(alice.userId), null);
      assert.deepEqual(await store.loadAcks(alice.userId), []);
      assert.deepEqual(await store.readInbox(alice.userId, 0, 10), []);
      assert.equal(await store.latestSeq(alice.userId), 0);
      // Bob still has the message; the name can be registered again.
      assert.equal((await store.readInbox(bob.userId, 0, 10)).length, 1);
      await store.createUser({ ...alice, userId: `${p}alice2` });
      assert.equal(await store.deleteUser(`${p}nobody`), false);
    },
  ],
  [
    "appendAudit keeps entries that listAudit pages newest first",
    async ({ store }, p) => {
      const ids: number[] = [];
      for (let i = 0; i < 5; i++) {
        ids.push(
          await store.appendAudit({
            ts: 1_700_000_000_000 + i,
            adminId: `${p}admin`,
            action: "user.mute",
            target: `${p}u${i}`,
            details: { seconds: i, nested: { ok: true } },
          }),
        );
      }
      assert.deepEqual([...ids].sort((a, b) => a - b), ids, "ids ascend");
      const mine = (entries: AuditEntry[]) => entries.filter((e) => e.adminId === `${p}admin`);
      const first = mine(await store.listAudit(null, 1000));
      assert.deepEqual(first.map((e) => e.target), [4, 3, 2, 1, 0].map((i) => `${p}u${i}`));
      assert.deepEqual(first[0], {
        id: ids[4],
        ts: 1_700_000_000_004,
        adminId: `${p}admin`,
        action: "user.mute",
        target: `${p}u4`,
        details: { seconds: 4, nested: { ok: true } },
      });
      const page = mine(await store.listAudit(ids[2], 2));
      assert.deepEqual(page.map((e) => e.id), [ids[1], ids[0]]);
    },
  ],
  [
    "listSnapshotActors pages the actors of one kind that have a snapshot",
    async ({ store }, p) => {
      const kind = `${p}grp`;
      for (const key of ["b", "a", "c"]) {
        await store.saveSnapshot(`${kind}/${key}`, 1, new Uint8Array([1]));
      }
      await store.saveSnapshot(`${kind}x/other`, 1, new Uint8Array([1]));
      await store.saveSnapshot(`${kind}-y/other`, 1, new Uint8Array([1]));
      assert.deepEqual(await store.listSnapshotActors(kind, null, 10), [
        `${kind}/a`,
        `${kind}/b`,
        `${kind}/c`,
      ]);
      assert.deepEqual(await store.listSnapshotActors(kind, null, 2), [`${kind}/a`, `${kind}/b`]);
      assert.deepEqual(await store.listSnapshotActors(kind, `${kind}/b`, 2), [`${kind}/c`]);
    },
  ],
  // ---- message features (store_contract_messages.ts) ----
  ...MESSAGE_FEATURE_STEPS,
  ...SOCIAL_STEPS,
  // ---- batched ack cursors (store_contract_acks.ts) ----
  ...ACK_STEPS,
];

// ---- the concurrency property ----

interface GenRequest {
  conv: number;
  sender: number;
  cmid: number;
  recipients: number[];
}

const USERS = 5;

const arbitraryBatches = fc.array(
  fc.array(
    fc.record({
      conv: fc.integer({ min: 0, max: 3 }),
      sender: fc.integer({ min: 0, max: USERS - 1 }),
      cmid: fc.integer({ min: 0, max: 7 }),
      recipients: fc.array(fc.integer({ min: 0, max: USERS - 1 }), { maxLength: 6 }),
    }),
    { minLength: 1, maxLength: 8 },
  ),
  { minLength: 2, maxLength: 8 },
);

/**
 * Sends every batch at once, alternating between the stores, then checks that each
 * (from, cmid) was stored exactly once and that cseqs and inbox seqs are 1..n without gaps and
 * agree with what the store reads back.
 */
async function checkConcurrentBatches(stores: Store[], gen: GenRequest[][]): Promise<void> {
  const p = prefix();
  const u = (i: number) => `${p}u${i}`;
  const batches: AppendRequest[][] = gen.map((batch, b) =>
    batch.map((g, i) => ({
      actorId: `group/${p}g${g.conv}`,
      epoch: 1,
      mid: `${p}m${b}_${i}`,
      conv: `g:${p}g${g.conv}`,
      from: u(g.sender),
      to: { group: `${p}g${g.conv}` },
      cmid: `k${g.cmid}`,
      ts: b * 100 + i,
      body: { type: "text", text: `${b}/${i}` },
      recipients: [u(g.sender), ...g.recipients.map(u)],
    }))
  );
  const results = await Promise.all(
    batches.map((batch, b) => stores[b % stores.length].append(batch)),
  );

  const byKey = new Map<string, StoredMessage>();
  const cseqs = new Map<string, number[]>();
  const seqs = new Map<string, { seq: number; mid: string }[]>();
  for (const [b, batch] of batches.entries()) {
    assert.equal(results[b].length, batch.length);
    const previousCseq = new Map<string, number>();
    for (const [i, req] of batch.entries()) {
      const result = results[b][i];
      if (result.status !== "stored") continue;
      const key = `${req.from}/${req.cmid}`;
      assert.ok(!byKey.has(key), `(from, cmid) ${key} stored twice`);
      byKey.set(key, result.message);
      assert.equal(result.message.mid, req.mid);
      // Within a batch, later requests of a conversation get later cseqs.
      assert.ok((previousCseq.get(req.conv) ?? 0) < result.message.cseq);
      previousCseq.set(req.conv, result.message.cseq);
      cseqs.set(req.conv, [...(cseqs.get(req.conv) ?? []), result.message.cseq]);
      assert.deepEqual(Object.keys(result.seqs).sort(), [...new Set(req.recipients)].sort());
      for (const [userId, seq] of Object.entries(result.seqs)) {
        seqs.set(userId, [...(seqs.get(userId) ?? []), { seq, mid: req.mid }]);
      }
    }
  }
  for (const [b, batch] of batches.entries()) {
    for (const [i, req] of batch.entries()) {
      const result = results[b][i];
      assert.notEqual(result.status, "fenced");
      if (result.status === "duplicate") {
        assert.deepEqual(result.message, byKey.get(`${req.from}/${req.cmid}`));
      }
    }
  }
  for (const [conv, list] of cseqs) {
    assert.deepEqual([...list].sort((x, y) => x - y), range(1, list.length), `cseqs of ${conv}`);
    assert.equal(await stores[0].latestCseq(conv), list.length);
    const history = await stores[1 % stores.length].history(conv, null, 1000);
    assert.deepEqual(history.map((m) => m.cseq), range(1, list.length).reverse());
  }
  for (const [userId, list] of seqs) {
    const sorted = [...list].sort((x, y) => x.seq - y.seq);
    assert.deepEqual(sorted.map((e) => e.seq), range(1, list.length), `seqs of ${userId}`);
    assert.equal(await stores[0].latestSeq(userId), list.length);
    const inbox = await stores[1 % stores.length].readInbox(userId, 0, 1000);
    assert.deepEqual(inbox.map((e) => [e.seq, e.message.mid]), sorted.map((e) => [e.seq, e.mid]));
  }
}
