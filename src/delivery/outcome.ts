// Outcome recording's rules: what an adapter's outcome makes of the delivery (its next state, with retry
// and backoff decided by the policy), what the circuit breaker counts, and which status events a final state
// sends to the endpoints that subscribe to them.
import type { DeliveryStatus } from '../core/channels.js';
import { endpointSubscribes } from '../core/planning.js';
import { decideRetry, type RetryPolicy } from '../core/retry-policy.js';
import { toStorableText } from '../core/rules.js';
import type {
  AttemptRecord,
  ClaimedDelivery,
  DeliveryTransition,
  StatusEventDelivery,
} from '../store/deliveries.js';
import type { WebhookEndpointRow } from '../store/delivery-config.js';
import type { Outcome } from './provider.js';

/** Where a run leaves its claim: a next state (with the attempt made, if any), or handed back untouched. */
export type Step =
  | {
      next: DeliveryTransition;
      attempt?: AttemptRecord | undefined;
      /** Attempts made before `attempt` in the same claim (providers that could not reach the destination). */
      earlier?: AttemptRecord[] | undefined;
    }
  | { release: true; dueAt: Date };

/** Status events Herald emits for deliveries reaching these states (never about status events themselves). */
const statusEvents: Partial<Record<DeliveryStatus, string>> = {
  sent: 'notification.sent',
  delivered: 'notification.delivered',
  failed: 'notification.failed',
  expired: 'notification.expired',
};

export interface OutcomeContext {
  claim: ClaimedDelivery;
  attempt: AttemptRecord;
  policy: RetryPolicy;
  now: Date;
  random: () => number;
}

/** The delivery's next state after a provider's answer. */
export function stepForOutcome(outcome: Outcome, context: OutcomeContext): Step {
  const { claim, attempt } = context;
  const base = { provider: attempt.provider, lastError: attempt.error };
  const next = (transition: DeliveryTransition): Step => ({ next: { ...base, ...transition }, attempt });
  switch (outcome.kind) {
    case 'sent':
      return next({ status: 'sent', reason: null, providerMessageId: outcome.providerMessageId });
    case 'failed':
      return next({ status: 'failed', reason: `failed: ${outcome.reason}` });
    case 'invalid_destination':
      return next({ status: 'failed', reason: `invalid_destination: ${outcome.reason}` });
    case 'retry': {
      const decision = decideRetry({
        policy: context.policy,
        attemptsMade: claim.attempts + 1,
        firstQueuedAt: claim.first_attempt_at ?? attempt.startedAt,
        expiresAt: claim.expires_at,
        now: context.now,
        retryAfterMs: outcome.retryAfterMs,
        random: context.random,
      });
      if (decision.kind === 'retry') {
        return next({ status: 'queued', reason: `retry: ${outcome.reason}`, nextAttemptAt: decision.at });
      }
      if (decision.kind === 'expired')
        return next({ status: 'expired', reason: `expired: ${outcome.reason}` });
      return next({ status: 'failed', reason: `exhausted: ${decision.reason}; last: ${outcome.reason}` });
    }
  }
}

/**
 * What the provider said is recorded as it said it, but it must be storable: a NUL or a surrogate pair cut in
 * half by truncation would fail the outcome's write, and the delivery would be attempted forever.
 */
export function storableOutcome(outcome: Outcome): Outcome {
  const response = outcome.response === undefined ? undefined : toStorableText(outcome.response);
  if (outcome.kind === 'sent') {
    const id = outcome.providerMessageId === null ? null : toStorableText(outcome.providerMessageId);
    return { ...outcome, response, providerMessageId: id };
  }
  return { ...outcome, response, reason: toStorableText(outcome.reason) };
}

/** Transient failures and refused credentials trip the provider's circuit; a bad message or address does not. */
export function circuitResult(outcome: Outcome): 'success' | 'trip' | 'neutral' {
  if (outcome.kind === 'sent') return 'success';
  if (outcome.kind === 'retry') return outcome.elsewhere ? 'neutral' : 'trip';
  if (outcome.kind === 'failed' && outcome.credentials) return 'trip';
  return 'neutral';
}

/** The status events a transition sends: one per enabled endpoint that subscribes to the event. */
export function statusEventsFor(
  claim: Pick<ClaimedDelivery, 'event' | 'notification_id' | 'id' | 'user_id' | 'type' | 'channel'>,
  next: DeliveryTransition,
  endpoints: readonly WebhookEndpointRow[],
): StatusEventDelivery[] {
  const event = statusEvents[next.status];
  if (!event || claim.event !== 'notification') return [];
  return endpoints
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
