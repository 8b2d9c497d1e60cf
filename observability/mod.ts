/**
 * Logs and metrics.
 * @module
 */
export * from "./log.ts";
export * from "./metrics.ts";
