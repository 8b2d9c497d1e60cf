/**
 * One process of the reconnect storm (tests/fault/reconnect_storm_test.ts): opens `count`
 * WebSockets to `url` at once, authenticates each (im.v1.json), reports, closes them all, then
 * does it again (the reconnect). Prints one JSON line per wave: `{wave, ok, failed, ms}`.
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

function connectOne(i: number): Promise<WebSocket | null> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (ws: WebSocket | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(ws);
    };
    const timer = setTimeout(() => {
      try {
        ws.close();
      } catch { /* not open */ }
      finish(null);
    }, 60_000);
    const ws = new WebSocket(wsUrl, "im.v1.json");
    ws.onopen = () => {
      ws.send(
        JSON.stringify({ op: "auth", id: 1, token: tokens[i % tokens.length], device: `s${i}` }),
      );
    };
    ws.onmessage = (ev) => {
      const f = JSON.parse(String(ev.data).split("\n")[0]);
      if (f.re === 1) finish(f.op === "ok" ? ws : null);
    };
    ws.onerror = () => finish(null);
    ws.onclose = () => finish(null);
  });
}

for (let wave = 1; wave <= 2; wave++) {
  const t0 = performance.now();
  const sockets = await Promise.all(
    Array.from({ length: count }, (_, k) => connectOne(first + k)),
  );
  const ms = Math.round(performance.now() - t0);
  const ok = sockets.filter((s) => s !== null).length;
  console.log(JSON.stringify({ wave, ok, failed: count - ok, ms }));
  await Promise.all(
    sockets.map((s) =>
      s === null ? Promise.resolve() : new Promise<void>((resolve) => {
        s.onclose = () => resolve();
        s.close();
      })
    ),
  );
}
