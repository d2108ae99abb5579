// Composition: opens the database, applies migrations, wires authentication, routes, metrics and the
// one-port listener. `startHerald` is what `herald serve` runs and what the tests start.
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { Code, ConnectError } from '@connectrpc/connect';
import { Gauge } from 'prom-client';
import {
  authInterceptor,
  createAuthenticator,
  createCredentialWatch,
  createRoutes,
  createUserTokenVerifier,
  errorMappingInterceptor,
} from '../api/index.js';
import { createChannelDrivers } from '../channels/drivers.js';
import { createEmailMetrics } from '../channels/email/metrics.js';
import { createPushMetrics } from '../channels/push/metrics.js';
import { startStaleTokenSweep } from '../channels/push/stale-tokens.js';
import { createSmsMetrics } from '../channels/sms/metrics.js';
import { twilioAccounts } from '../channels/sms/twilio.js';
import { createAddressGuard } from '../channels/webhook/address-guard.js';
import { createWebhookMetrics } from '../channels/webhook/metrics.js';
import { type Config, ConfigError } from '../config.js';
import { type DeliveryEngine, type DeliveryEngineOptions, startDeliveryEngine } from '../delivery/engine.js';
import { statusEventsFor } from '../delivery/outcome.js';
import type { ProviderSet } from '../delivery/provider.js';
import type { Logger } from '../observability/logger.js';
import { createMetrics } from '../observability/metrics.js';
import { startTracing, type Tracing } from '../observability/tracing.js';
import { createMemoryBus, createRealtime } from '../realtime/index.js';
import { createInAppMetrics } from '../realtime/metrics.js';
import { createRedisBus } from '../realtime/redis-bus.js';
import { createGroupCommitWriter, type Database, openDatabase } from '../store/index.js';
import { bootstrapAdminKey } from './bootstrap.js';
import { withConsolePage } from './console-page.js';
import { withCors } from './cors.js';
import { withPlainEndpoints } from './http-endpoints.js';
import { withInboxPage } from './inbox-page.js';
import { connectionCap, createListener, descriptorLimit } from './listener.js';
import { createMessageLinks } from './message-links.js';
import { createNativeGrpc } from './native-grpc.js';
import { withOutboxPage } from './outbox-page.js';
import { withPreferencesPage } from './preferences-page.js';
import { closeProviders, linkSettingProblems, loadProviders } from './providers.js';
import { createRpcHandler } from './rpc-handler.js';
import { withSesFeedback } from './ses-feedback.js';
import { withTwilioWebhooks } from './twilio-webhooks.js';
import { withUnsubscribe } from './unsubscribe.js';
import { attachWebSocketBridge, type WebSocketBridge } from './websocket.js';

export interface Herald {
  readonly port: number;
  readonly url: string;
  /** The native gRPC port (@grpc/grpc-js), unless HERALD_GRPC_PORT=off. */
  readonly grpcPort: number | undefined;
  /** http://host:grpcPort, for gRPC clients; undefined when native gRPC is off. */
  readonly grpcUrl: string | undefined;
  readonly database: Database;
  /** The admin key created on first start with an empty database, if this start created one. */
  readonly bootstrapKey: string | undefined;
  readonly delivery: DeliveryEngine;
  readonly websockets: WebSocketBridge;
  /** Runs the stale push token sweep now (it also runs hourly where the dispatcher runs); how many. */
  sweepStaleTokens(): Promise<number>;
  /**
   * Reads the providers file again (SIGHUP): new attempts use the new providers, attempts in flight finish on
   * the old ones. A bad file changes nothing; its problems are answered (and logged).
   */
  reloadProviders(): Promise<{ ok: true } | { ok: false; problems: string[] }>;
  /** Graceful shutdown: stop accepting, finish in-flight RPCs within the configured deadline, close the pool. */
  close(): Promise<void>;
}

export interface StartOptions {
  config: Config;
  logger: Logger;
  /** An already open database (tests share one between restarts); opened from config otherwise. */
  database?: Database;
  now?: () => Date;
  /** Channel providers replacing the built-in adapters (embedding Herald, or tests of failover). */
  deliveryProviders?: DeliveryEngineOptions['providers'];
}

const READY_TIMEOUT_MS = 1_000;
/** How often stale push tokens are looked for. */
const STALE_TOKEN_SWEEP_MS = 3_600_000;
/** How late, at most, an expired user token's stream or WebSocket is ended. */
const CREDENTIAL_EXPIRY_CHECK_MS = 1_000;

export async function startHerald({
  config,
  logger,
  database,
  now = () => new Date(),
  deliveryProviders,
}: StartOptions): Promise<Herald> {
  const db =
    database ??
    (await openDatabase({
      url: config.databaseUrl,
      dataDir: config.dataDir,
      poolMax: config.dbPoolMax,
      onNotice: (message) => logger.debug({ message }, 'database notice'),
    }));
  // What a failed start must close: the providers once built, the delivery engine (which then owns them).
  let startedProviders: ProviderSet | undefined;
  let engine: DeliveryEngine | undefined;
  let tracing: Tracing | undefined;
  /** What else a failed start must stop, newest first: listeners, WebSockets, the bus, timers. */
  const undo: (() => unknown)[] = [];
  try {
    if (config.migrateOnStart) await db.migrate();
    const bootstrapKey = config.bootstrapAdminKey ? await bootstrapAdminKey(db.db) : undefined;
    const isReady = () =>
      db.ping(READY_TIMEOUT_MS).then(
        () => true,
        () => false,
      );
    const metrics = createMetrics();
    const authenticate = createAuthenticator({
      db: db.db,
      verifyUserToken: await createUserTokenVerifier(config.jwt),
      cacheTtlMs: config.apiKeyCacheTtlMs,
    });
    // Open streams and WebSockets end when their credential expires or is revoked.
    const credentials = createCredentialWatch({
      db: db.db,
      revocationCheckMs: config.apiKeyCacheTtlMs,
      expiryCheckMs: CREDENTIAL_EXPIRY_CHECK_MS,
      onError: (error) => logger.warn({ err: error }, 'credential check failed; retrying'),
    });
    undo.unshift(() => credentials.close());
    const webhookGuard = createAddressGuard(config.delivery.webhookAllowNetworks);
    // Links in messages: signed with HERALD_LINK_SECRET (else a secret of this process alone, so links die
    // with it: development), based at HERALD_PUBLIC_URL (else this server, once it listens).
    const linkSecret = config.linkSecret ? Buffer.from(config.linkSecret) : randomBytes(32);
    let linkBase = config.publicUrl ?? `http://localhost:${config.port}`;
    const pushMetrics = createPushMetrics(metrics.registry, db.sql);
    const emailMetrics = createEmailMetrics(metrics.registry);
    const smsMetrics = createSmsMetrics(metrics.registry);
    createWebhookMetrics(metrics.registry, db.sql);
    const inAppMetrics = createInAppMetrics(metrics.registry);
    const providerDeps = {
      delivery: config.delivery,
      sql: db.sql,
      webhookGuard,
      logger,
      publicUrl: config.publicUrl,
    };
    const loaded = deliveryProviders
      ? ({ ok: true, providers: deliveryProviders, outboxChannels: [], summary: [] } as const)
      : loadProviders(providerDeps);
    if (!loaded.ok) throw new ProvidersFileError(config.delivery.providersFile ?? '', loaded.problems);
    startedProviders = loaded.providers;
    const linkProblems = linkSettingProblems(loaded, config);
    if (linkProblems.length > 0) throw new ConfigError(linkProblems);
    for (const channel of loaded.outboxChannels) {
      logger.info(
        { channel },
        `${channel}: no providers file, so ${channel} messages go to the outbox (AdminService.ListOutboxMessages, /outbox); set HERALD_PROVIDERS_FILE to deliver them`,
      );
    }
    if (loaded.summary.length > 0) logger.info({ providers: loaded.summary }, 'providers configured');
    // Where deliveries are dispatched, stale push tokens are swept too (an idempotent update; several
    // instances running it is harmless).
    const staleTokens = config.delivery.dispatcher
      ? startStaleTokenSweep({
          sql: db.sql,
          staleMs: config.delivery.pushTokenStaleMs,
          intervalMs: STALE_TOKEN_SWEEP_MS,
          now,
          metrics: pushMetrics,
          logger,
        })
      : undefined;
    undo.unshift(() => staleTokens?.close());
    // Only with an OTLP endpoint: without one no span is made anywhere.
    tracing = config.tracing ? await startTracing(config.tracing, logger) : undefined;
    const delivery = await startDeliveryEngine({
      config: config.delivery,
      redisUrl: config.redisUrl,
      database: db,
      logger,
      registry: metrics.registry,
      now,
      // Drivers and adapters are composed here, the one place that knows every layer; the engine knows only
      // the contracts.
      providers: loaded.providers,
      drivers: (cache) =>
        createChannelDrivers({
          sql: db.sql,
          pushMetrics,
          emailMetrics,
          links: createMessageLinks({
            secret: linkSecret,
            base: () => linkBase,
            mailto: config.unsubscribeMailto,
            now,
          }),
          emailSender: (type) => cache.emailSender(type),
          smsMetrics,
          smsMaxSegments: (type) => cache.smsMaxSegments(type),
          disableAfterMs: config.delivery.webhookDisableAfterMs,
          refreshConfig: () => cache.refresh(),
        }),
      tracing,
    });
    engine = delivery;
    const bus = config.redisUrl
      ? await createRedisBus({
          url: config.redisUrl,
          registryTtlMs: config.registryTtlMs,
          onError: (error) => logger.warn({ err: (error as Error).message }, 'redis bus unavailable'),
        })
      : createMemoryBus();
    const realtime = createRealtime({
      database: db,
      bus,
      logger,
      fallbackPollMs: config.busFallbackPollMs,
      sessionStarts: config.sessionStarts,
    });
    inAppMetrics.countSessionStarts(realtime.admission);
    undo.unshift(() => realtime.close());
    new Gauge({
      name: 'herald_bus_degraded',
      help: '1 while the real-time bus (Redis) is away and live sessions poll PostgreSQL instead, else 0.',
      registers: [metrics.registry],
      collect() {
        this.set(realtime.degraded() ? 1 : 0);
      },
    });
    // Cancelled RPCs end with UNAVAILABLE, which clients treat as "retry elsewhere".
    const shutdownReason = new ConnectError('server is shutting down; retry', Code.Unavailable);
    const streamsClosing = new AbortController();
    // Every open stream listens on it; thousands at once is the normal case, not a leak.
    setMaxListeners(0, streamsClosing.signal);
    const shutdown = new AbortController();
    // Every in-flight RPC listens on this signal; more than ten at once is normal, not a leak.
    setMaxListeners(0, shutdown.signal);
    const interceptors = [
      ...(tracing ? [tracing.interceptor] : []),
      metrics.interceptor,
      errorMappingInterceptor(logger),
      authInterceptor(authenticate),
    ];
    const routes = createRoutes({
      database: db,
      writeSends: createGroupCommitWriter(db.sql, {
        maxStatements: config.sendMaxStatements,
        maxItems: 1_000,
      }),
      deliveryConfig: delivery.config,
      providerHealth: delivery.health,
      webhookGuard,
      realtime,
      streamHeartbeatMs: config.streamHeartbeatMs,
      closing: streamsClosing.signal,
      credentials,
      inAppMetrics,
      now,
      isReady,
      reflection: config.reflection,
    });
    const onHandlerError = (method: string, error: unknown) =>
      logger.warn({ method, err: (error as Error).message }, 'rpc response could not be written');
    // The same routes and interceptors on both transports: Connect (all three protocols) on the main port,
    // @grpc/grpc-js (native gRPC, a fraction of the CPU per call) on the gRPC port.
    const rpc = createRpcHandler({
      routes,
      interceptors,
      readMaxBytes: config.maxRequestBytes,
      shutdownSignal: shutdown.signal,
      onHandlerError,
    });
    const nativeGrpc =
      config.grpcPort === undefined
        ? undefined
        : createNativeGrpc({
            routes,
            interceptors,
            maxRequestBytes: config.maxRequestBytes,
            maxConcurrentStreams: config.listener.maxConcurrentStreams,
            idleTimeoutMs: config.listener.idleTimeoutMs,
            requestTimeoutMs: config.listener.requestTimeoutMs,
            onHandlerError,
          });
    // Connections are capped below what the descriptor limit allows, so a flood cannot starve the database
    // pool, Redis and webhooks of descriptors.
    const descriptors = descriptorLimit();
    const maxConnections = connectionCap(config.listener.maxConnections, descriptors?.soft);
    logger[maxConnections < config.listener.maxConnections ? 'warn' : 'info'](
      {
        openFilesLimit: descriptors
          ? Object.fromEntries(
              Object.entries(descriptors).map(([k, n]) => [k, Number.isFinite(n) ? n : 'unlimited']),
            )
          : 'unknown (/proc/self/limits unreadable)',
        maxConnections,
        maxConnectionsPerAddress: config.listener.maxConnectionsPerAddress,
        perAddressExemptNetworks: config.listener.perAddressExemptNetworks,
        http2MaxConcurrentStreams: config.listener.maxConcurrentStreams,
      },
      maxConnections < config.listener.maxConnections
        ? `connection limits: HERALD_MAX_CONNECTIONS lowered from ${config.listener.maxConnections} to what the open-files limit allows (raise ulimit -n)`
        : 'connection limits',
    );
    const listener = createListener(
      withPlainEndpoints(
        { isReady, busDegraded: () => realtime.degraded(), registry: metrics.registry },
        withUnsubscribe(
          {
            db: db.db,
            linkSecret,
            now,
            onError: (error) => logger.error({ err: error }, 'unsubscribe could not be saved'),
          },
          withPreferencesPage(
            {
              db: db.db,
              linkSecret,
              now,
              onError: (error) => logger.error({ err: error }, 'preferences page failed'),
            },
            withSesFeedback(
              {
                db: db.db,
                sql: db.sql,
                now,
                statusEvents: (d, status, reason) =>
                  statusEventsFor(
                    { ...d, event: 'notification', channel: 'email' },
                    { status, reason, provider: d.provider },
                    delivery.config.enabledEndpoints(),
                  ),
                ...config.sesFeedback,
                logger,
                onEvent: (event, provider, type) => emailMetrics.count(event, provider, type),
              },
              withTwilioWebhooks(
                {
                  sql: db.sql,
                  now,
                  publicUrl: () => linkBase,
                  accounts: () => twilioAccounts(delivery.providers().sms ?? []),
                  statusEvents: (d, status, reason) =>
                    statusEventsFor(
                      { ...d, event: 'notification', channel: 'sms' },
                      { status, reason, provider: d.provider },
                      delivery.config.enabledEndpoints(),
                    ),
                  onEvent: (event, provider) => smsMetrics.event(event, provider),
                  logger,
                },
                withConsolePage(withOutboxPage(withInboxPage(withCors(config.corsOrigins, rpc)))),
              ),
            ),
          ),
        ),
      ),
      { ...config.listener, maxConnections, logger, registry: metrics.registry },
    );
    // A port that cannot be bound (the gRPC port taken, say) fails the start: nothing may keep listening.
    undo.unshift(() =>
      listener.close(
        0,
        () => {},
        nativeGrpc?.close(0, shutdownReason, () => {}),
      ),
    );
    const websockets = attachWebSocketBridge(
      listener.http1,
      { authenticate, credentials, realtime, logger, now, inAppMetrics },
      {
        path: '/ws',
        heartbeatMs: config.streamHeartbeatMs,
        allowedOrigins: config.corsOrigins,
        ...config.websocket,
      },
    );
    undo.unshift(() => websockets.close());
    const port = await listener.listen(config.port, config.host);
    const grpcPort =
      nativeGrpc && config.grpcPort !== undefined
        ? await listener.listenGrpc(config.grpcPort, config.host, nativeGrpc.accept)
        : undefined;
    const displayHost = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
    const urlHost = displayHost.includes(':') ? `[${displayHost}]` : displayHost;
    if (!config.publicUrl) linkBase = `http://${urlHost}:${port}`;
    logger.info(
      { port, grpcPort, host: config.host, engine: db.engine, pid: process.pid },
      'herald listening',
    );

    let closing: Promise<void> | undefined;
    return {
      port,
      url: `http://${urlHost}:${port}`,
      grpcPort,
      grpcUrl: grpcPort === undefined ? undefined : `http://${urlHost}:${grpcPort}`,
      database: db,
      bootstrapKey,
      delivery,
      websockets,
      sweepStaleTokens: () => staleTokens?.sweep() ?? Promise.resolve(0),
      async reloadProviders() {
        if (closing) return { ok: false, problems: ['the server is shutting down'] };
        const loadedNext = loadProviders(providerDeps);
        const linkProblems = loadedNext.ok ? linkSettingProblems(loadedNext, config) : [];
        if (loadedNext.ok && linkProblems.length > 0) await closeProviders(loadedNext.providers);
        const next =
          loadedNext.ok && linkProblems.length > 0
            ? { ok: false as const, problems: linkProblems }
            : loadedNext;
        if (!next.ok) {
          logger.error(
            { problems: next.problems },
            'providers file refused on reload; the current providers stay',
          );
          return next;
        }
        try {
          delivery.replaceProviders(next.providers);
        } catch (error) {
          await closeProviders(next.providers);
          const problems = [(error as Error).message];
          logger.error({ problems }, 'providers file refused on reload; the current providers stay');
          return { ok: false, problems };
        }
        logger.info({ providers: next.summary }, 'providers reloaded');
        return { ok: true };
      },
      close() {
        closing ??= (async () => {
          logger.info({ inFlight: listener.inFlight() + (nativeGrpc?.inFlight() ?? 0) }, 'shutting down');
          // Live streams and WebSockets end spread over the drain window (clients resume elsewhere, not all in
          // the same second); the dispatcher stops claiming and finishes its attempts while the RPCs drain.
          // At most half the shutdown timeout: the streams ended last still finish before its deadline.
          const drainMs = Math.min(config.drainMs, config.shutdownTimeoutMs / 2);
          const wsClosed = realtime.drain(drainMs).then(() => {
            streamsClosing.abort();
            return websockets.close();
          });
          const dispatching = delivery.close(config.shutdownTimeoutMs);
          let deadlinePassed = false;
          const onDeadline = () => {
            if (deadlinePassed) return;
            deadlinePassed = true;
            logger.warn(
              { inFlight: listener.inFlight() + (nativeGrpc?.inFlight() ?? 0) },
              'shutdown deadline passed; cancelling in-flight RPCs',
            );
            shutdown.abort(shutdownReason);
          };
          const grpcDrained = nativeGrpc?.close(config.shutdownTimeoutMs, shutdownReason, onDeadline);
          // Sockets are destroyed only once the drain has told every WebSocket to go.
          const drained = Promise.all([grpcDrained, wsClosed]).then(() => {});
          await listener.close(config.shutdownTimeoutMs, onDeadline, drained);
          await dispatching;
          await wsClosed;
          await realtime.close();
          credentials.close();
          staleTokens?.close();
          // Every span has ended (RPCs drained, attempts finished): the last ones are exported now.
          await tracing?.shutdown();
          if (!database) await db.close();
          logger.info('stopped');
        })();
        return closing;
      },
    };
  } catch (error) {
    for (const stop of undo) await Promise.resolve(stop()).catch(() => {});
    // Providers built before the failure hold connections, timers and (FCM over an endpoint) key files.
    if (engine) await engine.close(0).catch(() => {});
    else if (startedProviders) await closeProviders(startedProviders).catch(() => {});
    await tracing?.shutdown();
    if (!database) await db.close().catch(() => {});
    throw error;
  }
}

/** The providers file was refused at start: every problem, by its path in the file. */
export class ProvidersFileError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`providers file ${file} refused:\n  ${problems.join('\n  ')}`);
    this.name = 'ProvidersFileError';
  }
}
