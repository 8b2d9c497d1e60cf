/**
 * JWT and refresh-token attacks against a real node: every forged, foreign, expired, early or
 * tampered access token is refused at the WebSocket `auth` (invalid_token, close 4401); tokens of
 * disabled or deleted users are refused; a refresh token reused after rotation revokes its whole
 * family; signing keys rotate through JWT_SECRET_FILE without a restart (timer and SIGHUP).
 */
import assert from "node:assert/strict";
import { decodeProtectedHeader, exportSPKI, generateKeyPair, SignJWT } from "jose";
import { keysFromSecrets } from "../../gateway/key_reload.ts";
import { NodeProcess } from "../cluster/harness.ts";
import { login, signUp, TestClient } from "../support/client.ts";
import { testNode } from "../support/node.ts";

const SECRET_A = "A".repeat(40);
const SECRET_B = "B".repeat(40);

function uname(p: string): string {
  return `${p}_${crypto.randomUUID().slice(0, 8)}`;
}

const nowSec = () => Math.floor(Date.now() / 1000);

async function kidOf(secret: string): Promise<string> {
  return (await keysFromSecrets([secret]))[0].kid;
}

/** A token with any header and claims, HMAC-signed with `secret`. */
async function forgeHs(
  claims: Record<string, unknown>,
  header: Record<string, unknown>,
  secret: string | Uint8Array,
): Promise<string> {
  return await new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(
    typeof secret === "string" ? new TextEncoder().encode(secret) : secret,
  );
}

function b64url(value: unknown): string {
  return new TextEncoder().encode(JSON.stringify(value)).toBase64({
    alphabet: "base64url",
    omitPadding: true,
  });
}

/** Opens a socket, sends `auth` with `token`, returns the answer's code and the close code. */
async function tryAuth(base: string, token: string): Promise<{ code: string; close: number }> {
  const c = await TestClient.open(base);
  const answer = await c.request({ op: "auth", token });
  if (answer.op === "ok") {
    await c.close();
    return { code: "ok", close: 0 };
  }
  return { code: String(answer.code), close: await c.closed };
}

Deno.test("forged, foreign, expired, early and tampered access tokens are refused at auth", async () => {
  const node = await testNode({ JWT_SECRET: SECRET_A });
  try {
    const user = await signUp(node.url, uname("jwt"));
    const kid = await kidOf(SECRET_A);
    const good = {
      iss: "im",
      aud: "im.v1",
      sub: user.userId,
      dev: "d1",
      iat: nowSec(),
      exp: nowSec() + 600,
    };
    const hs = { alg: "HS256", kid };
    // The forging helper itself works: a well-formed token signed with the node's secret passes.
    assert.equal((await tryAuth(node.url, await forgeHs(good, hs, SECRET_A))).code, "ok");

    const rsa = await generateKeyPair("RS256", { extractable: true });
    const ec = await generateKeyPair("ES256", { extractable: true });
    const publicPem = await exportSPKI(rsa.publicKey);
    const real = user.accessToken;
    const [h, p, s] = real.split(".");
    const flipped = s[0] === "A" ? "B" + s.slice(1) : "A" + s.slice(1);
    const attacks: [string, string][] = [
      ["alg none", `${b64url({ alg: "none", kid })}.${b64url(good)}.`],
      ["alg none, uppercase", `${b64url({ alg: "NONE", kid })}.${b64url(good)}.`],
      [
        "RS256 signed with an attacker key",
        await new SignJWT(good).setProtectedHeader({ alg: "RS256", kid }).sign(rsa.privateKey),
      ],
      [
        "ES256 signed with an attacker key",
        await new SignJWT(good).setProtectedHeader({ alg: "ES256", kid }).sign(ec.privateKey),
      ],
      // The classic HS/RS confusion: HMAC keyed with a public key the attacker knows.
      ["HS256 keyed with a public key", await forgeHs(good, hs, publicPem)],
      ["HS512 with the right secret", await forgeHs(good, { alg: "HS512", kid }, SECRET_A)],
      ["another secret", await forgeHs(good, hs, SECRET_B)],
      ["unknown kid", await forgeHs(good, { alg: "HS256", kid: "h000000000000" }, SECRET_A)],
      ["wrong issuer", await forgeHs({ ...good, iss: "evil" }, hs, SECRET_A)],
      ["wrong audience", await forgeHs({ ...good, aud: "im.v2" }, hs, SECRET_A)],
      [
        "expired",
        await forgeHs({ ...good, iat: nowSec() - 1000, exp: nowSec() - 10 }, hs, SECRET_A),
      ],
      ["not yet valid (nbf)", await forgeHs({ ...good, nbf: nowSec() + 3600 }, hs, SECRET_A)],
      [
        "issued in the future (iat)",
        await forgeHs({ ...good, iat: nowSec() + 3600, exp: nowSec() + 7200 }, hs, SECRET_A),
      ],
      ["tampered signature", `${h}.${p}.${flipped}`],
      [
        "tampered payload",
        `${h}.${
          b64url({ ...JSON.parse(atob(p.replace(/-/g, "+").replace(/_/g, "/"))), sub: "u_x" })
        }.${s}`,
      ],
      ["deleted (unknown) user", await forgeHs({ ...good, sub: "u_deleted" }, hs, SECRET_A)],
      ["garbage", "a.b.c"],
    ];
    for (const [name, token] of attacks) {
      const r = await tryAuth(node.url, token);
      assert.deepEqual(r, { code: "invalid_token", close: 4401 }, name);
    }
  } finally {
    await node.stop();
  }
});

Deno.test("a disabled or deleted user's tokens are refused at auth, login and refresh", async () => {
  const node = await testNode({});
  try {
    const name = uname("gone");
    const user = await signUp(node.url, name);
    assert.equal((await tryAuth(node.url, user.accessToken)).code, "ok");
    await node.store.setUserDisabled(user.userId, true);
    assert.deepEqual(await tryAuth(node.url, user.accessToken), {
      code: "invalid_token",
      close: 4401,
    });
    const r = await fetch(`${node.url}/v1/auth/refresh`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refreshToken: user.refreshToken }),
    });
    assert.equal(r.status, 401);
    assert.equal((await r.json()).error.code, "invalid_token");
    await assert.rejects(() => login(node.url, name, "correct horse battery"), /401/);

    const other = await signUp(node.url, uname("deleted"));
    const store = node.store as unknown as { deleteUser?: (id: string) => Promise<boolean> };
    if (store.deleteUser) {
      await store.deleteUser(other.userId);
      assert.deepEqual(await tryAuth(node.url, other.accessToken), {
        code: "invalid_token",
        close: 4401,
      });
    }
  } finally {
    await node.stop();
  }
});

Deno.test("a refresh token reused after rotation is refused and revokes its whole family", async () => {
  const node = await testNode({});
  try {
    const user = await signUp(node.url, uname("reuse"));
    const refresh = async (token: string) => {
      const r = await fetch(`${node.url}/v1/auth/refresh`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refreshToken: token }),
      });
      return { status: r.status, body: await r.json() };
    };
    const first = await refresh(user.refreshToken);
    assert.equal(first.status, 200);
    const stolen = await refresh(user.refreshToken);
    assert.equal(stolen.status, 401);
    assert.equal(stolen.body.error.code, "invalid_token");
    // The family is revoked: the legitimate rotated token is dead too.
    assert.equal((await refresh(first.body.refreshToken)).status, 401);
  } finally {
    await node.stop();
  }
});

Deno.test("signing keys rotate through JWT_SECRET_FILE on a timer without a restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "im_keys_" });
  const file = `${dir}/jwt_secrets`;
  await Deno.writeTextFile(file, SECRET_A + "\n");
  const node = await testNode({ JWT_SECRET_FILE: file, JWT_RELOAD_SEC: "1" });
  try {
    const [kidA, kidB] = [await kidOf(SECRET_A), await kidOf(SECRET_B)];
    const name = uname("rot");
    const before = await signUp(node.url, name);
    assert.equal(decodeProtectedHeader(before.accessToken).kid, kidA);

    // Step 1: the new key in front; the old one still verifies.
    await Deno.writeTextFile(file, `${SECRET_B}\n${SECRET_A}\n`);
    let after = before;
    const end = Date.now() + 5000;
    while (decodeProtectedHeader(after.accessToken).kid !== kidB && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
      after = await login(node.url, name, "correct horse battery");
    }
    assert.equal(decodeProtectedHeader(after.accessToken).kid, kidB, "new key signs");
    assert.equal(
      (await tryAuth(node.url, before.accessToken)).code,
      "ok",
      "old tokens still valid",
    );
    assert.equal((await tryAuth(node.url, after.accessToken)).code, "ok");

    // A broken file (a short secret) is refused: the keys in force stay.
    await Deno.writeTextFile(file, "short\n");
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await node.reloadKeys(), false);
    assert.equal((await tryAuth(node.url, after.accessToken)).code, "ok");

    // Step 2: the old key removed; its tokens stop verifying.
    await Deno.writeTextFile(file, `${SECRET_B}\n`);
    await node.reloadKeys();
    assert.equal((await tryAuth(node.url, before.accessToken)).code, "invalid_token");
    assert.equal((await tryAuth(node.url, after.accessToken)).code, "ok");
  } finally {
    await node.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGHUP makes a node process re-read JWT_SECRET_FILE", async () => {
  const dir = await Deno.makeTempDir({ prefix: "im_hup_" });
  const file = `${dir}/jwt_secrets`;
  await Deno.writeTextFile(file, SECRET_A + "\n");
  const node = await NodeProcess.start({
    DATA_DIR: `${dir}/data`,
    JWT_SECRET_FILE: file,
    JWT_RELOAD_SEC: "0",
    PASSWORD_ITERATIONS: "1000",
  });
  try {
    const name = uname("hup");
    const first = await signUp(node.url, name);
    assert.equal(decodeProtectedHeader(first.accessToken).kid, await kidOf(SECRET_A));
    await Deno.writeTextFile(file, `${SECRET_B}\n${SECRET_A}\n`);
    node.kill("SIGHUP");
    const kidB = await kidOf(SECRET_B);
    let kid = "";
    const end = Date.now() + 5000;
    while (kid !== kidB && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
      kid = decodeProtectedHeader(
        (await login(node.url, name, "correct horse battery"))
          .accessToken,
      ).kid ?? "";
    }
    assert.equal(kid, kidB);
    assert.equal((await tryAuth(node.url, first.accessToken)).code, "ok");
    assert.match(node.log, /jwt keys reloaded/);
    assert.ok(!node.log.includes(SECRET_A) && !node.log.includes(SECRET_B), "secrets not logged");
  } finally {
    await node.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
