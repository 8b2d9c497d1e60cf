/**
 * The node's HTTP surface: Hono on `Deno.serve`.
 *
 * Routes: the REST auth routes (`auth_routes.ts`), `GET /v1/ws` (WebSocket upgrade with
 * subprotocol `im.v1.msgpack` or `im.v1.json`), `GET /healthz` (200 once accepting, 503 while
 * starting or draining), `GET /readyz`, `GET /metrics` (Prometheus text).
 *
 * @module
 */
import { Hono } from "hono";
import type { Store } from "../db/store.ts";
import type { Logger } from "../observability/log.ts";
import type { MetricsRegistry } from "../observability/metrics.ts";
import { authRoutes } from "./auth_routes.ts";
import { negotiateSubprotocol, SUBPROTOCOLS } from "./frame_codec.ts";
import { errorResponse, httpError } from "./http_errors.ts";
import type { IpBudget } from "./ip_budget.ts";
import type { LoginThrottle } from "./login_throttle.ts";
import type { RegistrationThrottle } from "./registration_throttle.ts";
import type { TokenService } from "./tokens.ts";
import { Session, type SessionDeps } from "./ws_session.ts";
import { staticRoutes } from "./static_routes.ts";

/** Lifecycle state reported by `/healthz`. */
export interface Health {
  state: "starting" | "ready" | "draining";
}

/** What the HTTP app needs. */
export interface AppDeps {
  store: Store;
  tokens: TokenService;
  session: SessionDeps;
  metrics: MetricsRegistry;
  health: Health;
  logger: Logger;
  passwordIterations: number;
  newId(prefix: string): string;
  allowedOrigins: string[];
  idleTimeoutSec: number;
  /** Sessions opened by this app (for draining). */
  sessions: Set<Session>;
  /** Unauthenticated sockets per IP (ip_budget.ts); absent = unlimited. */
  ipBudget?: IpBudget;
  /** Login throttle per username and IP (login_throttle.ts); absent = none. */
  loginThrottle?: LoginThrottle;
  /** Registration throttle per IP (registration_throttle.ts); absent = none. */
  registrationThrottle?: RegistrationThrottle;
}

/** The client's address as Deno.serve reports it ("" when unknown). */
function remoteOf(c: { env: unknown }): string {
  return (c.env as { remoteAddr?: Deno.NetAddr } | undefined)?.remoteAddr?.hostname ?? "";
}

/** Builds the Hono app of a node. */
export function createApp(deps: AppDeps): Hono {
  const app = new Hono();
  app.onError((err, c) => httpError(c, err, deps.logger));
  app.notFound((c) => c.json({ error: { code: "not_found", message: "No such route" } }, 404));
  app.route("/", staticRoutes());
  app.route(
    "/",
    authRoutes({
      store: deps.store,
      tokens: deps.tokens,
      passwordIterations: deps.passwordIterations,
      newUserId: () => deps.newId("u_"),
      logger: deps.logger,
      loginThrottle: deps.loginThrottle,
      registrationThrottle: deps.registrationThrottle,
      clientIp: remoteOf,
    }),
  );
  app.get(
    "/healthz",
    (c) =>
      deps.health.state === "ready"
        ? c.json({ status: "ok" })
        : c.json({ status: deps.health.state }, 503),
  );
  app.get(
    "/readyz",
    (c) =>
      deps.health.state === "ready"
        ? c.json({ status: "ok" })
        : c.json({ status: deps.health.state }, 503),
  );
  app.get(
    "/metrics",
    (c) => c.text(deps.metrics.render(), 200, { "content-type": "text/plain; version=0.0.4" }),
  );
  app.get("/v1/ws", (c) => {
    const req = c.req.raw;
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return c.json(
        { error: { code: "bad_request", message: "Expected a WebSocket upgrade" } },
        400,
      );
    }
    if (deps.health.state !== "ready") {
      return c.json({
        error: { code: "unavailable", message: "Node is not accepting connections" },
      }, 503);
    }
    const origin = req.headers.get("origin");
    if (deps.allowedOrigins.length && origin && !deps.allowedOrigins.includes(origin)) {
      return c.json({ error: { code: "forbidden", message: "Origin not allowed" } }, 403);
    }
    const protocol = negotiateSubprotocol(req.headers.get("sec-websocket-protocol"));
    if (!protocol) {
      return c.json({
        error: {
          code: "bad_request",
          message: `Offer one of the subprotocols ${SUBPROTOCOLS.join(", ")}`,
        },
      }, 400);
    }
    // Read before the upgrade: Deno closes the request's info once the socket takes over.
    const remote = remoteOf(c);
    const release = deps.ipBudget ? deps.ipBudget.acquire(remote) : () => {};
    if (!release) {
      return errorResponse(c, "rate_limited", "Too many unauthenticated connections", 429);
    }
    let upgraded: { socket: WebSocket; response: Response };
    try {
      upgraded = Deno.upgradeWebSocket(req, { protocol, idleTimeout: deps.idleTimeoutSec });
    } catch (err) {
      release();
      throw err;
    }
    const { socket, response } = upgraded;
    socket.addEventListener("error", release);
    const session = new Session(socket, protocol, deps.session, remote);
    session.onOpen = release;
    deps.sessions.add(session);
    socket.addEventListener("close", () => {
      release();
      deps.sessions.delete(session);
    });
    return response;
  });
  return app;
}
