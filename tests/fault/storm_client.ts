/**
 * One process of the reconnect storm (tests/fault/reconnect_storm_test.ts): opens `count`
 * WebSockets to `url` at once, authenticates each (im.v1.json) retrying refusals with jittered
 * backoff as a real client does, reports, closes them all, then does it again (the reconnect).
 * Prints one JSON line per wave: `{wave, ok, failed, ms, retries, reasons}`.
 *
 * Usage: deno run -A storm_client.ts <url> <tokens.json> <first> <count>
 * (tokens.json: an array of access tokens; connection i uses token i % length, device `s<i>`).
 *
 * @module
 */

const [url, tokensFile, firstArg, countArg] = Deno.args;
const tokens: string[] = JSON.parse(await Deno.readTextFile(tokensFile));
const first = Number(firstArg), count = Number(countArg);
const wsUrl = url.replace(/^http/, "ws") + "/v1/ws";

/** Why attempts failed (error code, "closed", "timeout"), counted. */
const reasons: Record<string, number> = {};
let retries = 0;

/** One attempt: the authenticated socket, or the reason it failed. */
function attempt(i: number): Promise<WebSocket | string> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: WebSocket | string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (typeof r === "string") {
        try {
          ws.close();
        } catch { /* not open */ }
      }
      resolve(r);
    };
    const timer = setTimeout(() => finish("timeout"), 30_000);
    const ws = new WebSocket(wsUrl, "im.v1.json");
    ws.onopen = () => {
      ws.send(
        JSON.stringify({ op: "auth", id: 1, token: tokens[i % tokens.length], device: `s${i}` }),
      );
    };
    ws.onmessage = (ev) => {
      const f = JSON.parse(String(ev.data).split("\n")[0]);
      if (f.re === 1) finish(f.op === "ok" ? ws : String(f.code));
    };
    ws.onerror = () => finish("error");
    ws.onclose = () => finish("closed");
  });
}

/** Connects like a real client: retries refusals with jittered backoff until `deadline`. */
async function connectOne(i: number, deadline: number): Promise<WebSocket | null> {
  let backoff = 100;
  for (;;) {
    const r = await attempt(i);
    if (typeof r !== "string") return r;
    reasons[r] = (reasons[r] ?? 0) + 1;
    if (Date.now() + backoff > deadline) return null;
    retries++;
    await new Promise((res) => setTimeout(res, backoff * (0.5 + Math.random())));
    backoff = Math.min(2_000, backoff * 2);
  }
}

for (let wave = 1; wave <= 2; wave++) {
  const t0 = performance.now();
  retries = 0;
  for (const k of Object.keys(reasons)) delete reasons[k];
  const deadline = Date.now() + 120_000;
  const sockets = await Promise.all(
    Array.from({ length: count }, (_, k) => connectOne(first + k, deadline)),
  );
  const ms = Math.round(performance.now() - t0);
  const ok = sockets.filter((s) => s !== null).length;
  console.log(JSON.stringify({ wave, ok, failed: count - ok, ms, retries, reasons }));
  await Promise.all(
    sockets.map((s) =>
      s === null ? Promise.resolve() : new Promise<void>((resolve) => {
        s.onclose = () => resolve();
        s.close();
      })
    ),
  );
}
