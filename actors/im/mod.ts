/**
 * The built-in IM actor kinds, defined with the public behaviour API.
 * @module
 */
export * from "./conversation_ids.ts";
export * from "./direct.ts";
export * from "./group.ts";
export * from "./messaging.ts";
export * from "./services.ts";
export * from "./user.ts";

import { directBehavior } from "./direct.ts";
import { groupBehavior } from "./group.ts";
import { userBehavior } from "./user.ts";

/** Every built-in IM behaviour, for registering on a host. */
export const imBehaviors = [userBehavior, directBehavior, groupBehavior] as const;
