import assert from "node:assert/strict";
import { decodeJwt, decodeProtectedHeader, SignJWT } from "jose";
import { ImError } from "../actors/errors.ts";
import type { Store } from "../db/store.ts";
import { openSqliteStore } from "../db/store_sqlite.ts";
import { hashRefreshToken, TokenService, type TokenServiceOptions } from "./tokens.ts";

const SECRET = "s".repeat(32);
const OTHER_SECRET = "o".repeat(32);
const T0 = Date.UTC(2030, 0, 1);

interface Ctx {
  store: Store;
  clock: { now: number };
  tokens: TokenService;
  make(options?: Partial<TokenServiceOptions>): TokenService;
}

async function withStore(fn: (ctx: Ctx) => void | Promise<void>): Promise<void> {
  const store = openSqliteStore(":memory:");
  await store.migrate();
  const clock = { now: T0 };
  const make = (options: Partial<TokenServiceOptions> = {}) =>
    new TokenService({ secret: SECRET, store, clock: () => clock.now, ...options });
  try {
    await fn({ store, clock, tokens: make(), make });
  } finally {
    await store.close();
  }
}

async function addUser(store: Store, userId: string, disabled = false): Promise<void> {
  await store.createUser({
    userId,
    username: userId.replace("_", "-"),
    passwordHash: "unused",
    createdAt: T0,
    disabled,
  });
}

function isInvalidToken(err: unknown): boolean {
  return err instanceof ImError && err.code === "invalid_token";
}

function b64url(value: unknown): string {
  return new TextEncoder().encode(JSON.stringify(value)).toBase64({
    alphabet: "base64url",
    omitPadding: true,
  });
}

/** A token signed with SECRET whose every part can be changed. */
function forge(
  claims: Record<string, unknown>,
  header: Record<string, unknown> = { alg: "HS256", kid: "k1" },
  secret = SECRET,
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader(header as { alg: string })
    .sign(new TextEncoder().encode(secret));
}

const nowSec = () => Math.floor(T0 / 1000);
const goodClaims = () => ({
  iss: "im",
  aud: "im.v1",
  sub: "u_a",
  dev: "d1",
  iat: nowSec(),
  exp: nowSec() + 900,
});

Deno.test("an issued access token verifies to its user and device", async () => {
  await withStore(async ({ store, tokens }) => {
    await addUser(store, "u_a");
    const { token, expiresIn } = await tokens.issueAccess("u_a", "phone");
    assert.equal(expiresIn, 900);
    assert.deepEqual(await tokens.verifyAccess(token), { userId: "u_a", device: "phone" });
  });
});

Deno.test("an access token is HS256 with kid, iss, aud, sub, dev, iat and exp", async () => {
  await withStore(async ({ tokens }) => {
    const { token } = await tokens.issueAccess("u_a", "phone");
    assert.deepEqual(decodeProtectedHeader(token), { alg: "HS256", typ: "JWT", kid: "k1" });
    assert.deepEqual(decodeJwt(token), {
      iss: "im",
      aud: "im.v1",
      sub: "u_a",
      dev: "phone",
      iat: nowSec(),
      exp: nowSec() + 900,
    });
  });
});

Deno.test("an access token expires after its lifetime", async () => {
  await withStore(async ({ store, tokens, clock }) => {
    await addUser(store, "u_a");
    const { token } = await tokens.issueAccess("u_a", "phone");
    clock.now = T0 + 899_000;
    assert.equal((await tokens.verifyAccess(token)).userId, "u_a");
    clock.now = T0 + 900_000;
    await assert.rejects(() => tokens.verifyAccess(token), isInvalidToken);
  });
});

Deno.test("forged or foreign access tokens are invalid_token", async () => {
  await withStore(async ({ store, tokens }) => {
    await addUser(store, "u_a");
    assert.deepEqual(await tokens.verifyAccess(await forge(goodClaims())), {
      userId: "u_a",
      device: "d1",
    });
    const { exp: _exp, ...noExp } = goodClaims();
    const { dev: _dev, ...noDev } = goodClaims();
    const { sub: _sub, ...noSub } = goodClaims();
    const bad: [string, string][] = [
      ["other secret", await forge(goodClaims(), undefined, OTHER_SECRET)],
      ["HS512", await forge(goodClaims(), { alg: "HS512", kid: "k1" })],
      ["HS384", await forge(goodClaims(), { alg: "HS384", kid: "k1" })],
      ["unknown kid", await forge(goodClaims(), { alg: "HS256", kid: "k9" })],
      ["no kid", await forge(goodClaims(), { alg: "HS256" })],
      ["other issuer", await forge({ ...goodClaims(), iss: "evil" })],
      ["other audience", await forge({ ...goodClaims(), aud: "im.v2" })],
      ["no exp", await forge(noExp)],
      ["no dev", await forge(noDev)],
      ["no sub", await forge(noSub)],
      ["numeric dev", await forge({ ...goodClaims(), dev: 5 })],
      ["alg none", `${b64url({ alg: "none" })}.${b64url(goodClaims())}.`],
      ["garbage", "not.a.jwt"],
      ["empty", ""],
    ];
    for (const [name, token] of bad) {
      await assert.rejects(() => tokens.verifyAccess(token), isInvalidToken, name);
    }
    for (const notString of [undefined, null, 42, {}]) {
      await assert.rejects(() => tokens.verifyAccess(notString), isInvalidToken);
    }
  });
});

Deno.test("a tampered payload breaks the signature", async () => {
  await withStore(async ({ store, tokens }) => {
    await addUser(store, "u_a");
    await addUser(store, "u_b");
    const { token } = await tokens.issueAccess("u_a", "phone");
    const [h, , s] = token.split(".");
    const tampered = `${h}.${b64url({ ...decodeJwt(token), sub: "u_b" })}.${s}`;
    await assert.rejects(() => tokens.verifyAccess(tampered), isInvalidToken);
  });
});

Deno.test("a disabled or unknown user's access token is refused unless the user check is off", async () => {
  await withStore(async ({ store, tokens }) => {
    await addUser(store, "u_a");
    const { token } = await tokens.issueAccess("u_a", "phone");
    await store.setUserDisabled("u_a", true);
    await assert.rejects(() => tokens.verifyAccess(token), isInvalidToken);
    assert.equal((await tokens.verifyAccess(token, { checkUser: false })).userId, "u_a");
    const ghost = await tokens.issueAccess("u_ghost", "phone");
    await assert.rejects(() => tokens.verifyAccess(ghost.token), isInvalidToken);
  });
});

Deno.test("with rotated keys the first signs and every key verifies", async () => {
  await withStore(async ({ store, make }) => {
    await addUser(store, "u_a");
    const old = make({ secret: undefined, keys: [{ kid: "k1", secret: SECRET }] });
    const rotated = make({
      secret: undefined,
      keys: [{ kid: "k2", secret: OTHER_SECRET }, { kid: "k1", secret: SECRET }],
    });
    const oldToken = (await old.issueAccess("u_a", "d")).token;
    const newToken = (await rotated.issueAccess("u_a", "d")).token;
    assert.equal(decodeProtectedHeader(newToken).kid, "k2");
    assert.equal((await rotated.verifyAccess(oldToken)).userId, "u_a");
    assert.equal((await rotated.verifyAccess(newToken)).userId, "u_a");
    // A node that does not know k2 yet refuses the new token.
    await assert.rejects(() => old.verifyAccess(newToken), isInvalidToken);
  });
});

Deno.test("issuer, audience and lifetimes are configurable", async () => {
  await withStore(async ({ store, make }) => {
    await addUser(store, "u_a");
    const a = make({ issuer: "x", audience: "y", accessTtlSec: 60 });
    const { token, expiresIn } = await a.issueAccess("u_a", "d");
    assert.equal(expiresIn, 60);
    assert.equal(decodeJwt(token).iss, "x");
    assert.equal((await a.verifyAccess(token)).userId, "u_a");
    await assert.rejects(() => make().verifyAccess(token), isInvalidToken);
  });
});

Deno.test("the constructor refuses missing, short or duplicate secrets and bad lifetimes", async () => {
  await withStore(({ make }) => {
    assert.throws(() => make({ secret: undefined }), /secret/);
    assert.throws(() => make({ secret: "x".repeat(31) }), /32 bytes/);
    assert.throws(
      () => make({ keys: [{ kid: "a", secret: SECRET }, { kid: "a", secret: OTHER_SECRET }] }),
      /duplicate/,
    );
    assert.throws(() => make({ accessTtlSec: 0 }), /lifetimes/);
    // The secret never appears in the error message.
    assert.throws(() => make({ secret: "tiny-secret" }), (e: Error) => !e.message.includes("tiny"));
  });
});

Deno.test("login gives an access token and a refresh token stored only as its hash", async () => {
  await withStore(async ({ store, tokens }) => {
    await addUser(store, "u_a");
    const pair = await tokens.login({ userId: "u_a", disabled: false }, "laptop");
    assert.equal(pair.userId, "u_a");
    assert.equal(pair.expiresIn, 900);
    assert.match(pair.refreshToken, /^[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(await tokens.verifyAccess(pair.accessToken), {
      userId: "u_a",
      device: "laptop",
    });
    assert.equal(await store.getRefreshToken(pair.refreshToken), null);
    const hash = await hashRefreshToken(pair.refreshToken);
    assert.match(hash, /^[0-9a-f]{64}$/);
    const record = await store.getRefreshToken(hash);
    assert.ok(record);
    assert.equal(record.userId, "u_a");
    assert.equal(record.device, "laptop");
    assert.equal(record.expiresAt, T0 + 30 * 24 * 3600 * 1000);
    assert.equal(record.usedAt, null);
    assert.equal(record.revoked, false);
  });
});

Deno.test("login without a device makes a fresh device id per login", async () => {
  await withStore(async ({ store, tokens }) => {
    await addUser(store, "u_a");
    const a = await tokens.verifyAccess(
      (await tokens.login({ userId: "u_a", disabled: false }))
        .accessToken,
    );
    const b = await tokens.verifyAccess(
      (await tokens.login({ userId: "u_a", disabled: false }))
        .accessToken,
    );
    assert.match(a.device, /^d_[a-z2-7]{20}$/);
    assert.notEqual(a.device, b.device);
  });
});

Deno.test("login refuses a disabled user", async () => {
  await withStore(async ({ store, tokens }) => {
    await addUser(store, "u_a", true);
    await assert.rejects(
      () => tokens.login({ userId: "u_a", disabled: true }, "d"),
      (e) => e instanceof ImError && e.code === "invalid_credentials",
    );
  });
});

Deno.test("refresh rotates the token and keeps user, device and family", async () => {
  await withStore(async ({ store, tokens, clock }) => {
    await addUser(store, "u_a");
    const first = await tokens.login({ userId: "u_a", disabled: false }, "tablet");
    clock.now += 60_000;
    const second = await tokens.refresh(first.refreshToken);
    assert.equal(second.userId, "u_a");
    assert.equal(second.expiresIn, 900);
    assert.notEqual(second.refreshToken, first.refreshToken);
    assert.deepEqual(await tokens.verifyAccess(second.accessToken), {
      userId: "u_a",
      device: "tablet",
    });
    const oldRec = await store.getRefreshToken(await hashRefreshToken(first.refreshToken));
    const newRec = await store.getRefreshToken(await hashRefreshToken(second.refreshToken));
    assert.equal(oldRec?.usedAt, T0 + 60_000);
    assert.equal(newRec?.familyId, oldRec?.familyId);
    assert.equal(newRec?.expiresAt, T0 + 60_000 + 30 * 24 * 3600 * 1000);
    // The chain goes on.
    const third = await tokens.refresh(second.refreshToken);
    assert.equal(third.userId, "u_a");
  });
});

Deno.test("reusing a rotated refresh token revokes the whole family", async () => {
  await withStore(async ({ store, tokens }) => {
    await addUser(store, "u_a");
    const first = await tokens.login({ userId: "u_a", disabled: false }, "d");
    const second = await tokens.refresh(first.refreshToken);
    await assert.rejects(() => tokens.refresh(first.refreshToken), isInvalidToken);
    // The legitimate holder's newer token died with the family.
    await assert.rejects(() => tokens.refresh(second.refreshToken), isInvalidToken);
    // Other logins (other families) are unaffected.
    const other = await tokens.login({ userId: "u_a", disabled: false }, "d2");
    assert.equal((await tokens.refresh(other.refreshToken)).userId, "u_a");
  });
});

Deno.test("two concurrent refreshes of one token leave no usable token", async () => {
  await withStore(async ({ store, tokens }) => {
    await addUser(store, "u_a");
    const first = await tokens.login({ userId: "u_a", disabled: false }, "d");
    const results = await Promise.allSettled([
      tokens.refresh(first.refreshToken),
      tokens.refresh(first.refreshToken),
    ]);
    const won = results.filter((r) => r.status === "fulfilled");
    assert.ok(won.length <= 1);
    for (const r of results) if (r.status === "rejected") assert.ok(isInvalidToken(r.reason));
    for (const r of won) {
      const token = (r as PromiseFulfilledResult<{ refreshToken: string }>).value.refreshToken;
      await assert.rejects(() => tokens.refresh(token), isInvalidToken);
    }
  });
});

Deno.test("expired, revoked, unknown and malformed refresh tokens are invalid_token", async () => {
  await withStore(async ({ store, tokens, clock }) => {
    await addUser(store, "u_a");
    const a = await tokens.login({ userId: "u_a", disabled: false }, "d");
    const b = await tokens.login({ userId: "u_a", disabled: false }, "d");
    assert.equal(await tokens.revoke(b.refreshToken), true);
    await assert.rejects(() => tokens.refresh(b.refreshToken), isInvalidToken);
    const unknown = crypto.getRandomValues(new Uint8Array(32)).toBase64({
      alphabet: "base64url",
      omitPadding: true,
    });
    await assert.rejects(() => tokens.refresh(unknown), isInvalidToken);
    for (
      const bad of ["", "short", a.refreshToken + "x", a.refreshToken.slice(1) + "+", 42, null]
    ) {
      await assert.rejects(() => tokens.refresh(bad), isInvalidToken, String(bad));
    }
    assert.equal(await tokens.revoke("nope"), false);
    assert.equal(await tokens.revoke(unknown), false);
    clock.now = T0 + 30 * 24 * 3600 * 1000;
    await assert.rejects(() => tokens.refresh(a.refreshToken), isInvalidToken);
  });
});

Deno.test("a disabled user's refresh token is invalid_token", async () => {
  await withStore(async ({ store, tokens }) => {
    await addUser(store, "u_a");
    const a = await tokens.login({ userId: "u_a", disabled: false }, "d");
    await store.setUserDisabled("u_a", true);
    await assert.rejects(() => tokens.refresh(a.refreshToken), isInvalidToken);
    await store.setUserDisabled("u_a", false);
    assert.equal((await tokens.refresh(a.refreshToken)).userId, "u_a");
  });
});

Deno.test("a store failure surfaces as unavailable, not invalid_token", async () => {
  await withStore(async ({ store, tokens }) => {
    await addUser(store, "u_a");
    const a = await tokens.login({ userId: "u_a", disabled: false }, "d");
    const closed = openSqliteStore(":memory:");
    await closed.close();
    const broken = new TokenService({ secret: SECRET, store: closed, clock: () => T0 });
    await assert.rejects(
      () => broken.refresh(a.refreshToken),
      (e) => e instanceof ImError && e.code === "unavailable",
    );
    await assert.rejects(
      () => broken.verifyAccess(a.accessToken),
      (e) => e instanceof ImError && e.code === "unavailable",
    );
    assert.ok(store);
  });
});
