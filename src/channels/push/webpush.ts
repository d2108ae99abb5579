// Web Push through the `web-push` package: VAPID-signed, aes128gcm-encrypted requests to the browser's push
// service. Push-service endpoints come from browsers, so they pass the same address guard as webhooks (inside
// the connection's DNS lookup): a subscription pointing at a private address is refused unless allowed.
// Classification: 2xx sent; 404/410 the subscription is gone; 401/403 the VAPID key was refused (the
// provider's credentials: trips the circuit); 413 and other 4xx are permanent; 429 and 5xx are retried.
import https from 'node:https';
import webPush, { WebPushError } from 'web-push';
import { parseRetryAfter } from '../../core/retry-policy.js';
import type { DeliveryTask, Outcome, ProviderAdapter } from '../../delivery/provider.js';
import { withinBudget } from '../budget.js';
import { ADDRESS_REFUSED, type AddressGuard } from '../webhook/address-guard.js';
import { webPushRequest } from './payloads.js';

export interface WebPushAdapterOptions {
  name?: string;
  timeoutMs: number;
  vapid: { subject: string; publicKey: string; privateKey: string };
  guard: AddressGuard;
  /** Extra certificate authority to trust (a private push service, or a test emulator); PEM. */
  ca?: string | undefined;
  /** Connections kept per push service. */
  connections: number;
  now?: () => Date;
}

const RESPONSE_KEPT_CHARS = 1024;

export function createWebPushAdapter(options: WebPushAdapterOptions): ProviderAdapter {
  const name = options.name ?? 'webpush';
  const now = options.now ?? (() => new Date());
  const agent = new https.Agent({
    keepAlive: true,
    maxSockets: options.connections,
    lookup: options.guard.lookup,
    ...(options.ca ? { ca: options.ca } : {}),
  });

  async function send(task: DeliveryTask, signal: AbortSignal): Promise<Outcome> {
    const destination = task.destination;
    if (destination.channel !== 'push' || !destination.subscription) {
      return { kind: 'failed', reason: 'web push delivery without a subscription' };
    }
    const refused = refusedEndpoint(destination.subscription.endpoint, options.guard);
    if (refused) return { kind: 'failed', reason: `push service refused: ${refused}` };
    const request = webPushRequest(task, now());
    if ('tooLarge' in request) return { kind: 'failed', reason: request.tooLarge };
    const attempt = webPush
      .sendNotification(destination.subscription, request.payload, {
        vapidDetails: options.vapid,
        TTL: Number(request.headers.TTL),
        urgency: request.headers.Urgency,
        topic: request.headers.Topic,
        agent,
        timeout: options.timeoutMs,
      })
      .then(
        (res): Outcome => ({
          kind: 'sent',
          providerMessageId: headerOf(res.headers, 'location'),
          statusCode: res.statusCode,
        }),
        (error: unknown) => classify(error, now()),
      );
    return withinBudget(attempt, options.timeoutMs, signal);
  }

  return {
    name,
    channel: 'push',
    timeoutMs: options.timeoutMs,
    accepts: (task) =>
      task.destination.channel === 'push' &&
      task.destination.platform === 'webpush' &&
      task.destination.subscription !== null &&
      task.content.channel === 'push',
    // One circuit per push service (FCM's, Mozilla's, Apple's): one failing must not stop the others.
    circuitKey: (task) => `${name}:${originOf(task)}`,
    send,
    close: async () => agent.destroy(),
  };
}

function classify(error: unknown, at: Date): Outcome {
  if (!(error instanceof WebPushError)) {
    const code = (error as { code?: unknown }).code;
    if (code === ADDRESS_REFUSED)
      return { kind: 'failed', reason: `push service refused: ${messageOf(error)}` };
    return { kind: 'retry', reason: `network: ${messageOf(error)}` };
  }
  const status = error.statusCode;
  const detail = { statusCode: status, response: String(error.body ?? '').slice(0, RESPONSE_KEPT_CHARS) };
  if (status === 404 || status === 410) {
    return {
      kind: 'invalid_destination',
      reason: `push service answered ${status}: the subscription is gone`,
      code: status === 410 ? 'Gone' : 'NotFound',
      ...detail,
    };
  }
  if (status === 401 || status === 403) {
    return {
      kind: 'failed',
      reason: `push service refused the VAPID key (HTTP ${status})`,
      credentials: true,
      ...detail,
    };
  }
  if (status === 429 || status >= 500) {
    const retryAfterMs = parseRetryAfter(headerOf(error.headers, 'retry-after') ?? undefined, at);
    return { kind: 'retry', reason: `push service answered HTTP ${status}`, retryAfterMs, ...detail };
  }
  return { kind: 'failed', reason: `push service answered HTTP ${status}`, ...detail };
}

/** The IP-literal check (a host name is checked in the connection's DNS lookup instead). */
function refusedEndpoint(endpoint: string, guard: AddressGuard): string | null {
  try {
    const url = new URL(endpoint);
    if (url.protocol !== 'https:') return 'the endpoint is not https';
    guard.checkLiteral(url.hostname.replace(/^\[|\]$/g, ''));
    return null;
  } catch (error) {
    return messageOf(error);
  }
}

function originOf(task: DeliveryTask): string {
  try {
    return task.destination.channel === 'push' ? new URL(task.destination.token).host : 'unknown';
  } catch {
    return 'invalid';
  }
}

function headerOf(headers: Record<string, unknown> | undefined, name: string): string | null {
  const value = headers?.[name];
  if (Array.isArray(value)) return typeof value[0] === 'string' ? value[0] : null;
  return typeof value === 'string' ? value : null;
}

function messageOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? `${error.message} (${code})` : error.message;
}
