/**
 * Read-only admin handlers added to the built-in kinds without editing them: a behaviour is
 * wrapped with an extra handler that answers what the admin console shows.
 *
 * - `group` gets `admin.info` → `{exists, name, owner, createdAt, members: [{userId, role,
 *   joinedAt}]}` (`exists` is false for an unknown or dissolved group). Only the admin API
 *   sends it (actor messages are not reachable by clients: the gateway addresses actors only
 *   through its ops).
 *
 * @module
 */
import type { Behavior } from "../behavior.ts";

/** A group as the admin console shows it. */
export interface GroupAdminInfo {
  exists: boolean;
  name: string;
  owner: string;
  createdAt: number;
  members: { userId: string; role: string; joinedAt: number }[];
}

/** The handler name added to groups. */
export const GROUP_ADMIN_INFO = "admin.info";

/** `behavior` (the group kind) with the {@link GROUP_ADMIN_INFO} handler added. */
// deno-lint-ignore no-explicit-any
export function withGroupAdminInfo<B extends Behavior<any, any>>(behavior: B): B {
  return {
    ...behavior,
    handlers: {
      ...behavior.handlers,
      [GROUP_ADMIN_INFO]: (ctx): GroupAdminInfo => {
        const s = ctx.state as Partial<{
          exists: boolean;
          dissolved: boolean;
          name: string;
          owner: string;
          createdAt: number;
          members: Record<string, { role?: string; joinedAt?: number }>;
        }>;
        return {
          // A dissolved group no longer exists for the console.
          exists: s.exists === true && s.dissolved !== true,
          name: s.name ?? "",
          owner: s.owner ?? "",
          createdAt: s.createdAt ?? 0,
          members: Object.entries(s.members ?? {}).map(([userId, m]) => ({
            userId,
            role: m.role ?? "member",
            joinedAt: m.joinedAt ?? 0,
          })),
        };
      },
    },
  };
}
