// Provider choice and the call: the channel's providers that accept the task, tried in order starting after
// the one that last failed (failover); an open circuit or an empty rate-limit bucket moves on or waits
// without using up an attempt; the adapter's answer becomes an attempt record and the delivery's next step,
// and the channel's driver hears of it (a webhook endpoint's failure clock; a destination that is gone).
import type { Logger } from 'pino';
import type { ChannelName } from '../core/channels.js';
import type { RetryPolicy } from '../core/retry-policy.js';
import { toStorableText } from '../core/rules.js';
import type { AttemptTracer } from '../observability/tracing.js';
import type { AttemptRecord, ClaimedDelivery, DeliveryTransition } from '../store/deliveries.js';
import type { ChannelDriver } from './channel.js';
import type { CircuitBreakers } from './circuit-breaker.js';
import { circuitResult, type Step, stepForOutcome, storableOutcome } from './outcome.js';
import type { DeliveryTask, Outcome, ProviderAdapter } from './provider.js';
import type { RateLimit, RateLimiter } from './rate-limiter.js';

export interface AttemptOptions {
  retryPolicies: Record<ChannelName, RetryPolicy>;
  circuits: CircuitBreakers;
  rateLimiter: RateLimiter;
  /** By provider name (HERALD_RATE_LIMITS); a provider's own limit from the providers file wins. */
  rateLimits: Readonly<Record<string, RateLimit>>;
  /** Waits for a rate-limit token up to this long in process; longer waits requeue the delivery. */
  maxTokenWaitMs: number;
  now: () => Date;
  random: () => number;
  logger: Logger;
  onAttempt?: ((attempt: AttemptReport) => void) | undefined;
  /** A span per provider call, when tracing is on. */
  tracing?: AttemptTracer | undefined;
}

/** What the engine's metrics hear of each provider call. */
export interface AttemptReport {
  channel: ChannelName;
  provider: string;
  outcome: Outcome['kind'];
  latencyMs: number;
  /**
   * A first step's first attempt: how long after its notification was due (send_at, or when it was stored)
   * it began, deferrals (quiet hours, rate limits, open circuits) included; null for any other attempt.
   */
  firstAttemptDelayMs: number | null;
}

export interface AttemptSignals {
  /** The dispatcher stops claiming: a claim waiting for a rate-limit token hands itself back. */
  stopping: AbortSignal;
  /** The shutdown deadline passed: the call in flight is cut. */
  abort: AbortSignal;
}

const ERROR_KEPT_CHARS = 1000;

export function createAttempter(options: AttemptOptions) {
  /** One attempt of `task` through the first available provider of `candidates`. */
  async function attempt(
    claim: ClaimedDelivery,
    task: DeliveryTask,
    driver: ChannelDriver,
    candidates: readonly ProviderAdapter[],
    signals: AttemptSignals,
  ): Promise<Step> {
    const providers = candidates.filter((p) => p.accepts(task));
    if (providers.length === 0) {
      const reason =
        candidates.length === 0
          ? `not_configured: no provider is configured for ${claim.channel}`
          : `not_configured: no ${claim.channel} provider accepts this destination`;
      return { next: { status: 'skipped', reason } };
    }
    // Failover: after a retry-class outcome the next provider in the list goes first.
    const last = claim.provider ? providers.findIndex((p) => p.name === claim.provider) : -1;
    const start = claim.attempts > 0 && last >= 0 ? (last + 1) % providers.length : 0;
    const order = providers.map((_, i) => providers[(start + i) % providers.length]!);

    // The breakers keep their own monotonic time (performance.now), so a wall-clock step cannot hold a circuit
    // open or close it early; how long until one half-opens becomes a wait on the service's clock.
    let shortestWaitMs = Number.POSITIVE_INFINITY;
    // Attempts of providers that answered they cannot reach this destination: the next is asked at once.
    const refused: AttemptRecord[] = [];
    for (const provider of order) {
      const key = provider.circuitKey(task);
      const circuit = options.circuits.get(key);
      const at = performance.now();
      const admission = circuit.acquire(at);
      if (!admission.allowed) {
        shortestWaitMs = Math.min(shortestWaitMs, admission.retryAt - at);
        continue;
      }
      const token = await takeToken(options, provider, key, signals.stopping);
      if (token !== 'ok') {
        circuit.record('neutral', performance.now());
        if (token === 'stopping' && refused.length === 0) return { release: true, dueAt: options.now() };
        const waitMs = token === 'stopping' ? 0 : token.waitMs;
        return withRefusals(refused, {
          status: 'queued',
          reason: `rate_limited: waiting for ${provider.name}`,
          nextAttemptAt: new Date(options.now().getTime() + waitMs),
        });
      }
      const number = claim.attempts + refused.length + 1;
      const { outcome, record } = await call(options, claim, task, driver, provider, signals.abort, number);
      circuit.record(circuitResult(outcome), performance.now());
      if (outcome.kind === 'retry' && outcome.holdProviderMs)
        circuit.openFor(outcome.holdProviderMs, performance.now());
      await afterAnswer(options, claim, task, driver, outcome, provider.name);
      if (outcome.kind === 'retry' && outcome.elsewhere) {
        refused.push(record);
        continue;
      }
      const step = stepForOutcome(outcome, {
        claim,
        attempt: record,
        policy: provider.retry ?? options.retryPolicies[claim.channel],
        now: options.now(),
        random: options.random,
      });
      return refused.length > 0 && 'next' in step ? { ...step, earlier: refused } : step;
    }
    const waitUntil = new Date(options.now().getTime() + shortestWaitMs);
    if (refused.length > 0) {
      const said = refused[refused.length - 1]!.error ?? '';
      // Every provider that could be asked cannot reach it; one whose circuit is open may, once it closes.
      return withRefusals(
        refused,
        Number.isFinite(shortestWaitMs)
          ? { status: 'queued', reason: `retry: ${said}`, nextAttemptAt: waitUntil }
          : { status: 'failed', reason: `failed: no provider reaches the destination; last: ${said}` },
      );
    }
    // Every provider's circuit is open: wait for the first to half-open; no attempt is used up.
    return {
      next: {
        status: 'queued',
        reason: `circuit_open: ${order.map((p) => p.name).join(', ')} unavailable`,
        nextAttemptAt: waitUntil,
      },
    };
  }

  return attempt;
}

/**
 * A transition after providers refused the destination as out of their reach: their attempts are recorded
 * with it (the last as the claim's attempt), the last one's provider remembered so the next claim starts
 * after it.
 */
function withRefusals(refused: readonly AttemptRecord[], next: DeliveryTransition): Step {
  const last = refused[refused.length - 1];
  if (!last) return { next };
  return {
    next: { ...next, provider: last.provider, lastError: last.error },
    attempt: last,
    earlier: refused.slice(0, -1),
  };
}

/** 'ok', 'stopping', or the wait when it is longer than worth holding the claim for. */
async function takeToken(
  options: AttemptOptions,
  provider: ProviderAdapter,
  key: string,
  stopping: AbortSignal,
): Promise<'ok' | 'stopping' | { waitMs: number }> {
  const limit = provider.rateLimit ?? options.rateLimits[provider.name];
  if (!limit) return 'ok';
  for (;;) {
    if (stopping.aborted) return 'stopping';
    const taken = await options.rateLimiter.take(key, limit);
    if (taken.ok) return 'ok';
    if (taken.waitMs > options.maxTokenWaitMs) return { waitMs: taken.waitMs };
    await sleep(taken.waitMs, stopping);
  }
}

/** The provider's answer (an adapter that throws is a transient failure, never a success) and its record. */
async function call(
  options: AttemptOptions,
  claim: ClaimedDelivery,
  task: DeliveryTask,
  driver: ChannelDriver,
  provider: ProviderAdapter,
  abort: AbortSignal,
  /** The delivery's attempt this is, from 1 (earlier claims' attempts and this claim's refusals before it). */
  number: number,
): Promise<{ outcome: Outcome; record: AttemptRecord }> {
  const first = number === 1;
  const startedAt = options.now();
  const started = performance.now();
  const span = options.tracing?.startAttempt(claim, provider.name, number);
  let outcome: Outcome;
  try {
    outcome = await provider.send(span ? { ...task, traceParent: span.traceParent } : task, abort);
  } catch (error) {
    outcome = {
      kind: 'retry',
      reason: `adapter error: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
  outcome = storableOutcome(outcome);
  span?.end(outcome);
  const latencyMs = performance.now() - started;
  options.onAttempt?.({
    channel: claim.channel,
    provider: provider.name,
    outcome: outcome.kind,
    latencyMs,
    firstAttemptDelayMs:
      first && claim.step === 0
        ? Math.max(
            0,
            startedAt.getTime() - Math.max(claim.send_at.getTime(), claim.notification_created_at.getTime()),
          )
        : null,
  });
  const reason = outcome.kind === 'sent' ? null : outcome.reason;
  options.logger.debug(
    {
      deliveryId: claim.id,
      provider: provider.name,
      outcome: outcome.kind,
      statusCode: outcome.statusCode,
    },
    'delivery attempt',
  );
  return {
    outcome,
    record: {
      provider: provider.name,
      destination: driver.describe(task.destination),
      outcome: outcome.kind,
      statusCode: outcome.statusCode ?? null,
      latencyMs,
      error: reason === null ? null : toStorableText(reason.slice(0, ERROR_KEPT_CHARS)),
      response: outcome.response ?? null,
      providerMessageId: outcome.kind === 'sent' ? outcome.providerMessageId : null,
      segments: driver.segments?.(task.content) ?? null,
      startedAt,
    },
  };
}

/**
 * The driver's bookkeeping once the provider answered (a webhook's failure clock; a destination gone). The
 * answer stands whatever happens here: a database error is logged, never allowed to turn a message the
 * provider took into a requeue that would send it again without an attempt record.
 */
async function afterAnswer(
  options: AttemptOptions,
  claim: ClaimedDelivery,
  task: DeliveryTask,
  driver: ChannelDriver,
  outcome: Outcome,
  provider: string,
): Promise<void> {
  try {
    await driver.attempted?.(claim, outcome, provider, task);
    if (outcome.kind === 'invalid_destination') await driver.invalidate(claim, task.destination, outcome);
  } catch (error) {
    options.logger.error(
      { err: error, deliveryId: claim.id, channel: claim.channel, outcome: outcome.kind },
      'recording what the provider said about the destination failed; the attempt stands',
    );
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
