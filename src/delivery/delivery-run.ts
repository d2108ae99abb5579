// One claimed delivery, from claim to its next state. Before the attempt: expiry, cancellation, escalation
// conditions, the recipient's preferences and quiet hours as they are now, suppressions, the endpoint,
// the template. Then the provider: the channel's providers are tried in order, starting after the one that
// last failed (failover); an open circuit or an empty rate-limit bucket moves on or waits without using up
// an attempt. The adapter's outcome becomes the delivery's next state, an attempt row, the circuit's count
// and, for final states, Herald's status events.
//
// Every time the runner writes (deferrals, retries, status events) is on the service's clock (`now`), the one
// the dispatcher claims by. A deferral that made no attempt and is due no later than its claim would be claimed
// again at once, in a loop: that is a bug, so it is logged once per delivery and backed off instead.
import type { Logger } from 'pino';
import type { ChannelName, DeliveryStatus } from '../core/channels.js';
import { endpointSubscribes } from '../core/planning.js';
import { evaluatePreferences, type PreferenceSet } from '../core/preference-evaluation.js';
import { decideRetry, type RetryPolicy } from '../core/retry-policy.js';
import { toStorableText } from '../core/rules.js';
import { createTemplateRenderer, selectTemplateLocale } from '../core/templates.js';
import type { Database } from '../store/database.js';
import {
  type AttemptRecord,
  type ClaimedDelivery,
  type ClaimOutcome,
  type DeliveryTransition,
  disableEndpoint,
  finishClaims,
  queueStatusEvents,
  recordEndpointResult,
  releaseClaims,
  type StatusEventDelivery,
} from '../store/deliveries.js';
import { createGroupWriter } from '../store/group-commit.js';
import type { CircuitBreakers } from './circuit-breaker.js';
import type { ConfigCache } from './config-cache.js';
import type { DeliveryTask, Outcome, ProviderAdapter } from './provider.js';
import type { RateLimit, RateLimiter } from './rate-limiter.js';

export interface RunSignals {
  /** The dispatcher stops claiming: claims still waiting hand themselves back. */
  stopping: AbortSignal;
  /** The shutdown deadline passed: attempts in flight are cut. */
  abort: AbortSignal;
}

export interface DeliveryRunner {
  /**
   * Takes a claim to its next state; resolves once the attempt is over (its outcome may still be being
   * written: see drain), to when the delivery is due again if it was requeued, else null.
   */
  run(claim: ClaimedDelivery, signals: RunSignals): Promise<Date | null>;
  /** Hands claims back untouched. */
  release(claims: readonly ClaimedDelivery[]): Promise<void>;
  /** Resolves once every outcome reported so far is written. */
  drain(): Promise<void>;
}

export interface DeliveryRunnerOptions {
  database: Database;
  config: ConfigCache;
  providers: Partial<Record<ChannelName, readonly ProviderAdapter[]>>;
  retryPolicies: Record<ChannelName, RetryPolicy>;
  circuits: CircuitBreakers;
  rateLimiter: RateLimiter;
  /** By provider name; providers without an entry are not limited. */
  rateLimits: Readonly<Record<string, RateLimit>>;
  /** Waits for a rate-limit token up to this long in process; longer waits requeue the delivery. */
  maxTokenWaitMs: number;
  /** A webhook endpoint whose every attempt failed for this long is disabled. */
  endpointDisableAfterMs: number;
  now: () => Date;
  random: () => number;
  logger: Logger;
  onAttempt?: (channel: ChannelName, provider: string, outcome: Outcome['kind']) => void;
  /** A deferral was due no later than its claim and was backed off (see deferredIntoFuture). */
  onMisfire?: (channel: ChannelName) => void;
}

const ERROR_KEPT_CHARS = 1000;
const INTERNAL_ERROR_DELAY_MS = 30_000;
/** Outcome statements in flight at once; further outcomes wait and are written together. */
const FINISH_STATEMENTS = 1;
/** Outcomes waiting to be written before runs start waiting for theirs (backpressure on a slow database). */
const MAX_UNWRITTEN = 512;

/** A deferral that would be claimed again at once waits this long, doubling per repeat for the delivery. */
const MISFIRE_BACKOFF_MS = 1_000;
const MISFIRE_BACKOFF_MAX_MS = 60_000;
/** Deliveries whose misfires are remembered (for logging once and doubling the backoff). */
const MISFIRES_KEPT = 10_000;

/** Channels whose body is HTML, so template output is escaped. */
const htmlChannels: ReadonlySet<ChannelName> = new Set(['email']);

/** Status events Herald emits for deliveries reaching these states (never about status events themselves). */
const statusEvents: Partial<Record<DeliveryStatus, string>> = {
  sent: 'notification.sent',
  delivered: 'notification.delivered',
  failed: 'notification.failed',
  expired: 'notification.expired',
};

type Step =
  | { next: DeliveryTransition; attempt?: AttemptRecord | undefined }
  | { release: true; dueAt: Date };

export function createDeliveryRunner(options: DeliveryRunnerOptions): DeliveryRunner {
  const renderer = createTemplateRenderer();
  const { database, logger } = options;
  // Outcomes that arrive while earlier ones are being written share the next statement (one commit).
  const unwritten = new Set<Promise<void>>();
  const finish = createGroupWriter((outcomes: ClaimOutcome[]) => finishClaims(database.sql, outcomes), {
    maxStatements: FINISH_STATEMENTS,
    maxItems: 1_000,
  });

  // Delivery id -> deferrals of it that were not in the future (oldest first, bounded).
  const misfires = new Map<string, number>();

  async function run(claim: ClaimedDelivery, signals: RunSignals): Promise<Date | null> {
    let step: Step;
    try {
      step = deferredIntoFuture(claim, await decide(claim, signals));
    } catch (error) {
      // A bug or a database error before the outcome was known: put the delivery back for later, without
      // using up an attempt. (If even that fails, the lease runs out and another claim takes it.)
      logger.error({ err: error, deliveryId: claim.id }, 'delivery run failed; requeued');
      step = {
        next: {
          status: 'queued',
          reason: 'internal_error: requeued after an unexpected error',
          nextAttemptAt: new Date(options.now().getTime() + INTERNAL_ERROR_DELAY_MS),
        },
      };
    }
    if ('release' in step) {
      await releaseClaims(database.sql, [claim]);
      return step.dueAt;
    }
    // The provider's slot is free once its answer is in; the outcome is written behind it (grouped with
    // others). Until that write commits the delivery stays leased, so a crash now means one more attempt,
    // never a lost delivery. Too many unwritten outcomes make the next run wait (the database is slow).
    const write = record({ claim, next: step.next, attempt: step.attempt ?? null });
    unwritten.add(write);
    void write.finally(() => unwritten.delete(write));
    if (unwritten.size > MAX_UNWRITTEN) await write;
    return step.next.status === 'queued' ? (step.next.nextAttemptAt ?? null) : null;
  }

  /**
   * A claim that ends queued without an attempt (quiet hours, rate limit, open circuit) must be due after the
   * clock it was claimed by, or the next claim takes it straight back. Retries are not checked here: each
   * uses up an attempt, so they end by themselves.
   */
  function deferredIntoFuture(claim: ClaimedDelivery, step: Step): Step {
    const at = 'release' in step ? undefined : step.next.nextAttemptAt?.getTime();
    if (
      'release' in step ||
      step.attempt ||
      step.next.status !== 'queued' ||
      (at !== undefined && at > claim.claimed_at.getTime())
    ) {
      // Sound again: a later misfire of this delivery is news, logged and backed off from the start.
      if (misfires.size > 0) misfires.delete(claim.id);
      return step;
    }
    const floor = Math.max(claim.claimed_at.getTime(), options.now().getTime());
    const repeats = (misfires.get(claim.id) ?? 0) + 1;
    misfires.delete(claim.id);
    misfires.set(claim.id, repeats);
    if (misfires.size > MISFIRES_KEPT) misfires.delete(misfires.keys().next().value!);
    const backoffMs = Math.min(MISFIRE_BACKOFF_MAX_MS, MISFIRE_BACKOFF_MS * 2 ** (repeats - 1));
    if (repeats === 1) {
      logger.error(
        {
          deliveryId: claim.id,
          channel: claim.channel,
          reason: step.next.reason,
          deferredTo: at === undefined ? null : new Date(at).toISOString(),
          claimedAt: claim.claimed_at.toISOString(),
        },
        'bug: a deferral was not in the future of its claim; backing off instead of claiming it again at once',
      );
    }
    options.onMisfire?.(claim.channel);
    return { next: { ...step.next, nextAttemptAt: new Date(floor + backoffMs) } };
  }

  async function record(outcome: ClaimOutcome & { claim: ClaimedDelivery }): Promise<void> {
    const events = statusEventsFor(outcome.claim, outcome.next);
    try {
      // A status event commits with the transition it reports, so a crash between the two cannot lose it.
      const kept =
        events.length === 0
          ? (await finish([outcome]))[0]
          : await database.sql.transaction(async (tx) => {
              const [finished] = await finishClaims(tx, [outcome]);
              if (finished) await queueStatusEvents(tx, events, options.now());
              return finished;
            });
      if (!kept) {
        logger.warn(
          { deliveryId: outcome.claim.id },
          'delivery lease was lost before its outcome was written',
        );
      }
    } catch (error) {
      // The lease runs out and another claim repeats the attempt: at least once, never lost.
      logger.error({ err: error, deliveryId: outcome.claim.id }, 'could not write a delivery outcome');
    }
  }

  async function decide(claim: ClaimedDelivery, signals: RunSignals): Promise<Step> {
    const now = options.now();
    const final = (status: DeliveryStatus, reason: string): Step => ({ next: { status, reason } });
    if (claim.cancelled_at) return final('cancelled', 'cancelled: the notification was cancelled');
    if (claim.expires_at && claim.expires_at <= now) {
      return final('expired', 'expired: not sent before expires_at');
    }
    if (claim.cancel_unless === 'read' && claim.read_at) {
      return final('cancelled', 'escalation: the notification was read first');
    }
    if (claim.cancel_unless === 'seen' && (claim.seen_at || claim.read_at)) {
      return final('cancelled', 'escalation: the notification was seen first');
    }
    if (claim.channel !== 'webhook') {
      const verdict = evaluatePreferences(preferencesOf(claim), {
        type: claim.type,
        channel: claim.channel,
        critical: claim.critical,
        at: now,
      });
      if (verdict.action === 'skip') return final('skipped', verdict.reason);
      if (verdict.action === 'defer') {
        return { next: { status: 'queued', reason: verdict.reason, nextAttemptAt: verdict.until } };
      }
      if (claim.suppressed) {
        return final('skipped', `suppressed: ${claim.channel} address is on the suppression list`);
      }
    } else {
      if (!claim.endpoint_url) return final('failed', 'endpoint: the webhook endpoint was deleted');
      if (!claim.endpoint_enabled) {
        return final('failed', `endpoint: disabled (${claim.endpoint_disabled_reason ?? 'by an admin'})`);
      }
    }

    const rendered = await render(claim);
    if (!rendered.ok) return final('failed', rendered.reason);
    const task = toTask(claim, rendered.title, rendered.body);
    return attempt(claim, task, signals);
  }

  async function render(
    claim: ClaimedDelivery,
  ): Promise<{ ok: true; title: string | null; body: string | null } | { ok: false; reason: string }> {
    if (claim.event !== 'notification') return { ok: true, title: null, body: null };
    const templates = options.config.templates(claim.type, claim.channel);
    const locale = selectTemplateLocale(
      templates.map((t) => t.locale),
      claim.locale,
    );
    const template = templates.find((t) => t.locale === locale);
    if (!template) return { ok: true, title: claim.title, body: claim.body };
    return renderer.render(
      { title: template.title, body: template.body },
      {
        data: claim.data,
        recipient: {
          userId: claim.user_id,
          email: claim.email,
          phone: claim.phone,
          locale: claim.locale,
          timezone: claim.timezone,
        },
        notification: { id: claim.notification_id, type: claim.type, title: claim.title, body: claim.body },
      },
      { html: htmlChannels.has(claim.channel) },
    );
  }

  async function attempt(claim: ClaimedDelivery, task: DeliveryTask, signals: RunSignals): Promise<Step> {
    const providers = options.providers[claim.channel] ?? [];
    if (providers.length === 0) {
      return { next: { status: 'failed', reason: `no provider is configured for ${claim.channel}` } };
    }
    // Failover: after a retry-class outcome the next provider in the list goes first.
    const last = claim.provider ? providers.findIndex((p) => p.name === claim.provider) : -1;
    const start = claim.attempts > 0 && last >= 0 ? (last + 1) % providers.length : 0;
    const order = providers.map((_, i) => providers[(start + i) % providers.length]!);

    // The breakers keep their own monotonic time (performance.now), so a wall-clock step cannot hold a circuit
    // open or close it early; how long until one half-opens becomes a wait on the service's clock.
    let shortestWaitMs = Number.POSITIVE_INFINITY;
    for (const provider of order) {
      const key = provider.circuitKey(task);
      const circuit = options.circuits.get(key);
      const at = performance.now();
      const admission = circuit.acquire(at);
      if (!admission.allowed) {
        shortestWaitMs = Math.min(shortestWaitMs, admission.retryAt - at);
        continue;
      }
      const token = await takeToken(provider, key, signals.stopping);
      if (token !== 'ok') {
        circuit.record('neutral', performance.now());
        if (token === 'stopping') return { release: true, dueAt: options.now() };
        return {
          next: {
            status: 'queued',
            reason: `rate_limited: waiting for ${provider.name}`,
            nextAttemptAt: new Date(options.now().getTime() + token.waitMs),
          },
        };
      }
      return callProvider(claim, task, provider, circuit, signals.abort);
    }
    // Every provider's circuit is open: wait for the first to half-open; no attempt is used up.
    return {
      next: {
        status: 'queued',
        reason: `circuit_open: ${order.map((p) => p.name).join(', ')} unavailable`,
        nextAttemptAt: new Date(options.now().getTime() + shortestWaitMs),
      },
    };
  }

  /** 'ok', 'stopping', or the wait when it is longer than worth holding the claim for. */
  async function takeToken(
    provider: ProviderAdapter,
    key: string,
    stopping: AbortSignal,
  ): Promise<'ok' | 'stopping' | { waitMs: number }> {
    const limit = options.rateLimits[provider.name];
    if (!limit) return 'ok';
    for (;;) {
      if (stopping.aborted) return 'stopping';
      const taken = await options.rateLimiter.take(key, limit);
      if (taken.ok) return 'ok';
      if (taken.waitMs > options.maxTokenWaitMs) return { waitMs: taken.waitMs };
      await sleep(taken.waitMs, stopping);
    }
  }

  async function callProvider(
    claim: ClaimedDelivery,
    task: DeliveryTask,
    provider: ProviderAdapter,
    circuit: ReturnType<CircuitBreakers['get']>,
    abort: AbortSignal,
  ): Promise<Step> {
    const startedAt = options.now();
    const started = performance.now();
    let outcome: Outcome;
    try {
      outcome = await provider.send(task, abort);
    } catch (error) {
      // An adapter bug or an unexpected error: treated as transient, never as success.
      outcome = {
        kind: 'retry',
        reason: `adapter error: ${error instanceof Error ? error.message : String(error)}`,
      };
    }
    // What the provider said is recorded as it said it, but it must be storable: a NUL or a surrogate pair
    // cut in half by truncation would fail the outcome's write, and the delivery would be attempted forever.
    outcome = storableOutcome(outcome);
    const latencyMs = performance.now() - started;
    circuit.record(circuitResult(outcome), performance.now());
    options.onAttempt?.(claim.channel, provider.name, outcome.kind);
    const reason = outcome.kind === 'sent' ? null : outcome.reason;
    const attempt: AttemptRecord = {
      provider: provider.name,
      outcome: outcome.kind,
      statusCode: outcome.statusCode ?? null,
      latencyMs,
      error: reason === null ? null : toStorableText(reason.slice(0, ERROR_KEPT_CHARS)),
      response: outcome.response ?? null,
      startedAt,
    };
    logger.debug(
      {
        deliveryId: claim.id,
        provider: provider.name,
        outcome: outcome.kind,
        statusCode: outcome.statusCode,
      },
      'delivery attempt',
    );
    // The endpoint's failure clock: started by a failure, cleared by a success (no write when healthy).
    const succeeded = outcome.kind === 'sent';
    if (
      claim.endpoint_id &&
      outcome.kind !== 'invalid_destination' &&
      (!succeeded || claim.endpoint_failing)
    ) {
      await recordEndpointResult(database.sql, claim.endpoint_id, succeeded, options.endpointDisableAfterMs);
    }
    const base = { provider: provider.name, lastError: attempt.error };
    switch (outcome.kind) {
      case 'sent':
        return {
          next: { ...base, status: 'sent', reason: null, providerMessageId: outcome.providerMessageId },
          attempt,
        };
      case 'failed':
        return { next: { ...base, status: 'failed', reason: `failed: ${outcome.reason}` }, attempt };
      case 'invalid_destination':
        await invalidateDestination(claim, outcome.reason);
        return {
          next: { ...base, status: 'failed', reason: `invalid_destination: ${outcome.reason}` },
          attempt,
        };
      case 'retry': {
        const decision = decideRetry({
          policy: options.retryPolicies[claim.channel],
          attemptsMade: claim.attempts + 1,
          firstQueuedAt: claim.first_attempt_at ?? startedAt,
          expiresAt: claim.expires_at,
          now: options.now(),
          retryAfterMs: outcome.retryAfterMs,
          random: options.random,
        });
        if (decision.kind === 'retry') {
          return {
            next: {
              ...base,
              status: 'queued',
              reason: `retry: ${outcome.reason}`,
              nextAttemptAt: decision.at,
            },
            attempt,
          };
        }
        if (decision.kind === 'expired') {
          return { next: { ...base, status: 'expired', reason: `expired: ${outcome.reason}` }, attempt };
        }
        return {
          next: {
            ...base,
            status: 'failed',
            reason: `exhausted: ${decision.reason}; last: ${outcome.reason}`,
          },
          attempt,
        };
      }
    }
  }

  async function invalidateDestination(claim: ClaimedDelivery, reason: string): Promise<void> {
    if (claim.channel === 'webhook' && claim.endpoint_id) {
      await disableEndpoint(database.sql, claim.endpoint_id, reason);
      await options.config.refresh();
    }
  }

  function statusEventsFor(claim: ClaimedDelivery, next: DeliveryTransition): StatusEventDelivery[] {
    const event = statusEvents[next.status];
    if (!event || claim.event !== 'notification') return [];
    return options.config
      .enabledEndpoints()
      .filter((e) => endpointSubscribes(e.eventTypes, event))
      .map((e) => ({
        notificationId: claim.notification_id,
        userId: claim.user_id,
        endpointId: e.id,
        event,
        payload: {
          notification_id: claim.notification_id,
          delivery_id: claim.id,
          user_id: claim.user_id,
          type: claim.type,
          channel: claim.channel,
          status: next.status,
          reason: next.reason,
          provider: next.provider ?? null,
        },
      }));
  }

  return {
    run,
    release: (claims) => releaseClaims(database.sql, claims),
    drain: async () => {
      while (unwritten.size > 0) await Promise.all([...unwritten]);
    },
  };
}

function storableOutcome(outcome: Outcome): Outcome {
  const response = outcome.response === undefined ? undefined : toStorableText(outcome.response);
  if (outcome.kind === 'sent') {
    const id = outcome.providerMessageId === null ? null : toStorableText(outcome.providerMessageId);
    return { ...outcome, response, providerMessageId: id };
  }
  return { ...outcome, response, reason: toStorableText(outcome.reason) };
}

function circuitResult(outcome: Outcome): 'success' | 'trip' | 'neutral' {
  if (outcome.kind === 'sent') return 'success';
  if (outcome.kind === 'retry') return 'trip';
  if (outcome.kind === 'failed' && outcome.credentials) return 'trip';
  return 'neutral';
}

function preferencesOf(claim: ClaimedDelivery): PreferenceSet | null {
  if (!claim.pref_channels && !claim.pref_types && !claim.quiet_start) return null;
  return {
    channels: claim.pref_channels ?? {},
    types: claim.pref_types ?? {},
    quietHours:
      claim.quiet_start && claim.quiet_end && claim.quiet_timezone
        ? { start: claim.quiet_start, end: claim.quiet_end, timezone: claim.quiet_timezone }
        : null,
  };
}

function toTask(claim: ClaimedDelivery, title: string | null, body: string | null): DeliveryTask {
  return {
    deliveryId: claim.id,
    notificationId: claim.notification_id,
    userId: claim.user_id,
    seq: Number(claim.seq),
    channel: claim.channel,
    type: claim.type,
    priority: claim.priority,
    data: claim.data,
    title,
    body,
    createdAt: new Date(claim.notification_created_at),
    sendAt: new Date(claim.send_at),
    expiresAt: claim.expires_at ? new Date(claim.expires_at) : null,
    recipient: { email: claim.email, phone: claim.phone, locale: claim.locale, timezone: claim.timezone },
    webhook:
      claim.channel === 'webhook' && claim.endpoint_id && claim.endpoint_url && claim.endpoint_secret
        ? {
            endpointId: claim.endpoint_id,
            url: claim.endpoint_url,
            secrets: [
              claim.endpoint_secret,
              ...(claim.endpoint_previous_secret ? [claim.endpoint_previous_secret] : []),
            ],
            event: claim.event,
            payload: claim.payload,
          }
        : null,
  };
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
