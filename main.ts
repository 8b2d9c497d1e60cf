/**
 * Composition root: read the configuration, start the node, stop it gracefully on SIGTERM or
 * SIGINT. No logic lives here (see node.ts).
 *
 * @module
 */
import { ConfigError, loadConfig } from "./config.ts";
import { startNode } from "./node.ts";

if (import.meta.main) {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`Configuration error: ${err.message}`);
      Deno.exit(2);
    }
    throw err;
  }
  let node;
  try {
    node = await startNode(config);
  } catch (err) {
    console.error(`Cannot start: ${(err as Error).message}`);
    Deno.exit(1);
  }
  console.error(`IM node ${node.nodeId} listening on ${node.url} (${config.mode} mode)`);
  const stop = async () => {
    await node.shutdown();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  // Key rotation without a restart: re-read JWT_SECRET_FILE (gateway/key_reload.ts).
  Deno.addSignalListener("SIGHUP", () => void node.reloadKeys());
}
