// The channel adapter contract: an adapter tries to hand one rendered message to one provider for one
// destination and classifies the result. It never retries, sleeps or touches the database; the dispatcher
// owns leases, backoff, Retry-After, rate limits, circuit breakers, failover and the attempt log.
// docs/channels.md describes the contract and how to add a provider.
import type { ChannelName } from '../core/channels.js';
import type { RetryPolicy } from '../core/retry-policy.js';
import type { SmsEncoding } from '../core/sms.js';
import type { RateLimit } from './rate-limiter.js';

export type PushPlatform = 'apns' | 'fcm' | 'webpush';

/** Where one delivery goes: one case per channel, as it was planned. */
export type Destination =
  | { channel: 'webhook'; endpointId: string; url: string; secrets: string[] }
  | {
      channel: 'push';
      tokenId: string;
      platform: PushPlatform;
      appId: string | null;
      /** The APNs or FCM token; for Web Push the subscription's endpoint URL. */
      token: string;
      /** Web Push only: the subscription's keys. */
      subscription: { endpoint: string; keys: { p256dh: string; auth: string } } | null;
    }
  | { channel: 'email'; address: string }
  /** E.164. */
  | { channel: 'sms'; number: string };

/** What is sent, rendered: one case per channel. */
export type Content =
  /** `type` is the notification type, or the status event (e.g. `notification.failed`). */
  | { channel: 'webhook'; type: string; data: Record<string, unknown> }
  | {
      channel: 'push';
      title: string | null;
      body: string | null;
      data: Record<string, unknown>;
      /** HIGH and CRITICAL notifications: providers deliver at once instead of when convenient. */
      urgent: boolean;
      /** A newer push with the same key replaces an older one not yet shown; null: none replaces another. */
      collapseKey: string | null;
      sound: string | null;
      /** The app icon's badge: the Send's, else the recipient's unread in-app count. */
      badge: number | null;
      imageUrl: string | null;
      clickUrl: string | null;
      threadId: string | null;
      category: string | null;
      /** Nothing shown: the app gets the data in the background. */
      dataOnly: boolean;
    }
  | {
      channel: 'email';
      subject: string;
      html: string;
      text: string;
      headers: Record<string, string>;
      /** The type's own sender, instead of the provider's. */
      from?: string | undefined;
      replyTo?: string | undefined;
    }
  | { channel: 'sms'; text: string; encoding: SmsEncoding; segments: number };

/** What one attempt is about: the delivery, its notification, where it goes and what is sent. */
export interface DeliveryTask {
  deliveryId: string;
  notificationId: string;
  userId: string;
  seq: number;
  type: string;
  priority: number;
  data: Record<string, unknown>;
  createdAt: Date;
  sendAt: Date;
  expiresAt: Date | null;
  destination: Destination;
  content: Content;
  /** The attempt's W3C traceparent when tracing is on; a provider that can carry it on sends it (webhooks). */
  traceParent?: string | undefined;
}

interface OutcomeDetail {
  /** The provider's HTTP status (or protocol code), when it answered. */
  statusCode?: number | undefined;
  /** The start of the provider's answer, kept (truncated) in the attempt log. */
  response?: string | undefined;
  /** The provider's own error code (APNs `Unregistered`, FCM `UNREGISTERED`, ...), for metrics. */
  code?: string | undefined;
}

export type Outcome =
  /** Accepted by the provider. `cost`: what the provider's configured price makes of it (SMS). */
  | ({
      kind: 'sent';
      providerMessageId: string | null;
      cost?: { amount: number; currency: string } | undefined;
    } & OutcomeDetail)
  /**
   * Transient (5xx, timeout, 429, throttling): counts toward the provider's circuit; try again later.
   * `holdProviderMs`: the provider itself takes nothing for this long (a daily quota): its circuit opens for
   * it at once, and deliveries fail over to the next provider meanwhile. `elsewhere`: this provider cannot
   * reach the destination (an SMS region or carrier it does not serve), though it works: the next provider
   * is tried at once, the circuit is untouched, and with no other provider the delivery fails.
   */
  | ({
      kind: 'retry';
      reason: string;
      retryAfterMs?: number | undefined;
      holdProviderMs?: number | undefined;
      elsewhere?: boolean | undefined;
    } & OutcomeDetail)
  /**
   * Permanent for this message (payload, configuration). `credentials`: the provider refused our
   * credentials, which is the provider's problem, not the message's: it trips the circuit.
   */
  | ({ kind: 'failed'; reason: string; credentials?: boolean } & OutcomeDetail)
  /**
   * The destination is gone (token dead, address bounced, number opted out, endpoint 410). `since`: when the
   * provider says it went (APNs reports it), so a token registered again after that is kept.
   */
  | ({ kind: 'invalid_destination'; reason: string; since?: Date | undefined } & OutcomeDetail);

export interface ProviderAdapter {
  /** Stable name, recorded on every attempt (e.g. 'webhook', 'ses'); unique among the configured providers. */
  readonly name: string;
  readonly channel: ChannelName;
  /** The longest one attempt may take; the dispatcher's lease budget is derived from the largest. */
  readonly timeoutMs: number;
  /** This provider's rate limit, when configured (else HERALD_RATE_LIMITS by name, else none). */
  readonly rateLimit?: RateLimit | undefined;
  /** This provider's retry policy, when configured (else the channel's). */
  readonly retry?: RetryPolicy | undefined;
  /** Whether this provider can take the task at all (e.g. APNs: only APNs tokens of its apps). */
  accepts(task: DeliveryTask): boolean;
  /** The circuit breaker and rate limit this attempt counts against: the provider, or e.g. one webhook host. */
  circuitKey(task: DeliveryTask): string;
  /** Must resolve (not throw) for anything the provider answered; `signal` aborts at shutdown. */
  send(task: DeliveryTask, signal: AbortSignal): Promise<Outcome>;
  /** Releases connections and timers, after the dispatcher has stopped. */
  close(): Promise<void>;
}

/** The providers of each channel, in failover order. */
export type ProviderSet = Partial<Record<ChannelName, readonly ProviderAdapter[]>>;
