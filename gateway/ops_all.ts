/**
 * Every op module of the gateway, registered in one place (one line per module).
 * @module
 */
import type { OpRegistry } from "./op_registry.ts";
import { registerCoreOps } from "./ops_core.ts";
import { registerPresenceOps } from "./ops_presence.ts";
import { registerPushOps } from "./ops_push.ts";
import { registerSocialOps } from "./ops_social.ts";
import { registerGroupOps } from "./ops_group.ts";
import { registerMessageOps } from "./ops_messages.ts";

/** Registers every op of the protocol on `ops`. */
export function registerAllOps(ops: OpRegistry): void {
  registerCoreOps(ops);
  registerSocialOps(ops);
  registerPresenceOps(ops);
  registerPushOps(ops);
  registerGroupOps(ops);
  registerMessageOps(ops);
}
