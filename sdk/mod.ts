/**
 * The TypeScript SDK of the IM server, for browsers and Deno.
 *
 * ```ts
 * import { ImClient } from "./sdk/mod.ts";
 * const client = new ImClient({ baseUrl: "http://localhost:8080" });
 * await client.login("alice", "correct horse battery");
 * client.on("msg", (m) => console.log(m.from, m.body));
 * await client.connect();
 * await client.sendText({ user: bobId }, "hello");
 * ```
 *
 * See sdk/README.md for the guarantees and more examples.
 *
 * @module
 */
export {
  type ConnectionState,
  ImClient,
  ImClientError,
  type ImClientOptions,
  type MessageBody,
  type MsgFrame,
  type PendingSend,
  type Recipient,
  type SdkStorage,
  type SendOk,
  type Session,
  type SignedOutReason,
} from "./client.ts";
export { backoffDelay, type BackoffOptions } from "./backoff.ts";
export {
  decodeFrames,
  encodeFrames,
  type Frame,
  type Subprotocol,
  subprotocolOf,
  type WireFormat,
} from "./codec.ts";
