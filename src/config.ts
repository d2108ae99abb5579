// Every setting Herald reads, from the environment, validated once at start. The README's configuration
// table lists the same settings; keep the two in step.
import net from 'node:net';
import { type ChannelName, channelNames } from './core/channels.js';
import { defaultRetryPolicies, type RetryPolicy } from './core/retry-policy.js';
import type { RateLimit } from './delivery/rate-limiter.js';
import type { CorsOrigins } from './server/cors.js';
import type { ListenerLimits } from './server/listener.js';

/** The push lane's concurrency, as a multiple of HERALD_DISPATCH_CONCURRENCY, unless set on its own. */
const PUSH_CONCURRENCY_FACTOR = 4;

/** The longest a claimed delivery waits in process for a rate-limit token before it is requeued instead. */
export const MAX_TOKEN_WAIT_MS = 1_000;

export interface Config {
  host: string;
  port: number;
  /** Native gRPC (@grpc/grpc-js) on a port of its own; undefined: off (HERALD_GRPC_PORT=off). */
  grpcPort: number | undefined;
  /** PostgreSQL URL; undefined selects the embedded PGlite engine. */
  databaseUrl: string | undefined;
  dataDir: string;
  dbPoolMax: number;
  /** Send statements run at once; Sends beyond that are grouped into one statement (group commit). */
  sendMaxStatements: number;
  migrateOnStart: boolean;
  jwt: JwtConfig;
  bootstrapAdminKey: boolean;
  apiKeyCacheTtlMs: number;
  maxRequestBytes: number;
  /** gRPC server reflection (grpc.reflection.v1 and v1alpha), answered without credentials. */
  reflection: boolean;
  shutdownTimeoutMs: number;
  /** On shutdown: live WebSockets and streams are ended (1012, service restart) spread over this window. */
  drainMs: number;
  logLevel: string;
  /** Server processes sharing the port (node:cluster); more than one needs DATABASE_URL. */
  workers: number;
  /** Redis: the real-time bus across instances and shared rate-limit buckets; in process otherwise. */
  redisUrl: string | undefined;
  /** Heartbeat events on idle StreamNotifications calls and WebSocket connections, so proxies keep them open. */
  streamHeartbeatMs: number;
  /** With REDIS_URL: how long an instance's entry in the connection registry lives without a refresh. */
  registryTtlMs: number;
  /** With REDIS_URL: while Redis is away, how often live sessions look in PostgreSQL for what they missed. */
  busFallbackPollMs: number;
  /** Live sessions (WebSocket handshakes, StreamNotifications calls) starting at once; the rest wait or are refused. */
  sessionStarts: { limit: number; maxWaitMs: number };
  websocket: {
    pingMs: number;
    authTimeoutMs: number;
    maxConnectionsPerUser: number;
    maxBufferedBytes: number;
  };
  /** The base URL of links Herald puts into messages (unsubscribe); unset: http://localhost:<port>. */
  publicUrl: string | undefined;
  /** Signs those links (HMAC); unset: a random secret per process, so links die with it (development). */
  linkSecret: string | undefined;
  /** The address of mailto: unsubscribe in List-Unsubscribe (its mailbox's owner applies the requests). */
  unsubscribeMailto: string | null;
  /** SES feedback over SNS (POST /webhooks/ses): the topics taken; none: the endpoint takes nothing. */
  sesFeedback: {
    topicArns: string[];
    /** Hosts trusted for SigningCertURL and SubscribeURL besides SNS's own (a private or test CA's host). */
    certHosts: string[];
    /** An extra CA (PEM file) for fetching from those hosts. */
    caFile: string | undefined;
  };
  /** Browser origins that may call the RPCs and open /ws (CORS); unset: no CORS headers, /ws takes any. */
  corsOrigins: CorsOrigins | undefined;
  /** Bounds on connections before authentication (the one-port listener); the README's Security section. */
  listener: ListenerLimits;
  delivery: DeliveryConfig;
  /** OpenTelemetry traces; undefined when no OTLP endpoint is set (no tracing at all). */
  tracing: TracingConfig | undefined;
}

export interface TracingConfig {
  /** Where spans are POSTed (OTLP/HTTP). */
  tracesUrl: string;
  /** OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf (the spec's default). */
  protocol: OtlpProtocol;
  /** OTEL_SERVICE_NAME, else `service.name` from OTEL_RESOURCE_ATTRIBUTES, else `herald`. */
  serviceName: string;
  /** OTEL_TRACES_SAMPLER and, for the ratio samplers, OTEL_TRACES_SAMPLER_ARG (default 1). */
  sampler: { name: TracesSampler; ratio?: number };
  /** OTEL_RESOURCE_ATTRIBUTES, decoded; they win over the attributes Herald sets (host.name, ...). */
  resourceAttributes: Record<string, string>;
}

/** The OTLP protocols Herald exports traces with: OTLP/HTTP, protobuf or JSON bodies (not gRPC). */
export const otlpProtocols = ['http/protobuf', 'http/json'] as const;
export type OtlpProtocol = (typeof otlpProtocols)[number];

/** The OTEL_TRACES_SAMPLER values the SDK's samplers implement (the specification's, less the remote ones). */
export const tracesSamplers = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;
export type TracesSampler = (typeof tracesSamplers)[number];

export interface DeliveryConfig {
  /** Run the dispatcher in this process (an API-only instance turns it off). */
  dispatcher: boolean;
  /** Deliveries attempted at once, per channel. */
  concurrency: number;
  /** Per channel, where it differs (HERALD_DISPATCH_CONCURRENCY_<CHANNEL>; push defaults higher). */
  channelConcurrency: Partial<Record<ChannelName, number>>;
  leaseMs: number;
  pollMs: number;
  configRefreshMs: number;
  retry: Record<ChannelName, RetryPolicy>;
  /** By provider name (webhook, ...): tokens per second and burst. */
  rateLimits: Record<string, RateLimit>;
  circuitFailures: number;
  circuitOpenMs: number;
  webhookTimeoutMs: number;
  /** Networks webhook endpoints may resolve to although they are not global (CIDRs). */
  webhookAllowNetworks: string[];
  webhookDisableAfterMs: number;
  /** The providers file (JSON); without one, channels other than webhooks use the outbox. */
  providersFile: string | undefined;
  /** The outbox table keeps the newest this many messages. */
  outboxMaxMessages: number;
  /** A push token not registered or refreshed for this long is deactivated (stale). */
  pushTokenStaleMs: number;
}

export interface JwtConfig {
  secret: string | undefined;
  publicKeyFile: string | undefined;
  jwksFile: string | undefined;
  jwksUrl: string | undefined;
  issuer: string | undefined;
  audience: string | undefined;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const str = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v ? v : undefined;
  };
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = str(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name} must be an integer from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return n;
  };
  const bool = (name: string, fallback: boolean): boolean => {
    const raw = str(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
    if (['0', 'false', 'no', 'off'].includes(raw)) return false;
    problems.push(`${name} must be true or false (got "${raw}")`);
    return fallback;
  };

  const databaseUrl = str('DATABASE_URL');
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push('DATABASE_URL must be a postgres:// or postgresql:// URL');
  }
  const jwt: JwtConfig = {
    secret: str('HERALD_JWT_SECRET'),
    publicKeyFile: str('HERALD_JWT_PUBLIC_KEY_FILE'),
    jwksFile: str('HERALD_JWT_JWKS_FILE'),
    jwksUrl: str('HERALD_JWT_JWKS_URL'),
    issuer: str('HERALD_JWT_ISSUER'),
    audience: str('HERALD_JWT_AUDIENCE'),
  };
  const keySources = [jwt.secret, jwt.publicKeyFile, jwt.jwksFile, jwt.jwksUrl].filter(Boolean).length;
  if (keySources > 1) {
    problems.push(
      'set at most one of HERALD_JWT_SECRET, HERALD_JWT_PUBLIC_KEY_FILE, HERALD_JWT_JWKS_FILE, HERALD_JWT_JWKS_URL',
    );
  }
  if (jwt.secret && Buffer.byteLength(jwt.secret) < 32) {
    problems.push('HERALD_JWT_SECRET must be at least 32 bytes (HS256 keys shorter than the hash are weak)');
  }
  if (jwt.jwksUrl && !/^https?:\/\//.test(jwt.jwksUrl))
    problems.push('HERALD_JWT_JWKS_URL must be an http(s) URL');
  const logLevel = str('HERALD_LOG_LEVEL') ?? 'info';
  if (!logLevels.includes(logLevel)) problems.push(`HERALD_LOG_LEVEL must be one of ${logLevels.join(', ')}`);

  const dispatchConcurrency = int('HERALD_DISPATCH_CONCURRENCY', 32, 1, 10_000);
  const config: Config = {
    host: str('HERALD_HOST') ?? '0.0.0.0',
    port: int('HERALD_PORT', 8080, 0, 65535),
    grpcPort:
      str('HERALD_GRPC_PORT')?.toLowerCase() === 'off' ? undefined : int('HERALD_GRPC_PORT', 50051, 0, 65535),
    databaseUrl,
    dataDir: str('HERALD_DATA_DIR') ?? './.herald/data',
    dbPoolMax: int('HERALD_DB_POOL_MAX', 10, 1, 1000),
    sendMaxStatements: int('HERALD_SEND_MAX_STATEMENTS', 4, 1, 1000),
    migrateOnStart: bool('HERALD_MIGRATE_ON_START', true),
    jwt,
    bootstrapAdminKey: bool('HERALD_BOOTSTRAP_ADMIN_KEY', true),
    apiKeyCacheTtlMs: int('HERALD_API_KEY_CACHE_TTL_MS', 5_000, 0, 3_600_000),
    maxRequestBytes: int('HERALD_MAX_REQUEST_BYTES', 16 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    reflection: bool('HERALD_REFLECTION', true),
    shutdownTimeoutMs: int('HERALD_SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    drainMs: int('HERALD_DRAIN_MS', 5_000, 0, 600_000),
    logLevel,
    publicUrl: publicUrl(str('HERALD_PUBLIC_URL'), problems),
    corsOrigins: corsOrigins(str('HERALD_CORS_ORIGINS'), problems),
    linkSecret: str('HERALD_LINK_SECRET'),
    unsubscribeMailto: unsubscribeMailto(str('HERALD_UNSUBSCRIBE_MAILTO'), problems),
    sesFeedback: {
      topicArns: list(str('HERALD_SES_TOPIC_ARNS')).filter((arn) => {
        const ok = /^arn:aws(-cn|-us-gov)?:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$/.test(arn);
        if (!ok) problems.push(`HERALD_SES_TOPIC_ARNS: "${arn}" is not an SNS topic ARN`);
        return ok;
      }),
      certHosts: list(str('HERALD_SNS_CERT_HOSTS')),
      caFile: str('HERALD_SNS_CA_FILE'),
    },
    workers: int('HERALD_WORKERS', 1, 1, 64),
    redisUrl: str('REDIS_URL'),
    streamHeartbeatMs: int('HERALD_STREAM_HEARTBEAT_MS', 20_000, 100, 600_000),
    registryTtlMs: int('HERALD_REGISTRY_TTL_MS', 60_000, 300, 3_600_000),
    busFallbackPollMs: int('HERALD_BUS_FALLBACK_POLL_MS', 2_000, 100, 60_000),
    sessionStarts: {
      limit: int('HERALD_SESSION_STARTS_MAX', 256, 1, 100_000),
      maxWaitMs: int('HERALD_SESSION_START_WAIT_MS', 5_000, 0, 60_000),
    },
    websocket: {
      pingMs: int('HERALD_WS_PING_MS', 25_000, 50, 600_000),
      authTimeoutMs: int('HERALD_WS_AUTH_TIMEOUT_MS', 5_000, 50, 60_000),
      maxConnectionsPerUser: int('HERALD_WS_MAX_CONNECTIONS_PER_USER', 20, 1, 10_000),
      maxBufferedBytes: int('HERALD_WS_MAX_BUFFERED_BYTES', 1024 * 1024, 1024, 1024 * 1024 * 1024),
    },
    listener: {
      sniffTimeoutMs: int('HERALD_SNIFF_TIMEOUT_MS', 10_000, 50, 300_000),
      headersTimeoutMs: int('HERALD_HEADERS_TIMEOUT_MS', 15_000, 50, 300_000),
      requestTimeoutMs: int('HERALD_REQUEST_TIMEOUT_MS', 60_000, 50, 3_600_000),
      idleTimeoutMs: int('HERALD_IDLE_TIMEOUT_MS', 65_000, 50, 3_600_000),
      maxConcurrentStreams: int('HERALD_HTTP2_MAX_CONCURRENT_STREAMS', 250, 1, 100_000),
      maxConnections: int('HERALD_MAX_CONNECTIONS', 10_000, 1, 10_000_000),
      maxConnectionsPerAddress: int('HERALD_MAX_CONNECTIONS_PER_ADDRESS', 1_000, 0, 10_000_000),
      perAddressExemptNetworks:
        str('HERALD_PER_ADDRESS_EXEMPT_NETWORKS') === 'none'
          ? []
          : networks(
              'HERALD_PER_ADDRESS_EXEMPT_NETWORKS',
              str('HERALD_PER_ADDRESS_EXEMPT_NETWORKS') ?? '127.0.0.0/8,::1',
              problems,
            ),
    },
    delivery: {
      dispatcher: bool('HERALD_DISPATCHER', true),
      concurrency: dispatchConcurrency,
      channelConcurrency: Object.fromEntries(
        channelNames.flatMap((c) => {
          const name = `HERALD_DISPATCH_CONCURRENCY_${c.toUpperCase()}`;
          // Push providers multiplex many requests over one HTTP/2 connection and answer in milliseconds: a
          // lane waits mostly on the network, so it keeps more attempts in flight.
          const fallback = c === 'push' ? PUSH_CONCURRENCY_FACTOR * dispatchConcurrency : undefined;
          const value = str(name) === undefined ? fallback : int(name, dispatchConcurrency, 1, 10_000);
          return value === undefined ? [] : [[c, value]];
        }),
      ),
      leaseMs: int('HERALD_DELIVERY_LEASE_MS', 60_000, 1_000, 3_600_000),
      pollMs: int('HERALD_DISPATCH_POLL_MS', 5_000, 10, 600_000),
      configRefreshMs: int('HERALD_CONFIG_REFRESH_MS', 5_000, 100, 3_600_000),
      retry: Object.fromEntries(
        channelNames.map((c) => [
          c,
          retryPolicy(
            `HERALD_RETRY_${c.toUpperCase()}`,
            str(`HERALD_RETRY_${c.toUpperCase()}`),
            defaultRetryPolicies[c],
            problems,
          ),
        ]),
      ) as Record<ChannelName, RetryPolicy>,
      rateLimits: rateLimits(str('HERALD_RATE_LIMITS'), problems),
      circuitFailures: int('HERALD_CIRCUIT_FAILURES', 5, 1, 1_000),
      circuitOpenMs: int('HERALD_CIRCUIT_OPEN_MS', 30_000, 100, 3_600_000),
      webhookTimeoutMs: int('HERALD_WEBHOOK_TIMEOUT_MS', 15_000, 100, 120_000),
      webhookAllowNetworks: networks(
        'HERALD_WEBHOOK_ALLOW_NETWORKS',
        str('HERALD_WEBHOOK_ALLOW_NETWORKS'),
        problems,
      ),
      webhookDisableAfterMs: int('HERALD_WEBHOOK_DISABLE_AFTER_HOURS', 120, 1, 24 * 365) * 3_600_000,
      providersFile: str('HERALD_PROVIDERS_FILE'),
      outboxMaxMessages: int('HERALD_OUTBOX_MAX_MESSAGES', 10_000, 1, 10_000_000),
      pushTokenStaleMs: int('HERALD_PUSH_TOKEN_STALE_DAYS', 270, 1, 3_650) * 86_400_000,
    },
    tracing: tracingConfig(str, problems),
  };
  // A claim must outlive its longest attempt (plus a rate-limit wait), or a second claim would start a
  // second attempt of the same delivery while the first is still running.
  const attemptBudgetMs = config.delivery.webhookTimeoutMs + MAX_TOKEN_WAIT_MS + 1_000;
  if (config.delivery.leaseMs < attemptBudgetMs) {
    problems.push(
      `HERALD_DELIVERY_LEASE_MS (${config.delivery.leaseMs}) must be at least HERALD_WEBHOOK_TIMEOUT_MS + ${MAX_TOKEN_WAIT_MS + 1_000} (${attemptBudgetMs})`,
    );
  }
  if (config.listener.headersTimeoutMs > config.listener.requestTimeoutMs) {
    problems.push(
      `HERALD_HEADERS_TIMEOUT_MS (${config.listener.headersTimeoutMs}) must not exceed HERALD_REQUEST_TIMEOUT_MS (${config.listener.requestTimeoutMs})`,
    );
  }
  if (config.linkSecret && Buffer.byteLength(config.linkSecret) < 32) {
    problems.push('HERALD_LINK_SECRET must be at least 32 bytes');
  }
  if (config.grpcPort !== undefined && config.grpcPort !== 0 && config.grpcPort === config.port) {
    problems.push(
      `HERALD_GRPC_PORT (${config.grpcPort}) must differ from HERALD_PORT: native gRPC has a port of its own (or set it to "off")`,
    );
  }
  if (config.workers > 1 && !databaseUrl) {
    problems.push('HERALD_WORKERS above 1 needs DATABASE_URL: the embedded database belongs to one process');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/**
 * OpenTelemetry's environment variables, read here (from the same record as every other setting) because the
 * SDK built in observability/tracing.ts reads none of them itself; the exporter reads its own headers, timeout,
 * compression and certificates. Without an endpoint (or with OTEL_SDK_DISABLED=true) nothing else is read and
 * there is no tracing.
 *
 * The OpenTelemetry convention: the traces endpoint is used as it is; the base endpoint gets the signal's path
 * (`http://collector:4318` -> `http://collector:4318/v1/traces`).
 */
function tracingConfig(
  str: (name: string) => string | undefined,
  problems: string[],
): TracingConfig | undefined {
  const tracesEndpoint = str('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const raw = tracesEndpoint ?? str('OTEL_EXPORTER_OTLP_ENDPOINT');
  if (raw === undefined) return undefined;
  const disabled = str('OTEL_SDK_DISABLED')?.toLowerCase();
  if (disabled === 'true') return undefined;
  if (disabled !== undefined && disabled !== 'false') {
    problems.push(`OTEL_SDK_DISABLED must be true or false (got "${disabled}")`);
    return undefined;
  }
  const before = problems.length;

  const name = tracesEndpoint ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT';
  let tracesUrl: string | undefined;
  try {
    const url = new URL(raw);
    if (url.protocol === 'http:' || url.protocol === 'https:') {
      tracesUrl = tracesEndpoint ? url.href : `${url.href.replace(/\/+$/, '')}/v1/traces`;
    }
  } catch {
    // Answered below.
  }
  if (tracesUrl === undefined) problems.push(`${name} must be an http(s) URL (OTLP/HTTP)`);

  // OTLP/HTTP with protobuf bodies (the specification's default) or JSON ones: each has its exporter. gRPC has
  // none here (no @opentelemetry/exporter-trace-otlp-grpc): say so instead of sending something else than was
  // asked for. The signal's own variable wins; unset or empty, the general one; neither, http/protobuf.
  const protocolName = str('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL')
    ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'
    : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = str(protocolName)?.toLowerCase() ?? 'http/protobuf';
  if (!(otlpProtocols as readonly string[]).includes(protocol)) {
    problems.push(
      `${protocolName} is "${protocol}" but Herald exports traces over OTLP/HTTP only: set it to http/protobuf ` +
        "(or unset it) or http/json, and point the endpoint at the collector's OTLP/HTTP port (4318), not its " +
        'gRPC port (4317)',
    );
  }

  const samplerName = str('OTEL_TRACES_SAMPLER')?.toLowerCase() ?? 'parentbased_always_on';
  let sampler: TracingConfig['sampler'] = { name: 'parentbased_always_on' };
  if (!(tracesSamplers as readonly string[]).includes(samplerName)) {
    problems.push(`OTEL_TRACES_SAMPLER must be one of ${tracesSamplers.join(', ')} (got "${samplerName}")`);
  } else if (samplerName.endsWith('traceidratio')) {
    // The ratio samplers' probability, 1 unset; the other samplers take no argument and ignore it.
    const arg = str('OTEL_TRACES_SAMPLER_ARG');
    const ratio = arg === undefined ? 1 : /^[0-9.eE+-]+$/.test(arg) ? Number(arg) : Number.NaN;
    if (!(ratio >= 0 && ratio <= 1)) {
      problems.push(
        `OTEL_TRACES_SAMPLER_ARG must be a probability from 0 to 1 for ${samplerName} (got "${arg}")`,
      );
    }
    sampler = { name: samplerName as TracesSampler, ratio };
  } else {
    sampler = { name: samplerName as TracesSampler };
  }

  const resourceAttributes = parseResourceAttributes(str('OTEL_RESOURCE_ATTRIBUTES'), problems);
  const serviceName = str('OTEL_SERVICE_NAME') ?? resourceAttributes['service.name'] ?? 'herald';
  if (tracesUrl === undefined || problems.length > before) return undefined;
  return { tracesUrl, protocol: protocol as OtlpProtocol, serviceName, sampler, resourceAttributes };
}

/**
 * OTEL_RESOURCE_ATTRIBUTES as the specification (and the resources package's envDetector) reads it: `key=value`
 * pairs separated by commas, `,` `=` and `%` percent-encoded in keys and values, each at most 255 characters.
 * The SDK would drop a malformed value silently; Herald refuses it at start instead.
 */
function parseResourceAttributes(raw: string | undefined, problems: string[]): Record<string, string> {
  const attributes: Record<string, string> = {};
  if (raw === undefined) return attributes;
  for (const entry of raw.split(',')) {
    if (entry.trim() === '') continue;
    const pair = entry.split('=');
    let key = '';
    let value = '';
    try {
      if (pair.length === 2) {
        key = decodeURIComponent(pair[0]!.trim());
        value = decodeURIComponent(pair[1]!.trim());
      }
    } catch {
      key = '';
    }
    if (key === '' || key.length > 255 || value.length > 255) {
      problems.push(
        `OTEL_RESOURCE_ATTRIBUTES must be comma-separated key=value pairs, percent-encoded, each at most 255 characters (got "${entry.trim()}")`,
      );
      return {};
    }
    attributes[key] = value;
  }
  return attributes;
}

function unsubscribeMailto(raw: string | undefined, problems: string[]): string | null {
  if (raw === undefined) return null;
  // No ?, #, % or &: in a mailto: URI they would start header fields, a fragment or an escape.
  if (!/^[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/.test(raw)) {
    problems.push('HERALD_UNSUBSCRIBE_MAILTO must be a plain e-mail address (unsubscribe@example.com)');
    return null;
  }
  return raw;
}

const retryFields: Record<string, keyof RetryPolicy> = {
  attempts: 'maxAttempts',
  base_ms: 'baseDelayMs',
  max_delay_ms: 'maxDelayMs',
  max_age_ms: 'maxAgeMs',
  retry_after_cap_ms: 'retryAfterCapMs',
};

/** `attempts=8,base_ms=5000,max_delay_ms=36000000,max_age_ms=259200000,retry_after_cap_ms=3600000`; unset keys keep the default. */
function retryPolicy(
  name: string,
  raw: string | undefined,
  base: RetryPolicy,
  problems: string[],
): RetryPolicy {
  if (raw === undefined) return base;
  const policy = { ...base };
  for (const part of raw.split(',')) {
    const [key, value] = part.split('=').map((s) => s.trim());
    const field = key ? retryFields[key] : undefined;
    const n = Number(value);
    if (!field || !Number.isInteger(n) || n < (field === 'maxAttempts' ? 1 : 0)) {
      problems.push(
        `${name}: "${part}" is not one of ${Object.keys(retryFields).join(', ')} = a whole number`,
      );
      continue;
    }
    policy[field] = n;
  }
  return policy;
}

/** `webhook=50:100,ses=14:14`: provider = tokens per second : burst. */
function rateLimits(raw: string | undefined, problems: string[]): Record<string, RateLimit> {
  const limits: Record<string, RateLimit> = {};
  for (const part of raw?.split(',') ?? []) {
    const match = /^\s*([a-z0-9_-]+)\s*=\s*(\d+(?:\.\d+)?)\s*:\s*(\d+)\s*$/.exec(part);
    if (!match || Number(match[2]) <= 0 || Number(match[3]) < 1) {
      problems.push(`HERALD_RATE_LIMITS: "${part}" is not provider=rate:burst (e.g. webhook=50:100)`);
      continue;
    }
    limits[match[1]!] = { perSecond: Number(match[2]), burst: Number(match[3]) };
  }
  return limits;
}

function networks(name: string, raw: string | undefined, problems: string[]): string[] {
  const list =
    raw
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean) ?? [];
  for (const cidr of list) {
    const [address, prefix] = cidr.split('/');
    const family = net.isIP(address ?? '');
    const bits = prefix === undefined ? (family === 6 ? 128 : 32) : Number(prefix);
    if (family === 0 || !Number.isInteger(bits) || bits < 0 || bits > (family === 6 ? 128 : 32)) {
      problems.push(`${name}: "${cidr}" is not an address or CIDR`);
    }
  }
  return list;
}

/**
 * `*` alone, or exact origins, comma-separated (`https://app.example.com,http://localhost:5173`), each kept as
 * browsers send it in `Origin` (host lowercased, default port dropped).
 */
function corsOrigins(raw: string | undefined, problems: string[]): CorsOrigins | undefined {
  if (raw === undefined) return undefined;
  const entries = list(raw);
  if (entries.length === 1 && entries[0] === '*') return '*';
  if (entries.length === 0) problems.push('HERALD_CORS_ORIGINS names no origin (unset it for no CORS)');
  const origins: string[] = [];
  for (const entry of entries) {
    const origin = exactOrigin(entry);
    if (origin !== undefined) origins.push(origin);
    else {
      problems.push(
        `HERALD_CORS_ORIGINS: "${entry}" is not an origin (http(s)://host[:port], no path; * only alone)`,
      );
    }
  }
  return origins;
}

/** The origin `raw` names when it is just scheme://host[:port] (no path, query or credentials). */
function exactOrigin(raw: string): string | undefined {
  if (!/^https?:\/\/[^/?#@\s\\]+$/i.test(raw)) return undefined;
  try {
    return new URL(raw).origin;
  } catch {
    return undefined;
  }
}

/** An http(s) base URL without a query, fragment or trailing slash. */
function publicUrl(raw: string | undefined, problems: string[]): string | undefined {
  if (raw === undefined) return undefined;
  try {
    const url = new URL(raw);
    if (
      (url.protocol === 'https:' || url.protocol === 'http:') &&
      !url.search &&
      !url.hash &&
      !url.username
    ) {
      return url.href.replace(/\/+$/, '');
    }
  } catch {
    // Answered below.
  }
  problems.push('HERALD_PUBLIC_URL must be an http(s) URL without query, fragment or credentials');
  return undefined;
}

function list(raw: string | undefined): string[] {
  return (
    raw
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean) ?? []
  );
}
