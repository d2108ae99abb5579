// Retry policy: which calls are tried again, when, and for how long.
//
// Only UNAVAILABLE is retried: Herald answers it when its database is unreachable or it is shutting down, and
// the transport raises it when a connection is refused or cut. It does not say whether the server acted on the
// request, so a call is retried only when doing it twice cannot do anything twice: reads, calls that set state
// to a value given in the request, and sends, which this client always gives an idempotency key (the same key
// within 24 hours returns the first answer). The per-call deadline covers all attempts together.
import type { DescMethod } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';

export interface RetryOptions {
  /** Attempts in all, the first one included (default 5). */
  maxAttempts?: number;
  /** Backoff with full jitter: the wait before retry n is uniform in [0, min(maxDelayMs, baseDelayMs · 2^(n-1))].
   * Defaults: 200 ms and 5 s. The same backoff spaces the reconnects of `streamNotifications`. */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export type Backoff = Required<RetryOptions>;

export const defaultBackoff: Backoff = { maxAttempts: 5, baseDelayMs: 200, maxDelayMs: 5_000 };

/** Calls whose repetition has the effect of doing them once, by fully-qualified method name. Not here:
 * CancelNotification and MarkNotifications (a repeat would report 0 changed), and the admin Create, Delete,
 * Rotate, Replay, Broadcast and RemoveSuppression calls. StreamNotifications resumes instead (stream.ts). */
const SAFE_TO_REPEAT = new Set([
  'herald.v1.NotificationService.Send', // always with an idempotency key (client.ts)
  'herald.v1.NotificationService.SendBatch', // each item with an idempotency key (client.ts)
  'herald.v1.NotificationService.GetNotification',
  'herald.v1.NotificationService.RegisterToken',
  'herald.v1.NotificationService.UnregisterToken',
  'herald.v1.NotificationService.UpdatePreferences',
  'herald.v1.NotificationService.GetPreferences',
  'herald.v1.NotificationService.ListNotifications',
  'herald.v1.AdminService.PutRoutingRule',
  'herald.v1.AdminService.GetRoutingRule',
  'herald.v1.AdminService.ListRoutingRules',
  'herald.v1.AdminService.PutTemplate',
  'herald.v1.AdminService.ListTemplates',
  'herald.v1.AdminService.PreviewTemplate',
  'herald.v1.AdminService.ListWebhookEndpoints',
  'herald.v1.AdminService.UpdateWebhookEndpoint',
  'herald.v1.AdminService.ListSuppressions',
  'herald.v1.AdminService.AddSuppression', // an address already suppressed keeps its entry
  'herald.v1.AdminService.ListOutboxMessages',
  'herald.v1.AdminService.GetOutboxMessage',
]);

export function isSafeToRepeat(method: DescMethod): boolean {
  return SAFE_TO_REPEAT.has(`${method.parent.typeName}.${method.name}`);
}

/** The wait before retry number `retry` (1 for the first): full jitter over an exponential ceiling. */
export function backoffDelay(retry: number, backoff: Backoff, random: () => number = Math.random): number {
  const ceiling = Math.min(backoff.maxDelayMs, backoff.baseDelayMs * 2 ** (retry - 1));
  return Math.floor(random() * ceiling);
}

/** Waits `ms`, or rejects with CANCELED as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const cancelled = () => ConnectError.from(signal?.reason ?? 'cancelled', Code.Canceled);
    if (signal?.aborted) {
      reject(cancelled());
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(cancelled());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface RetryPlan {
  backoff: Backoff | null;
  /** The whole call's deadline (ms since the epoch), or undefined for none. */
  deadline: number | undefined;
  signal: AbortSignal | undefined;
  now: () => number;
}

/**
 * Runs `attempt` (given the time left until the deadline), again after a backoff while it fails with UNAVAILABLE
 * and attempts are left. When the next attempt could not start before the deadline, the last error is thrown
 * at once rather than waiting the deadline out.
 */
export async function withRetries<T>(
  attempt: (timeoutMs: number | undefined) => Promise<T>,
  plan: RetryPlan,
): Promise<T> {
  const attempts = plan.backoff?.maxAttempts ?? 1;
  for (let n = 1; ; n++) {
    try {
      return await attempt(plan.deadline === undefined ? undefined : plan.deadline - plan.now());
    } catch (error) {
      if (!plan.backoff || n >= attempts || ConnectError.from(error).code !== Code.Unavailable) throw error;
      const delay = backoffDelay(n, plan.backoff);
      if (plan.deadline !== undefined && plan.now() + delay >= plan.deadline) throw error;
      await sleep(delay, plan.signal);
    }
  }
}
