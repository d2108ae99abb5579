// The delivery engine's composition: configuration cache, circuit breakers, rate limiter (Redis when
// REDIS_URL is set, so instances share one bucket per provider), the runner and the dispatcher. The channel
// adapters are built by the composition root (server/) and handed in: delivery/ knows channels only through
// the adapter contract (provider.ts).
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { type DeliveryConfig, MAX_TOKEN_WAIT_MS } from '../config.js';
import type { ChannelName } from '../core/channels.js';
import type { Database } from '../store/database.js';
import { CircuitBreakers } from './circuit-breaker.js';
import { type ConfigCache, createConfigCache } from './config-cache.js';
import { createDeliveryRunner } from './delivery-run.js';
import { createDispatcher, type Dispatcher } from './dispatcher.js';
import type { ProviderAdapter } from './provider.js';
import { createMemoryRateLimiter, createRedisRateLimiter } from './rate-limiter.js';

/** How much longer than the longest attempt a lease lasts at least (writing the outcome, clock drift). */
const LEASE_MARGIN_MS = 1_000;

export interface DeliveryEngine {
  readonly config: ConfigCache;
  /** Undefined when HERALD_DISPATCHER=false. */
  readonly dispatcher: Dispatcher | undefined;
  readonly circuits: CircuitBreakers;
  close(deadlineMs: number): Promise<void>;
}

export interface DeliveryEngineOptions {
  config: DeliveryConfig;
  redisUrl: string | undefined;
  database: Database;
  logger: Logger;
  registry: Registry;
  now: () => Date;
  /** Each channel's providers, in failover order; a channel without any has no dispatcher lane. */
  providers: Partial<Record<ChannelName, readonly ProviderAdapter[]>>;
}

export async function startDeliveryEngine(options: DeliveryEngineOptions): Promise<DeliveryEngine> {
  const { config, logger } = options;
  const circuits = new CircuitBreakers({
    failureThreshold: config.circuitFailures,
    openMs: config.circuitOpenMs,
  });
  const providers = options.providers;
  // A claim must outlive its attempt, or a slow provider's deliveries would be claimed twice.
  if (config.leaseMs < longestAttemptMs(providers) + LEASE_MARGIN_MS) {
    throw new Error(
      `HERALD_DELIVERY_LEASE_MS (${config.leaseMs}) must be at least the slowest provider's timeout + ${MAX_TOKEN_WAIT_MS + LEASE_MARGIN_MS} (${longestAttemptMs(providers) + LEASE_MARGIN_MS})`,
    );
  }
  const channels = Object.keys(providers) as ChannelName[];
  const cache = await createConfigCache(options.database, config.configRefreshMs, new Set(channels));
  const redis = options.redisUrl
    ? new Redis(options.redisUrl, { lazyConnect: false, maxRetriesPerRequest: 2 })
    : null;
  redis?.on('error', (error) => logger.warn({ err: error.message }, 'redis (rate limits) unavailable'));
  const rateLimiter = redis ? createRedisRateLimiter(redis) : createMemoryRateLimiter();
  const attempts = new Counter({
    name: 'herald_delivery_attempts_total',
    help: 'Provider calls made by the dispatcher, by channel, provider and outcome.',
    labelNames: ['channel', 'provider', 'outcome'] as const,
    registers: [options.registry],
  });
  const misfires = new Counter({
    name: 'herald_delivery_deferral_misfires_total',
    help: 'Deferrals that were not in the future of their claim and were backed off (a bug: see the error log).',
    labelNames: ['channel'] as const,
    registers: [options.registry],
  });

  const runner = createDeliveryRunner({
    database: options.database,
    config: cache,
    providers,
    retryPolicies: config.retry,
    circuits,
    rateLimiter,
    rateLimits: config.rateLimits,
    maxTokenWaitMs: MAX_TOKEN_WAIT_MS,
    endpointDisableAfterMs: config.webhookDisableAfterMs,
    now: options.now,
    random: Math.random,
    logger,
    onAttempt: (channel, provider, outcome) => attempts.inc({ channel, provider, outcome }),
    onMisfire: (channel) => misfires.inc({ channel }),
  });
  const dispatcher = config.dispatcher
    ? createDispatcher({
        database: options.database,
        run: runner,
        channels,
        concurrency: config.concurrency,
        leaseMs: config.leaseMs,
        maxAttemptMs: longestAttemptMs(providers),
        pollMs: config.pollMs,
        now: options.now,
        onError: (error) => logger.error({ err: error }, 'dispatcher error'),
      })
    : undefined;
  await dispatcher?.start();

  return {
    config: cache,
    dispatcher,
    circuits,
    async close(deadlineMs) {
      await dispatcher?.stop(deadlineMs);
      cache.close();
      await rateLimiter.close();
      redis?.disconnect();
      await Promise.all(Object.values(providers).flatMap((list) => list.map((p) => p.close())));
    },
  };
}

/** The longest one attempt can take: the slowest provider's timeout plus the longest rate-limit wait. */
export function longestAttemptMs(
  providers: Partial<Record<ChannelName, readonly ProviderAdapter[]>>,
): number {
  const timeouts = Object.values(providers).flatMap((list) => list.map((p) => p.timeoutMs));
  return Math.max(0, ...timeouts) + MAX_TOKEN_WAIT_MS;
}
