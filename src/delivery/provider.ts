// The channel adapter contract: an adapter tries to hand one rendered message to one provider
// for one destination and classifies the result. It never retries, sleeps or touches the database; the
// dispatcher owns leases, backoff, Retry-After, rate limits, circuit breakers, failover and the attempt log.
import type { ChannelName } from '../core/channels.js';

/** What one attempt is about: the delivery, its notification, its recipient, and the rendered text. */
export interface DeliveryTask {
  deliveryId: string;
  notificationId: string;
  userId: string;
  seq: number;
  channel: ChannelName;
  type: string;
  priority: number;
  data: Record<string, unknown>;
  /** Rendered from the channel's template when there is one, else the notification's own. */
  title: string | null;
  body: string | null;
  createdAt: Date;
  sendAt: Date;
  expiresAt: Date | null;
  recipient: { email: string | null; phone: string | null; locale: string | null; timezone: string | null };
  /** Webhook deliveries: the endpoint and what is sent (the notification, or a status event). */
  webhook: {
    endpointId: string;
    url: string;
    secrets: string[];
    event: string;
    payload: Record<string, unknown> | null;
  } | null;
}

interface OutcomeDetail {
  /** The provider's HTTP status (or protocol code), when it answered. */
  statusCode?: number | undefined;
  /** The start of the provider's answer, kept (truncated) in the attempt log. */
  response?: string | undefined;
}

export type Outcome =
  /** Accepted by the provider. */
  | ({ kind: 'sent'; providerMessageId: string | null } & OutcomeDetail)
  /** Transient (5xx, timeout, 429, throttling): counts toward the provider's circuit; try again later. */
  | ({ kind: 'retry'; reason: string; retryAfterMs?: number | undefined } & OutcomeDetail)
  /**
   * Permanent for this message (payload, configuration). `credentials`: the provider refused our
   * credentials, which is the provider's problem, not the message's: it trips the circuit.
   */
  | ({ kind: 'failed'; reason: string; credentials?: boolean } & OutcomeDetail)
  /** The destination is gone (token dead, address bounced, number opted out, endpoint 410). */
  | ({ kind: 'invalid_destination'; reason: string } & OutcomeDetail);

export interface ProviderAdapter {
  /** Stable name, recorded on every attempt (e.g. 'webhook', 'ses'). */
  readonly name: string;
  readonly channel: ChannelName;
  /** The longest one attempt may take; the dispatcher's lease budget is derived from the largest. */
  readonly timeoutMs: number;
  /** The circuit breaker and rate limit this attempt counts against: the provider, or e.g. one webhook host. */
  circuitKey(task: DeliveryTask): string;
  /** Must resolve (not throw) for anything the provider answered; `signal` aborts at shutdown. */
  send(task: DeliveryTask, signal: AbortSignal): Promise<Outcome>;
  /** Releases connections and timers, after the dispatcher has stopped. */
  close(): Promise<void>;
}
