import assert from "node:assert/strict";
import { ImError } from "../actors/errors.ts";
import {
  constantTimeEqual,
  DEFAULT_PASSWORD_ITERATIONS,
  hashIterations,
  hashPassword,
  needsRehash,
  validatePassword,
  validateUsername,
  verifyPassword,
} from "./password.ts";

const FAST = { iterations: 1000 };

Deno.test("a hashed password verifies and a different one does not", async () => {
  const encoded = await hashPassword("correct horse", FAST);
  assert.equal(await verifyPassword("correct horse", encoded), true);
  assert.equal(await verifyPassword("correct hors", encoded), false);
  assert.equal(await verifyPassword("correct horse ", encoded), false);
  assert.equal(await verifyPassword("", encoded), false);
});

Deno.test("the encoded hash names the scheme, the iterations, a 16-byte salt and a 32-byte hash", async () => {
  const encoded = await hashPassword("password1", FAST);
  const [scheme, iter, salt, hash] = encoded.split("$");
  assert.equal(scheme, "pbkdf2-sha256");
  assert.equal(iter, "1000");
  assert.equal(Uint8Array.fromBase64(salt).length, 16);
  assert.equal(Uint8Array.fromBase64(hash).length, 32);
  assert.equal(hashIterations(encoded), 1000);
});

Deno.test("the default iteration count is 210000", () => {
  assert.equal(DEFAULT_PASSWORD_ITERATIONS, 210_000);
});

Deno.test("hashing the same password twice uses different salts", async () => {
  const a = await hashPassword("password1", FAST);
  const b = await hashPassword("password1", FAST);
  assert.notEqual(a, b);
  assert.equal(await verifyPassword("password1", b), true);
});

Deno.test("the hash matches a PBKDF2-SHA256 test vector", async () => {
  // RFC 7914 §11: PBKDF2-HMAC-SHA256, P="passwd", S="salt", c=1, dkLen=64 (first 32 bytes here).
  const salt = new TextEncoder().encode("salt").toBase64();
  const expected = Uint8Array.from(
    "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
      .match(/../g)!.map((h) => parseInt(h, 16)),
  );
  const encoded = `pbkdf2-sha256$1$${salt}$${expected.toBase64()}`;
  assert.equal(await verifyPassword("passwd", encoded), true);
  assert.equal(await verifyPassword("passwe", encoded), false);
});

Deno.test("unicode passwords verify after NFC normalisation", async () => {
  const encoded = await hashPassword("caf\u00e9-latte", FAST);
  assert.equal(await verifyPassword("cafe\u0301-latte", encoded), true);
});

Deno.test("needsRehash reports hashes made with fewer iterations", async () => {
  const encoded = await hashPassword("password1", FAST);
  assert.equal(needsRehash(encoded, 1000), false);
  assert.equal(needsRehash(encoded, 2000), true);
  assert.equal(needsRehash(encoded), true);
});

Deno.test("malformed stored hashes are rejected as internal errors", async () => {
  const good = await hashPassword("password1", FAST);
  const [, , salt, hash] = good.split("$");
  for (
    const bad of [
      "",
      "plain",
      `bcrypt$1000$${salt}$${hash}`,
      `pbkdf2-sha256$0$${salt}$${hash}`,
      `pbkdf2-sha256$-1$${salt}$${hash}`,
      `pbkdf2-sha256$99999999$${salt}$${hash}`,
      `pbkdf2-sha256$1000$!!$${hash}`,
      `pbkdf2-sha256$1000$${salt}$AAAA`,
      `pbkdf2-sha256$1000$${salt}`,
    ]
  ) {
    await assert.rejects(
      () => verifyPassword("password1", bad),
      (e) => e instanceof ImError && e.code === "internal",
      bad,
    );
  }
});

Deno.test("hashPassword refuses nonsensical iteration counts", async () => {
  await assert.rejects(() => hashPassword("password1", { iterations: 0 }), RangeError);
  await assert.rejects(() => hashPassword("password1", { iterations: 1.5 }), RangeError);
});

Deno.test("usernames are 3 to 32 characters of a-z 0-9 _ . -", () => {
  for (const ok of ["abc", "a.b-c_d", "0123456789", "x".repeat(32), "..."]) {
    assert.equal(validateUsername(ok), true, ok);
  }
  for (const bad of ["ab", "x".repeat(33), "Abc", "ab c", "abé", "a/b", "", 123, null, undefined]) {
    assert.equal(validateUsername(bad), false, String(bad));
  }
});

Deno.test("passwords are 8 to 128 code points", () => {
  assert.equal(validatePassword("12345678"), true);
  assert.equal(validatePassword("1234567"), false);
  assert.equal(validatePassword("x".repeat(128)), true);
  assert.equal(validatePassword("x".repeat(129)), false);
  // Astral characters count once each although they take two UTF-16 units.
  assert.equal(validatePassword("😀".repeat(8)), true);
  assert.equal(validatePassword("😀".repeat(128)), true);
  assert.equal(validatePassword("😀".repeat(129)), false);
  assert.equal(validatePassword("😀".repeat(4)), false);
  for (const bad of [12345678, null, undefined, ["12345678"]]) {
    assert.equal(validatePassword(bad), false);
  }
});

Deno.test("constantTimeEqual compares contents and lengths", () => {
  assert.equal(constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])), true);
  assert.equal(constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 3])), false);
  assert.equal(constantTimeEqual(new Uint8Array([1]), new Uint8Array([1, 0])), false);
});
