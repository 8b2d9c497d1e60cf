import { openSqliteStore } from "../../db/store_sqlite.ts";
const dir = Deno.makeTempDirSync({ dir: "/work/main/bench/.scratch" });
const store = openSqliteStore(`${dir}/im.sqlite3`); await store.migrate();
const members = Array.from({ length: 1000 }, (_, i) => `u_m${i}`);
let n = 0;
for (const batch of [1, 4, 16]) {
  const t0 = performance.now(); const rounds = 10;
  for (let r = 0; r < rounds; r++) {
    const reqs = Array.from({ length: batch }, () => { n++; return { actorId: `group/g1`, epoch: 1, mid: `m_${n}`, conv: `g:g1`, from: members[0], to: { group: "g1" }, cmid: `c${n}`, ts: Date.now(), body: { type: "text", text: "hello" }, recipients: members }; });
    await store.append(reqs as never);
  }
  const ms = (performance.now() - t0) / rounds;
  console.log(`batch ${batch} × 1000 recipients: ${ms.toFixed(1)} ms per append, ${(ms * 1000 / batch / 1000).toFixed(1)} µs per inbox row`);
}
await store.close(); Deno.removeSync(dir, { recursive: true });
