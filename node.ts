/**
 * A node: gateway + actor host + cluster layer, wired from a {@link Config}.
 *
 * `startNode` is what `main.ts` calls and what the tests call to run real nodes in-process on
 * port 0. Embedded mode uses the memory cluster adapters and the SQLite store; cluster mode
 * uses Redis (membership, placement), NATS (transport) and Postgres (store).
 *
 * @module
 */
import { ActorHost } from "./actors/host.ts";
import { AckWriter } from "./actors/im/ack_writer.ts";
import { imBehaviors, type ImServices } from "./actors/im/mod.ts";
import type { Placement } from "./cluster/placement.ts";
import { Router } from "./cluster/router.ts";
import type { Delivery } from "./cluster/transport.ts";
import type { Config } from "./config.ts";
import { GroupCommit } from "./db/group_commit.ts";
import { openStore } from "./db/open_store.ts";
import type { Store } from "./db/store.ts";
import { createApp, type Health } from "./gateway/app.ts";
import { ConnectionRegistry } from "./gateway/connections.ts";
import { newId, newOrderedId } from "./gateway/ids.ts";
import { gatewayMetrics } from "./gateway/metrics.ts";
import { OpRegistry } from "./gateway/op_registry.ts";
import { registerAllOps } from "./gateway/ops_all.ts";
import { notifierFromConfig, offlinePushHook } from "./push/from_config.ts";
import { ConnectionDirectory, DIRECTORY_ADDRESS } from "./cluster/connection_directory.ts";
import { TokenService } from "./gateway/tokens.ts";
import { CloseCode, type Session } from "./gateway/ws_session.ts";
import { createLogger, type Logger } from "./observability/log.ts";
import { type Counter, MetricsRegistry } from "./observability/metrics.ts";
import { clusterAdapters, type MemoryCluster } from "./cluster/from_config.ts";
import { loadJwtSecrets } from "./jwt_secret.ts";
import { KeyReloader, keysFromSecrets } from "./gateway/key_reload.ts";
import { IpBudget } from "./gateway/ip_budget.ts";
import { LoginThrottle } from "./gateway/login_throttle.ts";
import { RegistrationThrottle } from "./gateway/registration_throttle.ts";
import { UserRateLimiter } from "./gateway/rate_limit.ts";
import { ImError } from "./actors/errors.ts";
import { withGroupAdminInfo } from "./actors/im/admin_views.ts";
import { clusterConfigBehavior } from "./actors/im/cluster_config.ts";
import { NODE_ADDRESS, NodeControl } from "./gateway/admin_control.ts";
import { adminRoutes } from "./gateway/admin_routes.ts";
import { mediaRoutes } from "./gateway/media_routes.ts";
import { openDiskBlobStore } from "./media/blob_store_disk.ts";
import { openPostgresBlobStore } from "./media/blob_store_postgres.ts";
import type { BlobStore } from "./media/blob_store.ts";
import { dependencyMetrics, instrument } from "./observability/instrument.ts";
import { RuntimeSampler } from "./observability/runtime_sampler.ts";

/** A running node. */
export interface ImNode {
  readonly nodeId: string;
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  readonly port: number;
  readonly host: ActorHost<ImServices>;
  readonly router: Router;
  readonly store: Store;
  readonly registry: ConnectionRegistry;
  readonly metrics: MetricsRegistry;
  readonly logger: Logger;
  /**
   * Graceful stop (SIGTERM): refuse new connections, hand actors off (snapshot, release
   * placement), close client sockets with 1012 so clients reconnect elsewhere, leave the
   * cluster, close connections to dependencies.
   */
  shutdown(): Promise<void>;
  /**
   * Re-reads JWT_SECRET_FILE now (main.ts calls it on SIGHUP); resolves whether the keys changed.
   * Resolves false without a secret file.
   */
  reloadKeys(): Promise<boolean>;
}

/** Test and embedding hooks. */
export interface NodeOptions {
  logger?: Logger;
  /** Shares one in-process network between nodes (in-process multi-node tests). */
  memoryCluster?: MemoryCluster;
}

/** Starts a node; rejects with a clear error when a dependency is missing. */
export async function startNode(config: Config, options: NodeOptions = {}): Promise<ImNode> {
  const nodeId = newId("n_");
  const logger = options.logger ??
    createLogger({ level: config.logLevel, fields: { node: nodeId } });
  const metrics = new MetricsRegistry();
  const health: Health = { state: "starting" };

  const deps = dependencyMetrics(metrics);
  const rawStore = await openStore({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    log: logger,
  });
  const store = instrument(rawStore, rawStore.kind, deps);
  const cleanups: Array<() => Promise<void>> = [() => store.close()];
  try {
    const cluster = await clusterAdapters(config, nodeId, logger, options.memoryCluster);
    cleanups.unshift(cluster.close);
    const { membership } = cluster;
    // In a cluster, placement is Redis and the transport NATS: time them and count failures.
    const placement = config.mode === "cluster"
      ? instrument(cluster.placement, "redis", deps, ["lookup", "claim", "renew", "release"])
      : cluster.placement;
    const transport = config.mode === "cluster"
      ? instrument(cluster.transport, "nats", deps, ["request"])
      : cluster.transport;
    const secrets = config.jwtSecrets ?? await loadJwtSecrets(config.dataDir);
    const tokens = new TokenService({
      keys: await keysFromSecrets(secrets),
      accessTtlSec: config.accessTokenTtlSec,
      refreshTtlSec: config.refreshTokenTtlSec,
      store,
    });
    const keyReloader = config.jwtSecretFile
      ? new KeyReloader({
        tokens,
        fromEnv: config.jwtSecretsFromEnv,
        file: config.jwtSecretFile,
        intervalSec: config.jwtReloadSec,
        logger,
      })
      : null;
    if (keyReloader) cleanups.unshift(() => Promise.resolve(keyReloader.close()));
    const commits = new GroupCommit(store);
    cleanups.unshift(() => commits.close());
    const registry = new ConnectionRegistry();
    // Which nodes hold which users' connections: deliveries go only there.
    const directory = new ConnectionDirectory({
      nodeId,
      transport,
      membership,
      onError: (what, node, err) =>
        logger.warn("connection directory: a node did not answer", { what, node, err }),
    });
    cleanups.unshift(() => Promise.resolve(directory.close()));
    const router = new Router({
      nodeId,
      transport,
      placement,
      membership,
      defaultTimeoutMs: config.requestTimeoutMs,
    });
    // Offline push: the webhook when PUSH_WEBHOOK_URL is set, a log line otherwise.
    const notifier = notifierFromConfig(config, logger);
    cleanups.unshift(() => notifier.close());
    // Every user actor's ack cursors in one store call per interval; a fenced entry drops the
    // stale activation it came from.
    const acks = new AckWriter(store, {
      logger,
      onFenced: (actorId, epoch) => host.reportFenced(actorId, epoch),
    });
    cleanups.unshift(() => acks.close());
    const services: ImServices = {
      store,
      acks,
      commit: (req) => commits.append(req),
      deliver: (d) => {
        for (const n of directory.route(d.users)) transport.deliver(n, d);
      },
      newId,
      newMessageId: () => newOrderedId("m_"),
      now: Date.now,
      limits: {
        groupMaxMembers: config.groupMaxMembers,
        recallWindowMs: config.recallWindowSec * 1000,
      },
      logger,
      isNodeLive: (id) => membership.isLive(id),
      notifier,
    };
    const host = new ActorHost<ImServices>({
      nodeId,
      store,
      placement,
      membership,
      services,
      send: router,
      passivateAfterMs: config.passivateAfterMs,
      mailboxCapacity: config.mailboxCapacity,
      leaseMs: config.leaseMs,
      logger,
    });
    for (const b of imBehaviors) host.register(b.kind === "group" ? withGroupAdminInfo(b) : b);
    host.register(clusterConfigBehavior);
    const node = registerNodeMetrics(metrics, host, registry, router);
    transport.onDeliveries((ds) => {
      node.observeDeliveries(ds);
      registry.deliver(ds);
    });
    const sessions = new Set<Session>();
    let address = "";
    const sampler = new RuntimeSampler({
      messages: () => node.messagesStored.get(),
      framesIn: () => node.framesIn(),
    });
    metrics.gauge(
      "im_event_loop_lag_seconds",
      "Worst event-loop lag of the last second",
      () => sampler.read().eventLoopLagMs / 1000,
    );
    metrics.gauge(
      "im_process_cpu_ratio",
      "Process CPU time over wall time in the last second (1 = one core)",
      () => sampler.read().cpu,
    );
    const rateLimiter = new UserRateLimiter({
      request: { perConnection: config.rateLimitPerSec, perUser: config.userRateLimitPerSec },
      message: {
        perConnection: config.messageRatePerSec,
        perUser: config.userMessageRatePerSec,
      },
      presence: {
        perConnection: config.presenceRatePerSec,
        perUser: config.userPresenceRatePerSec,
      },
      floodCloseAfter: config.floodCloseAfter,
    });
    const control = new NodeControl({
      nodeId,
      address: () => address,
      startedAt: Date.now(),
      sessions,
      transport,
      membership,
      ask: (to, type, body, opts) => router.ask(to, type, body, opts),
      hostStats: () => host.stats(),
      placementMoves: () => router.stats().moves,
      sampler,
      settings: [config],
      logLevel: config.logLevel,
      logger,
      accessTokenTtlMs: config.accessTokenTtlSec * 1000,
      requestTimeoutMs: config.requestTimeoutMs,
      onApplied: (eff) => {
        services.limits.groupMaxMembers = eff.groupMaxMembers;
        // New connections and users get the new rates (existing buckets keep theirs).
        const l = rateLimiter.limits;
        l.request.perConnection = eff.rateLimitPerSec;
        l.request.perUser = eff.userRateLimitPerSec;
        l.message.perConnection = eff.messageRatePerSec;
        l.message.perUser = eff.userMessageRatePerSec;
        l.presence.perConnection = eff.presenceRatePerSec;
        l.presence.perUser = eff.userPresenceRatePerSec;
      },
    });
    cleanups.unshift(() => Promise.resolve(control.close()));
    // A muted user's sends are refused by the conversation actor, wherever it runs.
    for (const kind of ["direct", "group"]) {
      host.hooks.beforeAccept(kind, "send", ({ body }) => {
        if (control.isMuted((body as { from?: string })?.from ?? "")) {
          throw new ImError("muted", "You are muted by an administrator");
        }
      });
      host.hooks.after(kind, "stored", () => node.messagesStored.inc());
    }
    // After each commit, every recipient's user actor decides on an offline push (recipients
    // the connection directory knows to be connected on any node are skipped without asking).
    const offlinePush = offlinePushHook(
      (to, type, body) => router.tell(to, type, body, { sender: "push" }),
      (user) => directory.isConnected(user),
    );
    for (const kind of ["direct", "group"]) host.hooks.after(kind, "delivered", offlinePush);
    for (const [name, read] of Object.entries(notifierGauges)) {
      metrics.gauge(
        `im_push_${name}`,
        `Offline push: ${name} (see push/notifier.ts)`,
        () => notifier.stats()[read],
      );
    }
    await transport.serve((env) =>
      env.to === NODE_ADDRESS
        ? control.handle(env)
        : env.to === DIRECTORY_ADDRESS
        ? directory.handle(env)
        : host.receive(env)
    );
    metrics.gauge(
      "im_directory_entries",
      "Users' connections on other nodes known to this node (user × node)",
      () => directory.size,
    );
    metrics.gauge(
      "im_cluster_live_nodes",
      "Live nodes in this node's view of the cluster (itself included)",
      () => membership.liveNodes().length,
    );
    metrics.gauge(
      "im_directory_pending_nodes",
      "Live nodes whose connection list this node has not merged yet (they get every delivery)",
      () => directory.pendingNodes,
    );

    const ops = new OpRegistry();
    registerAllOps(ops);
    const sessionTokens = {
      async verifyAccess(token: string) {
        const identity = await tokens.verifyAccess(token);
        // Tokens issued before a forced logout are refused until they expire.
        if (control.isRevokedToken(identity.userId, token)) {
          throw new ImError("invalid_token", "Invalid or expired token");
        }
        return identity;
      },
    };
    const gateway = gatewayMetrics(metrics);
    node.framesIn = () => sumCounter(gateway.framesIn);
    const app = createApp({
      store,
      tokens,
      metrics,
      health,
      logger,
      passwordIterations: config.passwordIterations,
      newId,
      allowedOrigins: config.allowedOrigins,
      idleTimeoutSec: config.idleTimeoutSec,
      sessions,
      ipBudget: new IpBudget(config.maxUnauthPerIp),
      loginThrottle: new LoginThrottle({
        perUserPerMinute: config.loginAttemptsPerUserPerMin,
        perIpPerMinute: config.loginAttemptsPerIpPerMin,
      }),
      registrationThrottle: new RegistrationThrottle({
        perIpPerHour: config.registrationsPerIpPerHour,
      }),
      session: {
        router,
        nodeId,
        ops,
        tokens: sessionTokens,
        registry,
        settings: config,
        newId,
        logger,
        metrics: gateway,
        limits: rateLimiter,
        directory,
      },
    });
    let blobs: BlobStore;
    if (config.mediaStore === "postgres") {
      const pg = openPostgresBlobStore(config.databaseUrl!);
      cleanups.push(() => pg.close());
      // Timed and counted with the other Postgres calls (op put/get/delete).
      blobs = instrument(pg, "postgres", deps, ["put", "get", "delete"]);
    } else blobs = openDiskBlobStore(config.mediaDir);
    app.route(
      "/",
      mediaRoutes({
        store,
        blobs,
        tokens: sessionTokens,
        actors: router,
        newId,
        maxBytes: config.mediaMaxBytes,
        allowedTypes: config.mediaTypes,
        requestTimeoutMs: config.requestTimeoutMs,
        logger,
      }),
    );
    app.route(
      "/",
      adminRoutes({
        store,
        tokens,
        control,
        ask: (to, type, body) => router.ask(to, type, body),
        deliver: services.deliver,
        logger,
      }),
    );
    metrics.gauge("im_commit_queue", "Appends waiting for the group commit", () => commits.pending);

    const tls = config.tlsCertFile && config.tlsKeyFile
      ? {
        cert: await Deno.readTextFile(config.tlsCertFile),
        key: await Deno.readTextFile(config.tlsKeyFile),
      }
      : {};
    const server = Deno.serve({
      port: config.port,
      hostname: config.hostname,
      onListen: () => {},
      ...tls,
    }, app.fetch);
    const port = server.addr.port;
    const addrHost = config.hostname === "0.0.0.0" ? "127.0.0.1" : config.hostname;
    const url = `${"cert" in tls ? "https" : "http"}://${addrHost}:${port}`;
    const self = { id: nodeId, address: url, startedAt: Date.now() };
    address = url;
    await membership.join(self);
    sampler.start();
    cleanups.unshift(() => Promise.resolve(sampler.stop()));
    await control.start();
    // A node that lost its membership (it could not heartbeat for a TTL: a stall, or Redis was
    // unreachable) has dropped every actor; it joins again as soon as it can, so it recovers by
    // itself when the dependency returns. Its next activations take fresh epochs.
    let rejoinTimer: ReturnType<typeof setTimeout> | undefined;
    let leaving = false;
    const rejoin = () => {
      rejoinTimer = undefined;
      if (leaving) return;
      membership.join(self).then(
        () => logger.warn("rejoined the cluster"),
        () => {
          if (!leaving) rejoinTimer = setTimeout(rejoin, config.heartbeatMs);
        },
      );
    };
    membership.onSelfLost(() => {
      logger.error("lost cluster membership: stopping actors (self-fencing)");
      host.dropAll("membership lost");
      // At once: the actors are dropped already, and every moment without a membership is a
      // moment of `unavailable` answers (a stalled single node would otherwise serve nothing).
      if (!leaving && rejoinTimer === undefined) rejoinTimer = setTimeout(rejoin, 0);
    });
    if (config.mode === "cluster") {
      // Other nodes learn of this one at their next view refresh; until then they would not
      // send deliveries here, so clients are let in only once every view has caught up.
      await new Promise((r) => setTimeout(r, config.heartbeatMs + 250));
    }
    health.state = "ready";
    logger.info("node started", { url, mode: config.mode, store: store.kind });

    let stopping: Promise<void> | undefined;
    return {
      nodeId,
      url,
      port,
      host,
      router,
      store,
      registry,
      metrics,
      logger,
      reloadKeys: () => keyReloader?.reload() ?? Promise.resolve(false),
      shutdown() {
        stopping ??= (async () => {
          health.state = "draining";
          leaving = true;
          clearTimeout(rejoinTimer);
          // Peers stop placing new actors here once their view shows the draining flag; the
          // actors held here stay put (no takeover) until stopAll has handed them off.
          await membership.drain().catch((err) =>
            logger.warn("drain announcement failed", { err })
          );
          if (config.mode === "cluster") {
            await new Promise((r) => setTimeout(r, config.heartbeatMs + 250));
          }
          await host.stopAll();
          for (const s of sessions) s.close(CloseCode.restarting, "node restarting");
          await membership.leave().catch((err) => logger.warn("leave failed", { err }));
          if (config.mode === "cluster") {
            // Keep answering `moved` until the peers' views have dropped this node: a closed
            // transport would look like a live node that cannot be reached (`unavailable`).
            await new Promise((r) => setTimeout(r, config.heartbeatMs + 250));
          }
          await server.shutdown();
          host.close();
          for (const c of cleanups) await c().catch((err) => logger.warn("close failed", { err }));
          logger.info("node stopped");
        })();
        return stopping;
      },
    };
  } catch (err) {
    for (const c of cleanups) await c().catch(() => {});
    throw err;
  }
}

/** Node metrics that need updating from outside (hooks, deliveries). */
interface NodeMetrics {
  messagesStored: Counter;
  observeDeliveries(ds: Delivery[]): void;
  framesIn: () => number;
}

/** Buckets of the delivery latency, seconds (stored → pushed to the socket queue). */
const DELIVERY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

function registerNodeMetrics(
  metrics: MetricsRegistry,
  host: ActorHost<ImServices>,
  registry: ConnectionRegistry,
  router: Router,
): NodeMetrics {
  metrics.gauge("im_connections", "Authenticated WebSocket connections", () => registry.size);
  metrics.gauge("im_actors_active", "Active actors on this node", () => host.stats().active);
  metrics.gauge(
    "im_actor_activations_total",
    "Activations since start",
    () => host.stats().activations,
  );
  metrics.gauge(
    "im_actor_passivations_total",
    "Passivations since start",
    () => host.stats().passivations,
  );
  metrics.gauge(
    "im_mailbox_depth",
    "Messages waiting in mailboxes",
    () => host.stats().mailboxDepth,
  );
  metrics.gauge(
    "im_placement_moves_total",
    "Messages answered `moved` (the actor lived elsewhere) since start",
    () => router.stats().moves,
  );
  metrics.gauge(
    "im_router_retries_total",
    "Messages re-resolved and re-sent after a move or a dead node",
    () => router.stats().retries,
  );
  metrics.gauge("im_memory_rss_bytes", "Resident memory", () => Deno.memoryUsage().rss);
  metrics.gauge("im_memory_heap_used_bytes", "V8 heap used", () => Deno.memoryUsage().heapUsed);
  const messagesStored = metrics.counter(
    "im_messages_stored_total",
    "Messages stored by the conversation actors of this node",
  );
  const latency = metrics.histogram(
    "im_delivery_latency_seconds",
    "From a message's server time to its push to local sockets",
    DELIVERY_BUCKETS,
  );
  return {
    messagesStored,
    framesIn: () => 0,
    observeDeliveries(ds) {
      const now = Date.now();
      for (const d of ds) {
        const ts = d.frame.op === "msg" ? d.frame.ts : undefined;
        if (typeof ts === "number") latency.observe(Math.max(0, now - ts) / 1000);
      }
    },
  };
}

/** The total of a counter over its labels. */
function sumCounter(c: Counter): number {
  let n = 0;
  for (const v of c.values()) n += v;
  return n;
}

export type { Placement };

/** Offline-push gauges and the notifier counter each reads. */
const notifierGauges = {
  pending: "pending",
  sent_total: "sent",
  failed_total: "failed",
  dropped_total: "dropped",
} as const;
