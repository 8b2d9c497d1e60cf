import { openSqliteStore } from "../../db/store_sqlite.ts";
const dir = Deno.makeTempDirSync({ dir: "/work/main/bench/.scratch" });
const store = openSqliteStore(`${dir}/im.sqlite3`); await store.migrate();
let n = 0;
for (const batch of [1, 10, 50]) {
  const t0 = performance.now(); const rounds = 100;
  for (let r = 0; r < rounds; r++) {
    const reqs = Array.from({ length: batch }, (_, i) => { n++; const a = `u_a${i % 20}`, b = `u_b${i % 20}`; return { actorId: `direct/${a}:${b}`, epoch: 1, mid: `m_${n}`, conv: `d:${a}:${b}`, from: a, to: { user: b }, cmid: `c${n}`, ts: Date.now(), body: { type: "text", text: "hello" }, recipients: [a, b] }; });
    await store.append(reqs as never);
  }
  const ms = (performance.now() - t0) / rounds;
  console.log(`batch ${batch}: ${ms.toFixed(2)} ms per append, ${(ms * 1000 / batch).toFixed(0)} µs per message`);
}
await store.close();
Deno.removeSync(dir, { recursive: true });
