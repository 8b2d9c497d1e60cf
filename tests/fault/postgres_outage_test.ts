/**
 * Postgres down for 10 seconds under a cluster-mode node process (private Redis and NATS, a fresh
 * database reached through a fault proxy that cuts every connection): sends during the outage
 * are answered `unavailable` (or `timeout`), none is acknowledged, and after the database returns
 * every retried send (same `cmid`) lands exactly once, in a gapless conversation and inboxes.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { integrityProblems, JWT_SECRET, ResilientClient, sleep } from "../cluster/fixture.ts";
import { NodeProcess } from "../cluster/harness.ts";
import { type F, signUp } from "../support/client.ts";
import { FaultProxy } from "../support/fault_proxy.ts";
import { createTempDatabase } from "../support/postgres.ts";
import { startNats, startRedis } from "../support/services.ts";

const OUTAGE_MS = 10_000;

Deno.test("Postgres down for 10 s: sends answered unavailable, none acknowledged, every retry lands once", async () => {
  const [redis, nats, db] = await Promise.all([startRedis(), startNats(), createTempDatabase()]);
  const pg = new URL(db.url);
  const proxy = FaultProxy.start({ hostname: pg.hostname, port: Number(pg.port || 5432) });
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  let node: NodeProcess | null = null;
  const clients: ResilientClient[] = [];
  try {
    node = await NodeProcess.start({
      DATABASE_URL: proxy.wrapUrl(db.url),
      REDIS_URL: redis.url,
      NATS_URL: nats.url,
      JWT_SECRET,
      PASSWORD_ITERATIONS: "1000",
      REQUEST_TIMEOUT_MS: "3000",
      LOG_LEVEL: "warn",
    });
    const url = node.url;
    const [la, lb] = await Promise.all([
      signUp(url, `pga_${Date.now() % 1e8}`),
      signUp(url, `pgb_${Date.now() % 1e8}`),
    ]);
    const a = new ResilientClient(la.userId, la.accessToken, () => [url], 0);
    const b = new ResilientClient(lb.userId, lb.accessToken, () => [url], 0);
    clients.push(a, b);
    await Promise.all([a.connection(), b.connection()]);
    const to = { user: lb.userId };
    const acked: string[] = [];
    for (let i = 0; i < 5; i++) {
      await a.send(to, `before-${i}`, `before ${i}`);
      acked.push(`before-${i}`);
    }

    // The outage: every Postgres connection is cut and new ones are refused.
    proxy.set("cut");
    const t0 = Date.now();
    const during: { cmid: string; outcome: string }[] = [];
    let i = 0;
    while (Date.now() - t0 < OUTAGE_MS - 1_000) {
      const cmid = `during-${i++}`;
      const conn = await a.connection();
      let outcome: string;
      try {
        const answer = await conn.request({
          op: "send",
          to,
          cmid,
          body: { type: "text", text: cmid },
        }, 8_000);
        outcome = answer.op === "ok" ? "ok" : String(answer.code);
      } catch {
        outcome = "lost";
      }
      during.push({ cmid, outcome });
      await sleep(250);
    }
    const acknowledged = during.filter((d) => d.outcome === "ok");
    assert.deepEqual(acknowledged, [], "nothing is acknowledged while the store is down");
    const codes = new Set(during.map((d) => d.outcome));
    assert.ok(during.length >= 3, `${during.length} sends tried during the outage`);
    assert.ok(codes.has("unavailable"), `codes seen: ${[...codes]}`);
    for (const c of codes) assert.ok(["unavailable", "timeout"].includes(c), `unexpected ${c}`);
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - t0)));

    // Back: every send is retried with its cmid until acknowledged.
    proxy.set("pass");
    const recovered = Date.now();
    for (const d of during) {
      const out = await a.send(to, d.cmid, d.cmid);
      assert.equal(out.ok.op, "ok");
      acked.push(d.cmid);
    }
    const recoveryMs = Date.now() - recovered;
    assert.ok(recoveryMs < 60_000, `recovered in ${recoveryMs} ms`);
    // The same cmids again: the same answers, nothing stored twice.
    const again = await a.send(to, during[0].cmid, "again");
    const first = await a.send(to, during[0].cmid, "again");
    assert.equal(again.ok.mid, first.ok.mid);

    const rows = await sql<{ cmid: string; n: number }[]>`
      SELECT cmid, count(*)::int AS n FROM messages WHERE sender = ${la.userId} GROUP BY cmid`;
    const stored = new Map(rows.map((r) => [r.cmid, r.n]));
    for (const cmid of acked) assert.equal(stored.get(cmid), 1, `${cmid} stored once`);
    assert.equal(stored.size, acked.length, "nothing but the acknowledged sends is stored");
    assert.deepEqual(await integrityProblems(sql), []);

    // The recipient's inbox is gapless and holds each message once.
    const latest = await b.catchUp(30_000);
    assert.equal(b.contiguous(), latest);
    const texts = b.messages().map((m: F) => (m.body as F).text);
    assert.equal(new Set(texts).size, texts.length);
    assert.equal(texts.length, acked.length);
  } finally {
    for (const c of clients) await c.close().catch(() => {});
    if (node) await node.stop(5_000);
    await proxy.close();
    await sql.end({ timeout: 5 });
    await Promise.all([redis.stop(), nats.stop()]);
    await db.drop();
  }
});
