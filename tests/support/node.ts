/**
 * Starts real nodes in-process for tests (real HTTP port, real WebSocket, real store).
 * @module
 */
import { loadConfig } from "../../config.ts";
import { type ImNode, startNode } from "../../node.ts";
import { createLogger } from "../../observability/log.ts";

/** A node on a free port with a fresh data directory; `stop()` also deletes the directory. */
export async function testNode(
  env: Record<string, string> = {},
  dataDir?: string,
): Promise<ImNode & { dataDir: string; stop(keepData?: boolean): Promise<void> }> {
  const dir = dataDir ?? await Deno.makeTempDir({ prefix: "im_test_" });
  const config = loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    DATA_DIR: dir,
    PASSWORD_ITERATIONS: "1000",
    LOG_LEVEL: "error",
    // Tests register many users from 127.0.0.1 (tests/security sets its own limit).
    REGISTRATIONS_PER_IP_PER_HOUR: "100000",
    ...env,
  });
  const node = await startNode(config, {
    logger: createLogger({ level: (env.LOG_LEVEL as "debug") ?? "error" }),
  });
  return Object.assign(node, {
    dataDir: dir,
    async stop(keepData = false) {
      await node.shutdown();
      if (!keepData) await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  });
}
