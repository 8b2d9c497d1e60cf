/**
 * Hostile HTTP input against a real node: invalid JSON, prototype keys, deep nesting, huge bodies,
 * wrong content types on every JSON route, and path tricks on the media routes (traversal,
 * encoded separators, NUL bytes, huge ids). Every answer must be a 4xx with the documented error
 * body `{"error": {"code", "message"}}` (never a 5xx, never a file's content), nothing reaches
 * `Object.prototype`, and the node stays healthy.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { signUp } from "../support/client.ts";
import { testNode } from "../support/node.ts";

const JSON_ROUTES = ["/v1/auth/register", "/v1/auth/login", "/v1/auth/refresh"];

async function expectClientError(r: Response, what: string): Promise<string> {
  const text = await r.text();
  assert.ok(r.status >= 400 && r.status < 500, `${what}: status ${r.status} ${text.slice(0, 200)}`);
  let body: { error?: { code?: unknown; message?: unknown } };
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${what}: error body is not JSON: ${text.slice(0, 200)}`);
  }
  assert.equal(typeof body.error?.code, "string", what);
  assert.match(body.error!.code as string, /^[a-z][a-z_]*$/, what);
  assert.equal(typeof body.error?.message, "string", what);
  return body.error!.code as string;
}

Deno.test("invalid JSON, wrong content types and prototype keys answer 4xx with the error body", async () => {
  const node = await testNode({
    // Throttling is tested elsewhere; here every request should reach the parser.
    LOGIN_ATTEMPTS_PER_USER_PER_MIN: "100000",
    LOGIN_ATTEMPTS_PER_IP_PER_MIN: "100000",
    REGISTRATIONS_PER_IP_PER_HOUR: "100000",
  });
  try {
    const post = (path: string, body: BodyInit, type?: string) =>
      fetch(`${node.url}${path}`, {
        method: "POST",
        headers: type === undefined ? {} : { "content-type": type },
        body,
      });
    const junk = fc.sample(
      fc.oneof(
        fc.string({ maxLength: 200 }),
        fc.string({ unit: "binary", maxLength: 200 }),
        fc.constantFrom(
          "",
          "{",
          "[]",
          "null",
          "42",
          '"str"',
          '{"username": }',
          "{'username': 'x'}",
          '{"username": "a\u0000b", "password": "x"}',
          '{"username": 1e999, "password": []}',
          '{"__proto__": {"polluted": true}, "username": "abc", "password": "short"}',
          '{"constructor": {"prototype": {"polluted": true}}}',
          "[".repeat(5000) + "]".repeat(5000),
          '{"a":'.repeat(3000) + "1" + "}".repeat(3000),
          "\ufeff{}",
        ),
      ),
      { numRuns: 60, seed: 99 },
    );
    for (const path of JSON_ROUTES) {
      for (const body of junk) {
        const code = await expectClientError(
          await post(path, body, "application/json"),
          `${path} ${JSON.stringify(body).slice(0, 60)}`,
        );
        assert.ok(["bad_request", "invalid_credentials", "invalid_token"].includes(code), code);
      }
      for (
        const type of [
          undefined,
          "text/plain",
          "application/x-www-form-urlencoded",
          "multipart/form-data; boundary=x",
          "application/jsonx",
          "json",
        ]
      ) {
        const code = await expectClientError(
          await post(path, '{"username":"abc","password":"12345678"}', type),
          `${path} as ${type}`,
        );
        assert.equal(code, "bad_request");
      }
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    const health = await fetch(`${node.url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    await node.stop();
  }
});

Deno.test("huge bodies are refused early with 413 and the node stays healthy", async () => {
  const node = await testNode({});
  try {
    const heap0 = Deno.memoryUsage().heapUsed;
    for (const path of JSON_ROUTES) {
      // 8 MiB streamed without a declared length, then 1 MiB with one.
      const chunk = new TextEncoder().encode('{"pad":"' + "x".repeat(65536));
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(ctrl) {
          if (sent >= 128) return ctrl.close();
          sent++;
          ctrl.enqueue(chunk);
        },
      });
      const r1 = await fetch(`${node.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: stream,
      }).catch((err) => err as Error);
      // The server may answer 413 before reading everything, or cut the upload: both refuse it.
      if (r1 instanceof Response) {
        assert.equal(r1.status, 413);
        await expectClientError(r1, `${path} streamed`);
      }
      const r2 = await fetch(`${node.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"pad":"' + "y".repeat(1 << 20) + '"}',
      });
      assert.equal(r2.status, 413);
      assert.equal(await expectClientError(r2, `${path} 1 MiB`), "bad_request");
    }
    const growth = Deno.memoryUsage().heapUsed - heap0;
    assert.ok(growth < 64 * 1048576, `heap grew ${(growth / 1048576).toFixed(1)} MiB`);
    const health = await fetch(`${node.url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    await node.stop();
  }
});

Deno.test("path tricks on media routes never reach a file outside the media store", async () => {
  const node = await testNode({});
  try {
    const user = await signUp(node.url, `media_${crypto.randomUUID().slice(0, 8)}`);
    const auth = { authorization: `Bearer ${user.accessToken}` };
    // A file the node can read, so a traversal that works would show its content.
    const secret = `${node.dataDir}/../im_path_trick_${crypto.randomUUID().slice(0, 8)}.txt`;
    await Deno.writeTextFile(secret, "TOP-SECRET-CONTENT");
    const name = secret.split("/").pop()!;
    try {
      const tricks = [
        `../${name}`,
        `..%2f${name}`,
        `%2e%2e%2f${name}`,
        `%2e%2e/${name}`,
        `..%5c${name}`,
        `....//${name}`,
        `..%252f${name}`,
        `%00${name}`,
        `m_x%00.txt`,
        `${"a".repeat(5000)}`,
        `%2F%2Fetc%2Fpasswd`,
        `..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd`,
        `../../../../../../etc/passwd`,
        `jwt_secret`,
        `..%2fjwt_secret`,
        `..%2fim.sqlite3`,
      ];
      for (const t of tricks) {
        for (const headers of [auth, {}]) {
          const r = await fetch(`${node.url}/v1/media/${t}`, { headers });
          const text = await r.text();
          assert.ok(r.status >= 400 && r.status < 500, `${t}: ${r.status}`);
          for (const leak of ["TOP-SECRET", "root:", "SQLite format"]) {
            assert.ok(!text.includes(leak), `${t} leaked ${leak}`);
          }
        }
      }
      const health = await fetch(`${node.url}/healthz`);
      assert.equal(health.status, 200);
      await health.body?.cancel();
    } finally {
      await Deno.remove(secret);
    }
  } finally {
    await node.stop();
  }
});
