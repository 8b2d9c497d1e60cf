/**
 * The JWT signing secret of an embedded node that was given none: generated once and kept in
 * `DATA_DIR/jwt_secret` (mode 0600), so tokens survive restarts. Cluster nodes must share a
 * configured secret instead (config.ts refuses to start without one).
 *
 * @module
 */

/** Reads or creates the node's secret file; returns it as a one-element list. */
export async function loadJwtSecrets(dataDir: string): Promise<string[]> {
  const path = `${dataDir}/jwt_secret`;
  try {
    const s = (await Deno.readTextFile(path)).trim();
    if (s.length >= 32) return [s];
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  await Deno.mkdir(dataDir, { recursive: true });
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const secret = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  await Deno.writeTextFile(path, secret + "\n", { mode: 0o600 });
  return [secret];
}
