// One claimed delivery, from claim to its next state, in four jobs kept in their own files:
// - gating: the common gates here (cancelled, expired, an escalation made unnecessary), then the channel's
//   own (its driver: preferences and quiet hours, suppressions, the webhook endpoint);
// - rendering (render.ts): the template, or the notification's own title and body, shaped by the driver;
// - provider choice and failover (attempt.ts): providers that accept the task, circuits and rate limits;
// - outcome recording (outcome.ts, and `record` here): the next state, the attempt row, status events.
//
// Every time the runner writes (deferrals, retries, status events) is on the service's clock (`now`), the one
// the dispatcher claims by. A deferral that made no attempt and is due no later than its claim would be claimed
// again at once, in a loop: that is a bug, so it is logged once per delivery and backed off instead.
import type { ChannelName, DeliveryStatus } from '../core/channels.js';
import type { Database } from '../store/database.js';
import {
  type ClaimedDelivery,
  type ClaimOutcome,
  finishClaims,
  queueStatusEvents,
  releaseClaims,
} from '../store/deliveries.js';
import { createGroupWriter } from '../store/group-commit.js';
import { type AttemptOptions, createAttempter } from './attempt.js';
import type { ChannelDrivers, GateVerdict } from './channel.js';
import type { ConfigCache } from './config-cache.js';
import { type Step, statusEventsFor } from './outcome.js';
import type { DeliveryTask, ProviderSet } from './provider.js';
import { createPartsRenderer } from './render.js';

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

/** The attempt's options (providers, circuits, rate limits, retry, clocks, logging), and the runner's own. */
export interface DeliveryRunnerOptions extends AttemptOptions {
  database: Database;
  config: ConfigCache;
  drivers: ChannelDrivers;
  /**
   * The provider set for one attempt (the set can be reloaded): `release` is called once the attempt is over,
   * so a replaced set is closed only after its last attempt.
   */
  acquireProviders: () => { providers: ProviderSet; release: () => void };
  /** A deferral was due no later than its claim and was backed off (see deferredIntoFuture). */
  onMisfire?: (channel: ChannelName) => void;
}

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

export function createDeliveryRunner(options: DeliveryRunnerOptions): DeliveryRunner {
  const { database, logger } = options;
  const renderParts = createPartsRenderer(options.config);
  const attempt = createAttempter(options);
  const unwritten = new Set<Promise<void>>();
  const record = createOutcomeRecorder(options);

  const deferredIntoFuture = createMisfireGuard(options);

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
    const write = record({ claim, next: step.next, attempt: step.attempt ?? null, earlier: step.earlier });
    unwritten.add(write);
    void write.finally(() => unwritten.delete(write));
    if (unwritten.size > MAX_UNWRITTEN) await write;
    return step.next.status === 'queued' ? (step.next.nextAttemptAt ?? null) : null;
  }

  async function decide(claim: ClaimedDelivery, signals: RunSignals): Promise<Step> {
    const driver = options.drivers[claim.channel];
    if (!driver) return final('skipped', `not_configured: ${claim.channel} is not delivered by a provider`);
    const verdict = commonGate(claim, options.now()) ?? driver.gate(claim, options.now());
    if (verdict) return stepOf(verdict);
    const destination = driver.destination(claim);
    if ('unusable' in destination) return final('skipped', destination.unusable);
    const rendered = await renderParts(claim, driver);
    if (!rendered.ok) return final('failed', rendered.reason);
    const task: DeliveryTask = {
      ...taskBase(claim),
      destination,
      content: driver.content(claim, rendered.parts),
    };
    const { providers, release } = options.acquireProviders();
    try {
      return await attempt(claim, task, driver, providers[claim.channel] ?? [], signals);
    } finally {
      release();
    }
  }

  return {
    run,
    release: (claims) => releaseClaims(database.sql, claims),
    drain: async () => {
      while (unwritten.size > 0) await Promise.all([...unwritten]);
    },
  };
}

/**
 * Writes outcomes: the transition and its attempt row, fenced by the lease. Outcomes that arrive while earlier
 * ones are being written share the next statement (one commit); a transition that sends status events commits
 * with them, so a crash between the two cannot lose one.
 */
function createOutcomeRecorder(options: DeliveryRunnerOptions) {
  const { database, logger } = options;
  const finish = createGroupWriter((outcomes: ClaimOutcome[]) => finishClaims(database.sql, outcomes), {
    maxStatements: FINISH_STATEMENTS,
    maxItems: 1_000,
  });
  return async function record(outcome: ClaimOutcome & { claim: ClaimedDelivery }): Promise<void> {
    const events = statusEventsFor(outcome.claim, outcome.next, options.config.enabledEndpoints());
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
  };
}

/** The safety net against claim loops (see the top of this file), remembering each delivery's misfires. */
function createMisfireGuard(options: DeliveryRunnerOptions) {
  const { logger } = options;
  // Delivery id -> deferrals of it that were not in the future (oldest first, bounded).
  const misfires = new Map<string, number>();
  /**
   * A claim that ends queued without an attempt (quiet hours, rate limit, open circuit) must be due after the
   * clock it was claimed by, or the next claim takes it straight back. Retries are not checked here: each
   * uses up an attempt, so they end by themselves.
   */
  return function deferredIntoFuture(claim: ClaimedDelivery, step: Step): Step {
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
  };
}

/** Gates every channel shares: the notification was cancelled, expired, or an escalation became unnecessary. */
function commonGate(claim: ClaimedDelivery, now: Date): GateVerdict | null {
  if (claim.cancelled_at) return { status: 'cancelled', reason: 'cancelled: the notification was cancelled' };
  if (claim.expires_at && claim.expires_at <= now) {
    return { status: 'expired', reason: 'expired: not sent before expires_at' };
  }
  if (claim.cancel_unless === 'read' && claim.read_at) {
    return { status: 'cancelled', reason: 'escalation: the notification was read first' };
  }
  if (claim.cancel_unless === 'seen' && (claim.seen_at || claim.read_at)) {
    return { status: 'cancelled', reason: 'escalation: the notification was seen first' };
  }
  return null;
}

function final(status: DeliveryStatus, reason: string): Step {
  return { next: { status, reason } };
}

function stepOf(verdict: GateVerdict): Step {
  if (verdict.status === 'queued') {
    return { next: { status: 'queued', reason: verdict.reason, nextAttemptAt: verdict.until } };
  }
  return final(verdict.status, verdict.reason);
}

/** The task's fields every channel shares. */
function taskBase(claim: ClaimedDelivery): Omit<DeliveryTask, 'destination' | 'content'> {
  return {
    deliveryId: claim.id,
    notificationId: claim.notification_id,
    userId: claim.user_id,
    seq: Number(claim.seq),
    type: claim.type,
    priority: claim.priority,
    data: claim.data,
    createdAt: new Date(claim.notification_created_at),
    sendAt: new Date(claim.send_at),
    expiresAt: claim.expires_at ? new Date(claim.expires_at) : null,
  };
}
