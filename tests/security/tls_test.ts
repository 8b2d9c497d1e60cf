/**
 * Optional TLS: with TLS_CERT_FILE and TLS_KEY_FILE the node serves HTTPS and WSS itself
 * (`Deno.serve`). The test makes a throw-away CA and certificate with `openssl` (skipped, with a
 * message, when openssl is missing) and talks to the node over TLS only.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../../config.ts";
import { testNode } from "../support/node.ts";

async function hasOpenssl(): Promise<boolean> {
  try {
    const out = await new Deno.Command("openssl", { args: ["version"], stdout: "null" }).output();
    return out.success;
  } catch {
    return false;
  }
}

async function openssl(args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

/** A throw-away CA and a server certificate for 127.0.0.1 signed by it. */
async function selfSigned(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const p = (name: string) => `${dir}/${name}`;
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    p("ca.key"),
    "-out",
    p("ca.pem"),
    "-days",
    "1",
    "-subj",
    "/CN=im test CA",
  ]);
  await openssl([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    p("key.pem"),
    "-out",
    p("req.csr"),
    "-subj",
    "/CN=localhost",
  ]);
  await Deno.writeTextFile(
    p("ext.cnf"),
    "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    p("req.csr"),
    "-CA",
    p("ca.pem"),
    "-CAkey",
    p("ca.key"),
    "-CAcreateserial",
    "-out",
    p("cert.pem"),
    "-days",
    "1",
    "-extfile",
    p("ext.cnf"),
  ]);
  return { ca: p("ca.pem"), cert: p("cert.pem"), key: p("key.pem") };
}

Deno.test("TLS needs both the certificate and the key", () => {
  assert.throws(() => loadConfig({ TLS_CERT_FILE: "/x/cert.pem" }), /TLS_KEY_FILE/);
  assert.throws(() => loadConfig({ TLS_KEY_FILE: "/x/key.pem" }), /TLS_CERT_FILE/);
});

Deno.test("with a certificate the node serves HTTPS and WSS itself", async () => {
  if (!(await hasOpenssl())) {
    console.warn("openssl not found: TLS test skipped");
    return;
  }
  const dir = await Deno.makeTempDir({ prefix: "im_tls_" });
  const { ca, cert, key } = await selfSigned(dir);
  const node = await testNode({ TLS_CERT_FILE: cert, TLS_KEY_FILE: key });
  const caCerts = [await Deno.readTextFile(ca)];
  const client = Deno.createHttpClient({ caCerts });
  try {
    assert.match(node.url, /^https:\/\//);
    const health = await fetch(`${node.url}/healthz`, { client });
    assert.equal(health.status, 200);
    await health.body?.cancel();

    // Plain HTTP on the TLS port gets no HTTP answer.
    const port = new URL(node.url).port;
    const plain = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      async (r) => {
        await r.body?.cancel();
        return r.status;
      },
      () => "refused",
    );
    assert.notEqual(plain, 200);

    // Register and log in over HTTPS.
    const reg = await fetch(`${node.url}/v1/auth/register`, {
      client,
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: `tls_${Date.now() % 1e6}`, password: "correct horse" }),
    });
    assert.equal(reg.status, 201);
    await reg.body?.cancel();

    // A WebSocket upgrade over TLS: the handshake answers 101 with the subprotocol.
    const conn = await Deno.connectTls({ hostname: "127.0.0.1", port: Number(port), caCerts });
    try {
      const req = [
        "GET /v1/ws HTTP/1.1",
        `Host: 127.0.0.1:${port}`,
        "Upgrade: websocket",
        "Connection: Upgrade",
        `Sec-WebSocket-Key: ${btoa("0123456789abcdef")}`,
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: im.v1.json",
        "",
        "",
      ].join("\r\n");
      await conn.write(new TextEncoder().encode(req));
      const buf = new Uint8Array(2048);
      const n = await conn.read(buf);
      const head = new TextDecoder().decode(buf.subarray(0, n ?? 0));
      assert.match(head, /^HTTP\/1\.1 101/);
      assert.match(head.toLowerCase(), /sec-websocket-protocol: im\.v1\.json/);
    } finally {
      conn.close();
    }
  } finally {
    client.close();
    await node.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
