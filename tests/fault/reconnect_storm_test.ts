/**
 * A reconnect storm: 5,000 clients (spread over 4 client processes, 250 users × 20 devices)
 * connect and authenticate at once, all disconnect, and all reconnect at once. Clients retry
 * refusals (`unavailable`, `timeout`, `overloaded`) with jittered backoff, as real clients do;
 * every client gets in, each wave finishes within a bounded time, and the node still answers.
 */
import assert from "node:assert/strict";
import { NodeProcess } from "../cluster/harness.ts";
import { signUp, TestClient } from "../support/client.ts";

const CLIENTS = 5_000;
const PROCESSES = 4;
const USERS = 250;
/** Generous: the suite runs in parallel on 2 cores; alone a wave takes a few seconds. */
const WAVE_BOUND_MS = 100_000;
const CLIENT = new URL("./storm_client.ts", import.meta.url).pathname;

Deno.test("5,000 clients connect, drop and reconnect at once within a bounded time", async () => {
  const dir = await Deno.makeTempDir({ prefix: "im_storm_" });
  const node = await NodeProcess.start({
    DATA_DIR: dir,
    PASSWORD_ITERATIONS: "1000",
    LOG_LEVEL: "warn",
    // Every storm client comes from 127.0.0.1: lift the per-IP budget for this test.
    MAX_UNAUTH_PER_IP: "20000",
    REGISTRATIONS_PER_IP_PER_HOUR: "20000",
  });
  try {
    const tag = crypto.randomUUID().slice(0, 6);
    const tokens: string[] = [];
    for (let i = 0; i < USERS; i += 25) {
      const batch = await Promise.all(
        Array.from({ length: 25 }, (_, k) => signUp(node.url, `storm_${tag}_${i + k}`)),
      );
      tokens.push(...batch.map((b) => b.accessToken));
    }
    const tokensFile = `${dir}/tokens.json`;
    await Deno.writeTextFile(tokensFile, JSON.stringify(tokens));

    const per = CLIENTS / PROCESSES;
    const t0 = performance.now();
    const outputs = await Promise.all(
      Array.from({ length: PROCESSES }, (_, p) =>
        new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", CLIENT, node.url, tokensFile, String(p * per), String(per)],
          stdout: "piped",
          stderr: "piped",
        }).output()),
    );
    const totalMs = performance.now() - t0;
    const waves = new Map<number, { ok: number; ms: number; retries: number }>();
    for (const out of outputs) {
      assert.ok(out.success, new TextDecoder().decode(out.stderr).slice(-2000));
      for (const line of new TextDecoder().decode(out.stdout).trim().split("\n")) {
        const r = JSON.parse(line) as {
          wave: number;
          ok: number;
          ms: number;
          retries: number;
          reasons: Record<string, number>;
        };
        const w = waves.get(r.wave) ?? { ok: 0, ms: 0, retries: 0 };
        waves.set(r.wave, {
          ok: w.ok + r.ok,
          ms: Math.max(w.ms, r.ms),
          retries: w.retries + r.retries,
        });
        for (const reason of Object.keys(r.reasons)) {
          // Refusals a client may retry; anything else is a bug.
          assert.ok(
            ["unavailable", "timeout", "overloaded", "rate_limited", "closed", "error"].includes(
              reason,
            ),
            `unexpected refusal ${reason}`,
          );
        }
      }
    }
    console.log(`storm waves: ${JSON.stringify([...waves])}, total ${Math.round(totalMs)} ms`);
    for (const wave of [1, 2]) {
      const w = waves.get(wave)!;
      assert.equal(w.ok, CLIENTS, `wave ${wave}: ${w.ok} of ${CLIENTS} authenticated`);
      assert.ok(w.ms < WAVE_BOUND_MS, `wave ${wave} took ${w.ms} ms`);
    }
    assert.ok(totalMs < 3 * WAVE_BOUND_MS, `storm took ${Math.round(totalMs)} ms`);

    // The node serves normally afterwards.
    const c = await TestClient.connect(node.url, tokens[0]);
    assert.equal((await c.request({ op: "ping" })).op, "ok");
    await c.close();
  } finally {
    await node.stop(10_000);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
