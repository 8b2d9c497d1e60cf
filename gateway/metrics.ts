/**
 * The gateway's counters, registered on the node's metrics registry.
 * @module
 */
import type { Counter, MetricsRegistry } from "../observability/metrics.ts";

/** Counters the WebSocket sessions update. */
export interface GatewayMetrics {
  connectionsOpened: Counter;
  connectionsClosed: Counter;
  framesIn: Counter;
  framesOut: Counter;
  slowConsumers: Counter;
}

/** Registers the gateway counters. */
export function gatewayMetrics(registry: MetricsRegistry): GatewayMetrics {
  return {
    connectionsOpened: registry.counter(
      "im_connections_opened_total",
      "WebSocket connections opened",
    ),
    connectionsClosed: registry.counter(
      "im_connections_closed_total",
      "WebSocket connections closed",
    ),
    framesIn: registry.counter("im_frames_in_total", "Frames received, by op"),
    framesOut: registry.counter("im_frames_out_total", "Frames sent, by op"),
    slowConsumers: registry.counter(
      "im_slow_consumers_closed_total",
      "Sockets closed for not reading",
    ),
  };
}
