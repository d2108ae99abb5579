// The delivery engine's composition: configuration cache, circuit breakers, rate limiter (Redis when
// REDIS_URL is set, so instances share one bucket per provider), the runner and the dispatcher. The channel
// drivers and provider adapters are built by the composition root (server/) and handed in: delivery/ knows
// channels only through the contracts (channel.ts, provider.ts). The provider set can be replaced while
// running (SIGHUP): new attempts take the new set, attempts in flight finish on the old one, which is
// closed after its last attempt.
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { type DeliveryConfig, MAX_TOKEN_WAIT_MS } from '../config.js';
import { type ChannelName, channelNames } from '../core/channels.js';
import type { AttemptTracer } from '../observability/tracing.js';
import type { Database } from '../store/database.js';
import type { ChannelDrivers } from './channel.js';
import { CircuitBreakers } from './circuit-breaker.js';
import { type ConfigCache, createConfigCache } from './config-cache.js';
import { createDeliveryRunner } from './delivery-run.js';
import { createDispatcher, type Dispatcher } from './dispatcher.js';
import { createEngineMetrics } from './metrics.js';
import type { ProviderSet } from './provider.js';
import { createProviderHealth, type ProviderHealthSource } from './provider-health.js';
import { createMemoryRateLimiter, createRedisRateLimiter } from './rate-limiter.js';

/** How much longer than the longest attempt a lease lasts at least (writing the outcome, clock drift). */
const LEASE_MARGIN_MS = 1_000;

export interface DeliveryEngine {
  readonly config: ConfigCache;
  /** Undefined when HERALD_DISPATCHER=false. */
  readonly dispatcher: Dispatcher | undefined;
  readonly circuits: CircuitBreakers;
  /** Each provider's rate limit, and its circuit on every dispatching instance. */
  readonly health: ProviderHealthSource;
  /** The providers new attempts use. */
  providers(): ProviderSet;
  /**
   * Makes `next` the providers of new attempts. Throws, keeping the current set, when the lease is too short
   * for `next`'s slowest provider; `next` is then the caller's to close.
   */
  replaceProviders(next: ProviderSet): void;
  close(deadlineMs: number): Promise<void>;
}

export interface DeliveryEngineOptions {
  config: DeliveryConfig;
  redisUrl: string | undefined;
  database: Database;
  logger: Logger;
  registry: Registry;
  now: () => Date;
  /** Each channel's providers, in failover order; deliveries on a channel without any are skipped. */
  providers: ProviderSet;
  /** Each channel's driver; built once the configuration cache exists (a webhook driver refreshes it). */
  drivers: (config: ConfigCache) => ChannelDrivers;
  /** A span per provider call; undefined when tracing is off. */
  tracing?: AttemptTracer | undefined;
}

export async function startDeliveryEngine(options: DeliveryEngineOptions): Promise<DeliveryEngine> {
  const { config, logger } = options;
  const circuits = new CircuitBreakers({
    failureThreshold: config.circuitFailures,
    openMs: config.circuitOpenMs,
  });
  checkLease(config.leaseMs, options.providers);
  const pool = createProviderPool(options.providers);
  const cache = await createConfigCache(options.database, config.configRefreshMs, () => pool.channels());
  const drivers = options.drivers(cache);
  // Every channel a driver delivers has a lane, configured or not: a provider set reloaded without a channel
  // still ends that channel's queued deliveries (skipped, not_configured) instead of leaving them queued.
  const channels = channelNames.filter((c) => drivers[c] !== undefined);
  const redis = options.redisUrl
    ? new Redis(options.redisUrl, { lazyConnect: false, maxRetriesPerRequest: 2 })
    : null;
  redis?.on('error', (error) => logger.warn({ err: error.message }, 'redis (rate limits) unavailable'));
  const rateLimiter = redis ? createRedisRateLimiter(redis) : createMemoryRateLimiter();
  const metrics = createEngineMetrics({
    registry: options.registry,
    sql: options.database.sql,
    circuits,
    providers: pool.current,
    channels,
  });

  const runner = createDeliveryRunner({
    database: options.database,
    config: cache,
    drivers,
    acquireProviders: pool.acquire,
    retryPolicies: config.retry,
    circuits,
    rateLimiter,
    rateLimits: config.rateLimits,
    maxTokenWaitMs: MAX_TOKEN_WAIT_MS,
    now: options.now,
    random: Math.random,
    logger,
    onAttempt: metrics.attempt,
    onMisfire: metrics.misfire,
    tracing: options.tracing,
  });
  const dispatcher = config.dispatcher
    ? createDispatcher({
        database: options.database,
        run: runner,
        channels,
        concurrency: (channel) => config.channelConcurrency[channel] ?? config.concurrency,
        leaseMs: config.leaseMs,
        maxAttemptMs: () => longestAttemptMs(pool.current()),
        pollMs: config.pollMs,
        now: options.now,
        onError: (error) => logger.error({ err: error }, 'dispatcher error'),
      })
    : undefined;
  await dispatcher?.start();
  const health = createProviderHealth({
    circuits,
    providers: pool.current,
    rateLimits: config.rateLimits,
    dispatching: dispatcher !== undefined,
    redis,
    onError: (error) => logger.warn({ err: (error as Error).message }, 'redis (provider health) unavailable'),
  });
  let closed = false;

  return {
    config: cache,
    dispatcher,
    circuits,
    health,
    providers: pool.current,
    replaceProviders(next) {
      if (closed) throw new Error('the delivery engine is closed');
      checkLease(config.leaseMs, next);
      pool.replace(next, (error) => logger.warn({ err: error }, 'closing replaced providers failed'));
    },
    async close(deadlineMs) {
      closed = true;
      await dispatcher?.stop(deadlineMs);
      cache.close();
      await health.close();
      await rateLimiter.close();
      redis?.disconnect();
      await pool.close();
    },
  };
}

/** A claim must outlive its attempt, or a slow provider's deliveries would be claimed twice. */
function checkLease(leaseMs: number, providers: ProviderSet): void {
  if (leaseMs < longestAttemptMs(providers) + LEASE_MARGIN_MS) {
    throw new Error(
      `HERALD_DELIVERY_LEASE_MS (${leaseMs}) must be at least the slowest provider's timeout + ${MAX_TOKEN_WAIT_MS + LEASE_MARGIN_MS} (${longestAttemptMs(providers) + LEASE_MARGIN_MS})`,
    );
  }
}

interface Generation {
  providers: ProviderSet;
  inFlight: number;
  retired: boolean;
  closed: Promise<void> | null;
}

/** The current provider set, and the replaced ones until their last attempt is over. */
function createProviderPool(initial: ProviderSet) {
  let current: Generation = { providers: initial, inFlight: 0, retired: false, closed: null };
  const retiring = new Set<Generation>();
  const closeGeneration = (generation: Generation) => {
    generation.closed ??= Promise.all(
      Object.values(generation.providers).flatMap((list) => list.map((p) => p.close())),
    ).then(() => {
      retiring.delete(generation);
    });
    return generation.closed;
  };
  let onCloseError: (error: unknown) => void = () => {};
  return {
    current: () => current.providers,
    channels: (): ReadonlySet<ChannelName> =>
      new Set(
        Object.entries(current.providers)
          .filter(([, list]) => list.length > 0)
          .map(([channel]) => channel as ChannelName),
      ),
    acquire() {
      const generation = current;
      generation.inFlight++;
      let released = false;
      return {
        providers: generation.providers,
        release() {
          if (released) return;
          released = true;
          generation.inFlight--;
          if (generation.retired && generation.inFlight === 0)
            closeGeneration(generation).catch(onCloseError);
        },
      };
    },
    replace(next: ProviderSet, onError: (error: unknown) => void) {
      onCloseError = onError;
      const previous = current;
      current = { providers: next, inFlight: 0, retired: false, closed: null };
      previous.retired = true;
      retiring.add(previous);
      if (previous.inFlight === 0) closeGeneration(previous).catch(onError);
    },
    /** After the dispatcher stopped: every set, current and retiring. */
    async close() {
      await Promise.all([current, ...retiring].map((g) => closeGeneration(g).catch(() => {})));
    },
  };
}

/** The longest one attempt can take: the slowest provider's timeout plus the longest rate-limit wait. */
export function longestAttemptMs(providers: ProviderSet): number {
  const timeouts = Object.values(providers).flatMap((list) => list.map((p) => p.timeoutMs));
  return Math.max(0, ...timeouts) + MAX_TOKEN_WAIT_MS;
}
