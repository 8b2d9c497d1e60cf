/**
 * How the Postgres adapters (the Store, the media blob store) tell a lost or unreachable server
 * from other failures: the former replace their connection pool and answer `unavailable`.
 *
 * @module
 */
import postgres from "postgres";

/** Driver error codes (Node-style and postgres.js's own) of a lost or unreachable server. */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
]);

/**
 * True when the connection failed or the server is going away (restart, failover, admin kill):
 * SQLSTATE class 08 or 57P, or a driver connection code.
 */
export function isConnectionLoss(err: unknown): boolean {
  if (err instanceof postgres.PostgresError) {
    return err.code.startsWith("08") || err.code.startsWith("57P");
  }
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && CONNECTION_CODES.has(code);
}
