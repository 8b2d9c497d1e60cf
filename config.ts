/**
 * Node configuration from environment variables. Every variable is documented in README.md.
 *
 * `loadConfig` either returns a complete, validated configuration or throws a
 * {@link ConfigError} whose message names the variable and the accepted values, so a bad value
 * stops start-up with a clear message instead of misbehaving later.
 *
 * @module
 */
import { isLogLevel, type LogLevel } from "./observability/log.ts";
import { DEFAULT_MEDIA_TYPES, KNOWN_TYPES } from "./media/sniff.ts";

/** A configuration value is missing or invalid. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** The validated node configuration. */
export interface Config {
  /** HTTP/WebSocket port (0 picks a free one). Default 8080. */
  port: number;
  /** Listen address. Default `0.0.0.0`. */
  hostname: string;
  /** Where the embedded store (and a generated JWT secret) live. Default `./data`. */
  dataDir: string;
  /** Postgres URL; when set, the Postgres store replaces the embedded SQLite one. */
  databaseUrl?: string;
  /** Redis URL (cluster placement and membership). */
  redisUrl?: string;
  /** NATS URL(s), comma-separated (cluster transport). */
  natsUrl?: string;
  /** `embedded` (memory cluster adapters) or `cluster` (Redis + NATS + Postgres). */
  mode: "embedded" | "cluster";
  /** HS256 secrets; the first signs, all verify. Undefined → generated under dataDir (embedded only). */
  jwtSecrets?: string[];
  /** Access-token lifetime, seconds. Default 900. */
  accessTokenTtlSec: number;
  /** Refresh-token lifetime, seconds. Default 30 days. */
  refreshTokenTtlSec: number;
  /** PBKDF2 iterations for new password hashes. Default 210000. */
  passwordIterations: number;
  /** Largest WebSocket message accepted, bytes. Default 65536. */
  maxFrameBytes: number;
  /** Time allowed between the upgrade and the `auth` frame, ms. Default 10000. */
  authTimeoutMs: number;
  /** WebSocket ping interval / idle timeout, seconds. Default 30. */
  idleTimeoutSec: number;
  /** Actor mailbox capacity. Default 1024. */
  mailboxCapacity: number;
  /** Idle time before an actor is passivated, ms. Default 300000. */
  passivateAfterMs: number;
  /** Default deadline of a client request inside the cluster, ms. Default 5000. */
  requestTimeoutMs: number;
  /** Most members a group may have. Default 2000. */
  groupMaxMembers: number;
  /** How long a sender may recall a message, seconds (RECALL_WINDOW_SEC). Default 120. */
  recallWindowSec: number;
  /** Largest media upload, bytes (MEDIA_MAX_BYTES). Default 10 MiB. */
  mediaMaxBytes: number;
  /** Accepted media types, sniffed from the bytes (MEDIA_TYPES, comma-separated). */
  mediaTypes: string[];
  /**
   * Where uploaded media bytes live (MEDIA_STORE): `disk` (MEDIA_DIR) or `postgres` (the
   * `media_blobs` table of DATABASE_URL). Default `postgres` in cluster mode when MEDIA_DIR is not
   * set (no directory every node shares), else `disk`.
   */
  mediaStore: "disk" | "postgres";
  /** Where the disk blob store keeps media (MEDIA_DIR). Default `<dataDir>/media`. */
  mediaDir: string;
  /** Per-connection request budget per second before `rate_limited`. Default 200. */
  rateLimitPerSec: number;
  /** Per-user (all connections on a node) request budget per second. Default 400. */
  userRateLimitPerSec: number;
  /** Per-connection message budget per second (`send` and other message ops). Default 100. */
  messageRatePerSec: number;
  /** Per-user message budget per second. Default 200. */
  userMessageRatePerSec: number;
  /** Per-connection presence budget per second. Default 5. */
  presenceRatePerSec: number;
  /** Per-user presence budget per second. Default 10. */
  userPresenceRatePerSec: number;
  /** Rate-limited frames in a row after which the connection is closed with 1008. Default 100. */
  floodCloseAfter: number;
  /** Unauthenticated WebSocket connections per client IP. Default 50. */
  maxUnauthPerIp: number;
  /** Failed login attempts per username per minute before 429. Default 10. */
  loginAttemptsPerUserPerMin: number;
  /** Failed login attempts per client IP per minute before 429. Default 30. */
  loginAttemptsPerIpPerMin: number;
  /** Account registrations per client IP per hour before 429. Default 20. */
  registrationsPerIpPerHour: number;
  /** JWT_SECRET_FILE, re-read on SIGHUP and every `jwtReloadSec` (key rotation). */
  jwtSecretFile?: string;
  /** The secrets given in JWT_SECRET (they come before the file's on every reload). */
  jwtSecretsFromEnv: string[];
  /** Seconds between re-reads of JWT_SECRET_FILE; 0 = only on SIGHUP. Default 60. */
  jwtReloadSec: number;
  /** PEM certificate chain file: with `tlsKeyFile`, the node serves HTTPS/WSS itself. */
  tlsCertFile?: string;
  /** PEM private key file of `tlsCertFile`. */
  tlsKeyFile?: string;
  /** Bytes queued on one socket before it is closed as a slow consumer. Default 8 MiB. */
  maxSocketBufferBytes: number;
  /** Allowed `Origin` values for the WebSocket upgrade; empty = any. */
  allowedOrigins: string[];
  /** NATS subject prefix (several clusters may share one NATS). Default `im`. */
  natsPrefix: string;
  /** Redis key prefix. Default `im`. */
  redisPrefix: string;
  /** Placement lease, ms. Default 6000. */
  leaseMs: number;
  /** Membership heartbeat, ms. Default 1000. */
  heartbeatMs: number;
  /** Membership TTL, ms. Default 3000. */
  memberTtlMs: number;
  logLevel: LogLevel;
  /** Offline push webhook (`PUSH_WEBHOOK_URL`); unset: pushes are logged at debug level. */
  pushWebhookUrl?: string;
  /** HMAC-SHA256 key of the webhook signature (`PUSH_WEBHOOK_SECRET`, required with the URL). */
  pushWebhookSecret?: string;
}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return def;
  if (!/^-?\d+$/.test(raw.trim())) {
    throw new ConfigError(`${name} must be an integer, got "${raw}"`);
  }
  const n = Number(raw.trim());
  if (n < min || n > max) {
    throw new ConfigError(`${name} must be between ${min} and ${max}, got ${n}`);
  }
  return n;
}

function url(env: Env, name: string, schemes: string[]): string | undefined {
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  for (const part of raw.split(",")) {
    let parsed: URL;
    try {
      parsed = new URL(part.includes("://") ? part : `${schemes[0]}//${part}`);
    } catch {
      throw new ConfigError(`${name} is not a valid URL: "${part}"`);
    }
    if (!schemes.includes(parsed.protocol)) {
      throw new ConfigError(`${name} must use ${schemes.join(" or ")}, got "${parsed.protocol}"`);
    }
  }
  return raw;
}

function envSecrets(env: Env): string[] {
  const direct = env.JWT_SECRET?.trim();
  return direct ? direct.split(",").map((s) => s.trim()).filter(Boolean) : [];
}

/**
 * The JWT secrets of `fromEnv` followed by those of `file` (one per line); the first signs, all
 * verify. Throws ConfigError when the file cannot be read or a secret is under 32 bytes. Used at
 * start-up and on every key reload.
 */
export function readJwtSecrets(fromEnv: readonly string[], file: string | undefined): string[] {
  const list = [...fromEnv];
  if (file) {
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch (err) {
      throw new ConfigError(`JWT_SECRET_FILE "${file}" cannot be read: ${(err as Error).message}`);
    }
    list.push(...text.split(/\r?\n/).map((s) => s.trim()).filter(Boolean));
  }
  for (const s of list) {
    if (new TextEncoder().encode(s).length < 32) {
      throw new ConfigError("JWT_SECRET values must be at least 32 bytes long");
    }
  }
  return list;
}

function secrets(env: Env): string[] | undefined {
  const list = readJwtSecrets(envSecrets(env), env.JWT_SECRET_FILE?.trim() || undefined);
  return list.length ? list : undefined;
}

function mediaTypes(env: Env): string[] {
  const raw = env.MEDIA_TYPES?.trim();
  if (!raw) return [...DEFAULT_MEDIA_TYPES];
  const list = raw.split(",").map((s) => s.trim()).filter(Boolean);
  for (const t of list) {
    if (!(KNOWN_TYPES as readonly string[]).includes(t)) {
      throw new ConfigError(`MEDIA_TYPES: "${t}" is not one of ${KNOWN_TYPES.join(", ")}`);
    }
  }
  return list;
}

/** Reads and validates the configuration; throws ConfigError with a clear message. */
export function loadConfig(env: Env = Deno.env.toObject()): Config {
  const databaseUrl = url(env, "DATABASE_URL", ["postgres:", "postgresql:"]);
  const redisUrl = url(env, "REDIS_URL", ["redis:", "rediss:"]);
  const natsUrl = url(env, "NATS_URL", ["nats:", "tls:"]);
  const clusterParts = [redisUrl, natsUrl].filter(Boolean).length;
  if (clusterParts === 1) {
    throw new ConfigError("Cluster mode needs both REDIS_URL and NATS_URL (got only one)");
  }
  const mode = clusterParts === 2 ? "cluster" : "embedded";
  if (mode === "cluster" && !databaseUrl) {
    throw new ConfigError("Cluster mode (REDIS_URL and NATS_URL set) needs DATABASE_URL");
  }
  const jwtSecrets = secrets(env);
  if (mode === "cluster" && !jwtSecrets) {
    throw new ConfigError(
      "Cluster mode needs JWT_SECRET or JWT_SECRET_FILE: every node must share the signing key",
    );
  }
  const mediaStore = env.MEDIA_STORE?.trim() ||
    // A cluster without a directory every node shares keeps media in its shared database.
    (mode === "cluster" && !env.MEDIA_DIR?.trim() ? "postgres" : "disk");
  if (mediaStore !== "disk" && mediaStore !== "postgres") {
    throw new ConfigError(`MEDIA_STORE must be "disk" or "postgres", got "${mediaStore}"`);
  }
  if (mediaStore === "postgres" && !databaseUrl) {
    throw new ConfigError("MEDIA_STORE=postgres needs DATABASE_URL");
  }
  const logLevel = env.LOG_LEVEL?.trim() || "info";
  if (!isLogLevel(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of debug, info, warn, error, got "${logLevel}"`);
  }
  const origins = (env.ALLOWED_ORIGINS ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  const prefix = (name: string) => {
    const v = env[name]?.trim() || "im";
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(v)) {
      throw new ConfigError(`${name} must be 1-32 characters of A-Z a-z 0-9 _ -, got "${v}"`);
    }
    return v;
  };
  const tlsCertFile = env.TLS_CERT_FILE?.trim() || undefined;
  const tlsKeyFile = env.TLS_KEY_FILE?.trim() || undefined;
  if (!tlsCertFile !== !tlsKeyFile) {
    throw new ConfigError("TLS needs both TLS_CERT_FILE and TLS_KEY_FILE (got only one)");
  }
  const leaseMs = int(env, "LEASE_MS", 6000, 1000, 600_000);
  const heartbeatMs = int(env, "HEARTBEAT_MS", 1000, 100, 60_000);
  const memberTtlMs = int(env, "MEMBER_TTL_MS", 3000, 300, 600_000);
  if (memberTtlMs < 2 * heartbeatMs) {
    throw new ConfigError("MEMBER_TTL_MS must be at least twice HEARTBEAT_MS");
  }
  return {
    port: int(env, "PORT", 8080, 0, 65535),
    hostname: env.HOST?.trim() || "0.0.0.0",
    dataDir: env.DATA_DIR?.trim() || "./data",
    databaseUrl,
    redisUrl,
    natsUrl,
    mode,
    jwtSecrets,
    accessTokenTtlSec: int(env, "ACCESS_TOKEN_TTL_SEC", 900, 10, 86_400),
    refreshTokenTtlSec: int(env, "REFRESH_TOKEN_TTL_SEC", 30 * 86_400, 60, 365 * 86_400),
    passwordIterations: int(env, "PASSWORD_ITERATIONS", 210_000, 1_000, 10_000_000),
    maxFrameBytes: int(env, "MAX_FRAME_BYTES", 65_536, 1_024, 16 * 1_048_576),
    authTimeoutMs: int(env, "AUTH_TIMEOUT_MS", 10_000, 100, 600_000),
    idleTimeoutSec: int(env, "IDLE_TIMEOUT_SEC", 30, 1, 3_600),
    mailboxCapacity: int(env, "MAILBOX_CAPACITY", 1024, 1, 1_000_000),
    passivateAfterMs: int(env, "PASSIVATE_AFTER_MS", 300_000, 10, 86_400_000),
    requestTimeoutMs: int(env, "REQUEST_TIMEOUT_MS", 5_000, 100, 600_000),
    groupMaxMembers: int(env, "GROUP_MAX_MEMBERS", 2_000, 2, 100_000),
    recallWindowSec: int(env, "RECALL_WINDOW_SEC", 120, 0, 365 * 86_400),
    mediaMaxBytes: int(env, "MEDIA_MAX_BYTES", 10 * 1_048_576, 1_024, 1 << 30),
    mediaTypes: mediaTypes(env),
    mediaStore,
    mediaDir: env.MEDIA_DIR?.trim() || `${env.DATA_DIR?.trim() || "./data"}/media`,
    rateLimitPerSec: int(env, "RATE_LIMIT_PER_SEC", 200, 1, 1_000_000),
    userRateLimitPerSec: int(env, "USER_RATE_LIMIT_PER_SEC", 400, 1, 1_000_000),
    messageRatePerSec: int(env, "MESSAGE_RATE_PER_SEC", 100, 1, 1_000_000),
    userMessageRatePerSec: int(env, "USER_MESSAGE_RATE_PER_SEC", 200, 1, 1_000_000),
    presenceRatePerSec: int(env, "PRESENCE_RATE_PER_SEC", 5, 1, 1_000_000),
    userPresenceRatePerSec: int(env, "USER_PRESENCE_RATE_PER_SEC", 10, 1, 1_000_000),
    floodCloseAfter: int(env, "FLOOD_CLOSE_AFTER", 100, 1, 1_000_000),
    maxUnauthPerIp: int(env, "MAX_UNAUTH_PER_IP", 50, 1, 1_000_000),
    loginAttemptsPerUserPerMin: int(env, "LOGIN_ATTEMPTS_PER_USER_PER_MIN", 10, 1, 1_000_000),
    loginAttemptsPerIpPerMin: int(env, "LOGIN_ATTEMPTS_PER_IP_PER_MIN", 30, 1, 1_000_000),
    registrationsPerIpPerHour: int(env, "REGISTRATIONS_PER_IP_PER_HOUR", 20, 1, 1_000_000),
    jwtSecretFile: env.JWT_SECRET_FILE?.trim() || undefined,
    jwtSecretsFromEnv: envSecrets(env),
    jwtReloadSec: int(env, "JWT_RELOAD_SEC", 60, 0, 86_400),
    tlsCertFile,
    tlsKeyFile,
    maxSocketBufferBytes: int(env, "MAX_SOCKET_BUFFER_BYTES", 8 * 1_048_576, 65_536, 1 << 30),
    allowedOrigins: origins,
    natsPrefix: prefix("NATS_PREFIX"),
    redisPrefix: prefix("REDIS_PREFIX"),
    leaseMs,
    heartbeatMs,
    memberTtlMs,
    logLevel,
    ...pushConfig(env),
  };
}

/** The offline-push settings: a webhook URL needs a secret of at least 16 bytes, and back. */
function pushConfig(env: Env): { pushWebhookUrl?: string; pushWebhookSecret?: string } {
  const pushWebhookUrl = url(env, "PUSH_WEBHOOK_URL", ["https:", "http:"]);
  const pushWebhookSecret = env.PUSH_WEBHOOK_SECRET?.trim() || undefined;
  if (pushWebhookUrl && !pushWebhookSecret) {
    throw new ConfigError("PUSH_WEBHOOK_URL needs PUSH_WEBHOOK_SECRET (the signature key)");
  }
  if (pushWebhookSecret && !pushWebhookUrl) {
    throw new ConfigError("PUSH_WEBHOOK_SECRET is set but PUSH_WEBHOOK_URL is not");
  }
  if (pushWebhookSecret && new TextEncoder().encode(pushWebhookSecret).length < 16) {
    throw new ConfigError("PUSH_WEBHOOK_SECRET must be at least 16 bytes long");
  }
  return { pushWebhookUrl, pushWebhookSecret };
}
