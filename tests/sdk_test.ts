/**
 * The SDK (sdk/mod.ts) against a real node: accounts, both subprotocols, exactly-once delivery
 * in seq order, reconnect after the server closes the socket, resume by sync, the offline send
 * queue (same cmid, stored once), token refresh on 4401, and sign-out on a forced logout.
 */
import assert from "node:assert/strict";
import { ImClient, type MsgFrame, type SdkStorage, type SignedOutReason } from "../sdk/mod.ts";
import { testNode } from "./support/node.ts";
import { signUp, TestClient } from "./support/client.ts";

const PASSWORD = "correct horse battery";

function uniq(name: string): string {
  return `${name}_${crypto.randomUUID().slice(0, 8)}`;
}

/** A client with short backoff, as tests want it. */
function client(base: string, extra: Partial<ConstructorParameters<typeof ImClient>[0]> = {}) {
  return new ImClient({
    baseUrl: base,
    reconnect: { initialDelayMs: 50, maxDelayMs: 400 },
    requestTimeoutMs: 3000,
    ackDelayMs: 20,
    ...extra,
  });
}

async function until(pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Closes every server-side socket of `userId` on `node` with `code`. */
function dropSockets(
  node: Awaited<ReturnType<typeof testNode>>,
  userId: string,
  code = 1012,
  reason = "node restarting",
): number {
  const conns = [...node.registry.forUser(userId)];
  for (const c of conns) c.close(code, reason);
  return conns.length;
}

class MemoryStorage implements SdkStorage {
  readonly map = new Map<string, string>();
  getItem(k: string) {
    return this.map.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    this.map.set(k, v);
  }
  removeItem(k: string) {
    this.map.delete(k);
  }
}

Deno.test("the SDK signs up, connects on both subprotocols and delivers each message once in seq order", async () => {
  const node = await testNode();
  const alice = client(node.url);
  const bob = client(node.url, { format: "json" });
  try {
    const a = await alice.signUp(uniq("alice"), PASSWORD);
    const b = await bob.signUp(uniq("bob"), PASSWORD);
    assert.equal(alice.userId, a.userId);
    const got: MsgFrame[] = [];
    bob.on<MsgFrame & { op: "msg" }>("msg", (m) => got.push(m));
    const states: string[] = [];
    alice.onState((s) => states.push(s));
    await Promise.all([alice.connect(), bob.connect()]);
    assert.equal(alice.state, "open");
    assert.deepEqual(states, ["connecting", "open"]);

    const oks = [];
    for (let i = 0; i < 5; i++) oks.push(alice.sendText({ user: b.userId }, `hi ${i}`));
    // Overlapping syncs while messages arrive: a live push and a sync may carry the same seq.
    const syncs = [bob.sync(), bob.sync()];
    const done = await Promise.all(oks);
    await Promise.all(syncs);
    await until(() => got.length >= 5, "5 messages");
    await bob.sync();
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(got.map((m) => m.seq), [1, 2, 3, 4, 5]);
    assert.deepEqual(got.map((m) => m.body.text), [0, 1, 2, 3, 4].map((i) => `hi ${i}`));
    assert.deepEqual(got.map((m) => m.mid), done.map((d) => d.mid));
    assert.equal(bob.lastSeq, 5);

    const page = await alice.history(done[0].conv, { limit: 3 });
    assert.deepEqual(page.messages.map((m) => m.cseq), [5, 4, 3]);
    assert.equal(page.more, true);
    const group = await alice.createGroup("g", [b.userId]);
    assert.match(group.conv, /^g:/);
    await alice.ping();
    await assert.rejects(alice.request("no.such.op"), { code: "bad_request" });
  } finally {
    await alice.close();
    await bob.close();
    await node.stop();
  }
});

Deno.test("the SDK reconnects by itself after the server closes the socket and syncs what it missed", async () => {
  const node = await testNode();
  const storage = new MemoryStorage();
  const bob = client(node.url, { storage });
  try {
    const alice = await signUp(node.url, uniq("alice"));
    const b = await bob.signUp(uniq("bob"), PASSWORD);
    const seen: number[] = [];
    bob.on<MsgFrame & { op: "msg" }>("msg", (m) => seen.push(m.seq!));
    await bob.connect();
    const sender = await TestClient.connect(node.url, alice.accessToken);
    const send = (i: number) =>
      sender.request({
        op: "send",
        to: { user: b.userId },
        cmid: `m${i}`,
        body: { type: "text", text: `${i}` },
      });
    await send(1);
    await until(() => seen.length === 1, "the first message");

    const states: string[] = [];
    bob.onState((s) => states.push(s));
    assert.equal(dropSockets(node, b.userId), 1);
    await until(() => bob.state !== "open", "the client to notice");
    // Sent while bob is away: he gets them by sync when he is back.
    await send(2);
    await send(3);
    await until(() => bob.state === "open", "the reconnect");
    await until(() => seen.length === 3, "the missed messages");
    assert.deepEqual(seen, [1, 2, 3]);
    assert.deepEqual(states.slice(0, 2), ["reconnecting", "open"]);
    assert.equal(storage.getItem(`im.seq.${b.userId}.`), "3");
    // The cumulative ack reached the server (the device cursor moved).
    await until(() => bob.lastSeq === 3, "lastSeq");
    await sender.close();
  } finally {
    await bob.close();
    await node.stop();
  }
});

Deno.test("the SDK resends its offline queue after a reconnect with the same cmid, and each message is stored once", async () => {
  const node = await testNode();
  const alice = client(node.url, { reconnect: { initialDelayMs: 300, maxDelayMs: 300 } });
  try {
    const a = await alice.signUp(uniq("alice"), PASSWORD);
    const bob = await signUp(node.url, uniq("bob"));
    await alice.connect();
    const first = await alice.sendText({ user: bob.userId }, "before");

    // In flight when the socket drops: its answer is lost with the connection.
    const inFlight = alice.sendText({ user: bob.userId }, "in flight", { cmid: "fixed-cmid-1" });
    assert.deepEqual(alice.pendingSends().map((p) => p.cmid), ["fixed-cmid-1"]);
    dropSockets(node, a.userId);
    await until(() => alice.state === "reconnecting", "the drop");
    // Queued while offline.
    const queued = [
      alice.sendText({ user: bob.userId }, "offline 1"),
      alice.sendText({ user: bob.userId }, "offline 2"),
    ];
    assert.equal(alice.pendingSends().length, 3);
    const oks = await Promise.all([inFlight, ...queued]);
    assert.equal(oks[0].cmid, "fixed-cmid-1");
    assert.deepEqual(alice.pendingSends(), []);

    const page = await alice.history(first.conv);
    const texts = page.messages.map((m) => m.body.text).reverse();
    assert.deepEqual(texts, ["before", "in flight", "offline 1", "offline 2"]);
    assert.deepEqual(
      page.messages.map((m) => m.cseq).reverse(),
      [1, 2, 3, 4],
      "no gaps and no duplicates",
    );
    // The same cmid again is answered from the store, not stored twice.
    const again = await alice.sendText({ user: bob.userId }, "in flight", { cmid: "fixed-cmid-1" });
    assert.equal(again.mid, oks[0].mid);
  } finally {
    await alice.close();
    await node.stop();
  }
});

Deno.test("the SDK refreshes a refused access token and connects, and signs out when refresh is refused", async () => {
  const node = await testNode();
  const alice = client(node.url);
  const signedOut: SignedOutReason[] = [];
  try {
    const session = await alice.signUp(uniq("alice"), PASSWORD);
    // A token the server refuses (close 4401) with a good refresh token behind it.
    alice.useSession({ ...session, accessToken: "not-a-token", accessExpiresAt: Date.now() + 1e6 });
    await alice.connect();
    assert.equal(alice.state, "open");
    assert.notEqual(alice.session?.accessToken, "not-a-token");
    assert.notEqual(alice.session?.refreshToken, session.refreshToken);
    await alice.close();

    // Now both are bad: the session ends instead of retrying forever.
    alice.useSession({ ...session, accessToken: "not-a-token", accessExpiresAt: Date.now() + 1e6 });
    alice.onSignedOut((r) => signedOut.push(r));
    await assert.rejects(alice.connect(), { code: "invalid_token" });
    assert.deepEqual(signedOut, ["invalid_token"]);
    assert.equal(alice.session, null);
  } finally {
    await alice.close();
    await node.stop();
  }
});

Deno.test("the SDK stops and signs out when the server closes with 1008 for a forced logout", async () => {
  const node = await testNode();
  const alice = client(node.url);
  try {
    const a = await alice.signUp(uniq("alice"), PASSWORD);
    await alice.connect();
    const signedOut = new Promise<SignedOutReason>((r) => alice.onSignedOut(r));
    const failed = alice.sendText({ user: a.userId }, "never").catch((e) => e.code);
    dropSockets(node, a.userId, 1008, "forced logout");
    assert.equal(await signedOut, "forced_logout");
    assert.equal(alice.state, "closed");
    assert.equal(await failed, "unauthenticated");
    await new Promise((r) => setTimeout(r, 150));
    assert.equal([...node.registry.forUser(a.userId)].length, 0, "it did not reconnect");
  } finally {
    await alice.close();
    await node.stop();
  }
});

Deno.test("the SDK rejects REST errors with the server's code", async () => {
  const node = await testNode();
  const c = client(node.url);
  try {
    const name = uniq("carol");
    await c.register(name, PASSWORD);
    await assert.rejects(c.register(name, PASSWORD), { code: "username_taken", status: 409 });
    await assert.rejects(c.login(name, "wrong password!"), { code: "invalid_credentials" });
    await assert.rejects(c.connect(), { code: "unauthenticated" });
    await assert.rejects(c.request("ping"), { code: "disconnected" });
  } finally {
    await c.close();
    await node.stop();
  }
});
