/**
 * The cluster layer's public face: the ports (membership, placement directory, transport), the
 * router that sends a message to an actor wherever it lives, the placement strategy, and the
 * in-process (memory) adapters.
 *
 * The Redis and NATS adapters are exported from their own modules (`membership_redis.ts`,
 * `placement_redis.ts`, `transport_nats.ts`) so that a single node with embedded backends never
 * loads the drivers (the node picks and connects them in `from_config.ts`). Each port has a
 * contract suite (`*_contract.ts`) that every adapter passes.
 *
 * @module
 */

export type { Membership, NodeInfo } from "./membership.ts";
export type {
  ClaimOptions,
  ClaimResult,
  Placement,
  PlacementRecord,
  PlacementStrategy,
} from "./placement.ts";
export type { Delivery, Envelope, EnvelopeHandler, Transport } from "./transport.ts";

export {
  MemoryMembership,
  type MemoryMembershipOptions,
  MemoryRegistry,
} from "./membership_memory.ts";
export { MemoryPlacement, type MemoryPlacementOptions } from "./placement_memory.ts";
export { MemoryNetwork, MemoryTransport, type MemoryTransportOptions } from "./transport_memory.ts";
export { rendezvousStrategy, rendezvousWeight } from "./placement_strategy.ts";
export { Router, type RouterOptions, type RouterStats, type SendOptions } from "./router.ts";
