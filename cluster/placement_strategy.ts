/**
 * Placement strategies: which node a new activation goes to.
 *
 * @module
 */

import type { PlacementStrategy } from "./placement.ts";

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function fnv1a(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
  }
  return h;
}

/** Murmur3's finaliser: FNV alone spreads poorly in its high bits. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The rendezvous weight of `nodeId` for `actorId` (exported for tests and diagnostics). */
export function rendezvousWeight(actorId: string, nodeId: string): number {
  return mix32(fnv1a(fnv1a(fnv1a(FNV_OFFSET, actorId), "\u0000"), nodeId));
}

/**
 * Rendezvous (highest-random-weight) hashing over the live nodes: every node computes the same
 * answer from the same set whatever its order, actors spread evenly, and when a node leaves only
 * the actors it owned move (when one joins, only about 1/n of the actors move to it). A fast
 * non-cryptographic hash (FNV-1a with a murmur3 finaliser); ties go to the smaller node id.
 * Throws RangeError when `liveNodeIds` is empty.
 */
export const rendezvousStrategy: PlacementStrategy = (actorId, liveNodeIds) => {
  if (liveNodeIds.length === 0) throw new RangeError("No live node to place an actor on");
  const base = fnv1a(fnv1a(FNV_OFFSET, actorId), "\u0000");
  let best = "";
  let bestWeight = -1;
  for (const node of liveNodeIds) {
    const w = mix32(fnv1a(base, node));
    if (w > bestWeight || (w === bestWeight && node < best)) {
      best = node;
      bestWeight = w;
    }
  }
  return best;
};
