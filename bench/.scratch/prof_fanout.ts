import { generators, type Deployment, type Sizes } from "../harness.ts";
import { nodeEnv, Services, startOurNode, startBare } from "../systems.ts";
import { fanoutScenario } from "../scenarios/fanout.ts";
const size = Number(Deno.args[1] ?? 1000);
const sizes = { quick: false, durationMs: 4000, warmupMs: 1000, drainMs: 1500, groupSizes: [size], fanoutPool: size } as Sizes;
const pool = generators(2);
const services = new Services(); await services.start();
const out: string[] = [];
for (const which of (Deno.args[2] ?? "bare,im").split(",")) {
  const s = which === "bare" ? await startBare() : await startOurNode(nodeEnv({ DATA_DIR: await Deno.makeTempDir() }), Deno.args[0] || undefined);
  const dep: Deployment = { label: which, kind: which as "im", servers: [s], extra: [] };
  const rows = await fanoutScenario(dep, pool, sizes, "p" + Date.now() % 10000);
  for (const r of rows) {
    const sat = r.saturation!;
    out.push(`${which}: ${sat.deliveriesPerSec.toFixed(0)} del/s, server ${sat.cpu.server}ms gen ${sat.cpu.generator}ms wall ${sat.cpu.wallMs.toFixed(0)} => ${(sat.cpu.server * 1000 / (sat.deliveriesPerSec * sat.windowSec)).toFixed(2)} µs/delivery; half p99 ${r.half!.deliveryLatency.p99} errs ${JSON.stringify(sat.errors)} ok/s ${sat.okPerSec} unans ${sat.unanswered} halfErr ${JSON.stringify(r.half!.errors)}`);
  }
  if (which === "im") Deno.writeTextFileSync("/tmp/im_server.log", s.log);
  await s.stop();
}
console.log(out.join("\n"));
await pool.stop(); await services.stop();
