/**
 * Grants or removes the admin role from the command line — how the first admin is made:
 *
 * ```sh
 * deno task admin:grant alice          # alice may use /admin and /v1/admin/...
 * deno task admin:grant --revoke alice # removes the role
 * ```
 *
 * It reads the same environment as the node (`DATA_DIR` or `DATABASE_URL`, see README.md), so
 * it writes to the store the node uses; it works whether the node runs or not (the role is read
 * per admin request). The change is written to the audit log with admin id `cli`.
 *
 * @module
 */
import { NotFoundError } from "../actors/errors.ts";
import type { Store, UserRole } from "../db/store.ts";

/**
 * Sets `username`'s role (null removes it) and writes an audit entry. Rejects with
 * NotFoundError when there is no such account.
 */
export async function grantRole(
  store: Store,
  username: string,
  role: UserRole | null,
  now: () => number = Date.now,
): Promise<{ userId: string }> {
  const user = await store.getUserByUsername(username);
  if (!user) throw new NotFoundError(`No account named "${username}"`);
  await store.setUserRole(user.userId, role);
  await store.appendAudit({
    ts: now(),
    adminId: "cli",
    action: role ? "role.grant" : "role.revoke",
    target: user.userId,
    details: { role: "admin", via: "cli" },
  });
  return { userId: user.userId };
}

if (import.meta.main) {
  const { loadConfig } = await import("../config.ts");
  const { openStore } = await import("../db/open_store.ts");
  const args = [...Deno.args];
  const revoke = args.includes("--revoke");
  const names = args.filter((a) => !a.startsWith("--"));
  if (names.length !== 1) {
    console.error("usage: deno task admin:grant [--revoke] <username>");
    Deno.exit(2);
  }
  const config = loadConfig();
  const store = await openStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    const { userId } = await grantRole(store, names[0], revoke ? null : "admin");
    console.log(
      `${revoke ? "removed the admin role from" : "granted admin to"} ${names[0]} (${userId})`,
    );
  } catch (err) {
    console.error((err as Error).message);
    Deno.exitCode = 1;
  } finally {
    await store.close();
  }
}
