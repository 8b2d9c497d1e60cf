import assert from "node:assert/strict";
import { FaultProxy } from "./fault_proxy.ts";

/** An echo server on a free port. */
function echoServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.TcpConn>();
  const loop = (async () => {
    for await (const c of listener) {
      conns.add(c);
      (async () => {
        const buf = new Uint8Array(4096);
        try {
          for (;;) {
            const n = await c.read(buf);
            if (n === null) break;
            await c.write(buf.subarray(0, n));
          }
        } catch { /* reset */ }
        conns.delete(c);
        try {
          c.close();
        } catch { /* closed */ }
      })();
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop.catch(() => {});
    },
  };
}

async function roundTrip(port: number, text: string, timeoutMs = 1000): Promise<string | null> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(text));
    const buf = new Uint8Array(4096);
    let t: ReturnType<typeof setTimeout> | undefined;
    const got = await Promise.race([
      conn.read(buf).then((n) => n === null ? "" : new TextDecoder().decode(buf.subarray(0, n))),
      new Promise<null>((r) => t = setTimeout(() => r(null), timeoutMs)),
    ]).catch(() => "");
    clearTimeout(t);
    return got;
  } finally {
    conn.close();
  }
}

Deno.test("the fault proxy passes, delays, blackholes and cuts connections", async () => {
  const echo = echoServer();
  const proxy = FaultProxy.start({ port: echo.port });
  try {
    assert.equal(await roundTrip(proxy.port, "hello"), "hello");

    proxy.set("delay", 300);
    const t0 = performance.now();
    assert.equal(await roundTrip(proxy.port, "slow"), "slow");
    assert.ok(performance.now() - t0 >= 550, "two hops of 300 ms");

    proxy.set("drop");
    assert.equal(await roundTrip(proxy.port, "lost", 500), null, "silence, not an error");

    proxy.set("pass");
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
    await conn.write(new TextEncoder().encode("x"));
    await conn.read(new Uint8Array(16));
    proxy.set("cut");
    assert.equal(await conn.read(new Uint8Array(16)).catch(() => null), null, "open ones closed");
    conn.close();
    assert.equal(await roundTrip(proxy.port, "refused", 500), "", "new ones closed at once");

    proxy.set("pass");
    assert.equal(await roundTrip(proxy.port, "back"), "back");
  } finally {
    await proxy.close();
    await echo.close();
  }
});
