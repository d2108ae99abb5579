// Web Push through the `web-push` package: VAPID-signed, aes128gcm-encrypted requests to the browser's push
// service. Push-service endpoints come from browsers, so they pass the same address guard as webhooks (inside
// the connection's DNS lookup): a subscription pointing at a private address is refused unless allowed.
// Classification: 2xx sent; 404/410 the subscription is gone; 401 the VAPID key was refused (the provider's
// credentials: trips the circuit); 403 the subscription belongs to another key; 413 and other 4xx are
// permanent; 429 and 5xx are retried.
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import webPush from 'web-push';
import { parseRetryAfter } from '../../core/retry-policy.js';
import type { DeliveryTask, Outcome, ProviderAdapter } from '../../delivery/provider.js';
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
/** A VAPID token is valid 12 hours (push services take at most 24) and renewed after 11. */
const VAPID_TOKEN_LIFETIME_S = 12 * 3_600;
const VAPID_RENEW_AFTER_MS = 11 * 3_600_000;
/** Push services are a handful; the bound only guards against a flood of odd endpoints. */
const MAX_VAPID_AUDIENCES = 1_000;

export function createWebPushAdapter(options: WebPushAdapterOptions): ProviderAdapter {
  const name = options.name ?? 'webpush';
  const now = options.now ?? (() => new Date());
  const agent = new https.Agent({
    keepAlive: true,
    maxSockets: options.connections,
    lookup: options.guard.lookup,
    ...(options.ca ? { ca: options.ca } : {}),
  });

  // The key pair is checked now: a key that cannot sign is a problem of the providers file, not of every push.
  webPush.getVapidHeaders(
    'https://push.example',
    options.vapid.subject,
    options.vapid.publicKey,
    options.vapid.privateKey,
    'aes128gcm',
  );

  const vapidTokens = new Map<string, { authorization: string; renewAt: number }>();
  /** The VAPID Authorization header for the endpoint's push service (its origin is the token's audience). */
  function vapidAuthorization(endpoint: string): string {
    const audience = new URL(endpoint).origin;
    const at = now().getTime();
    let token = vapidTokens.get(audience);
    if (!token || token.renewAt <= at) {
      const expiresS = Math.floor(at / 1000) + VAPID_TOKEN_LIFETIME_S;
      const { Authorization } = webPush.getVapidHeaders(
        audience,
        options.vapid.subject,
        options.vapid.publicKey,
        options.vapid.privateKey,
        'aes128gcm',
        expiresS,
      );
      token = { authorization: Authorization, renewAt: at + VAPID_RENEW_AFTER_MS };
      if (vapidTokens.size >= MAX_VAPID_AUDIENCES) vapidTokens.clear();
      vapidTokens.set(audience, token);
    }
    return token.authorization;
  }

  async function send(task: DeliveryTask, signal: AbortSignal): Promise<Outcome> {
    const destination = task.destination;
    if (destination.channel !== 'push' || !destination.subscription) {
      return { kind: 'failed', reason: 'web push delivery without a subscription' };
    }
    const refused = refusedEndpoint(destination.subscription.endpoint, options.guard);
    if (refused) return { kind: 'failed', reason: `push service refused: ${refused}` };
    const request = webPushRequest(task, now());
    if ('tooLarge' in request) return { kind: 'failed', reason: request.tooLarge };
    // web-push encrypts and signs; the request itself is made here, so that it can be cut off at the attempt's
    // budget and never reads more of the push service's answer than the attempt log keeps.
    const details = webPush.generateRequestDetails(destination.subscription, request.payload, {
      // Signed once per push service and reused while it is valid (web-push would sign one per request).
      headers: { Authorization: vapidAuthorization(destination.subscription.endpoint) },
      TTL: Number(request.headers.TTL),
      urgency: request.headers.Urgency,
      ...(request.headers.Topic ? { topic: request.headers.Topic } : {}),
    });
    return post(details, signal, now());
  }

  function post(details: webPush.RequestDetails, signal: AbortSignal, at: Date): Promise<Outcome> {
    return new Promise((resolve) => {
      const attempt = AbortSignal.any([signal, AbortSignal.timeout(options.timeoutMs)]);
      const req = https.request(details.endpoint, {
        method: details.method,
        headers: details.headers as Record<string, string | number>,
        agent,
        signal: attempt,
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          if (size < RESPONSE_KEPT_CHARS) chunks.push(chunk);
          size += chunk.length;
          // The answer's start is all the attempt log keeps; a push service that goes on talking is cut off.
          if (size > RESPONSE_KEPT_CHARS) res.destroy();
        });
        const done = () =>
          resolve(
            classifyAnswer(res.statusCode ?? 0, res.headers, Buffer.concat(chunks).toString('utf8'), at),
          );
        res.on('end', done);
        res.on('close', done);
      });
      req.on('error', (error) => {
        if (signal.aborted) resolve({ kind: 'retry', reason: 'aborted: the dispatcher is shutting down' });
        else if (attempt.aborted)
          resolve({ kind: 'retry', reason: `timeout: no answer within ${options.timeoutMs} ms` });
        else resolve(classifyError(error));
      });
      req.end(details.body ?? undefined);
    });
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

function classifyError(error: unknown): Outcome {
  const code = (error as { code?: unknown }).code;
  if (code === ADDRESS_REFUSED)
    return { kind: 'failed', reason: `push service refused: ${messageOf(error)}` };
  return { kind: 'retry', reason: `network: ${messageOf(error)}` };
}

function classifyAnswer(status: number, headers: IncomingHttpHeaders, response: string, at: Date): Outcome {
  const detail = { statusCode: status, response: response.slice(0, RESPONSE_KEPT_CHARS) };
  if (status >= 200 && status < 300) {
    return { kind: 'sent', providerMessageId: headerOf(headers, 'location'), statusCode: status };
  }
  if (status === 404 || status === 410) {
    return {
      kind: 'invalid_destination',
      reason: `push service answered ${status}: the subscription is gone`,
      code: status === 410 ? 'Gone' : 'NotFound',
      ...detail,
    };
  }
  // 401: the push service does not take this sender's VAPID key at all (the provider's credentials). 403: the
  // key does not match the one this subscription was made with — one subscription's problem, not the sender's.
  if (status === 401) {
    return {
      kind: 'failed',
      reason: 'push service refused the VAPID key (HTTP 401)',
      credentials: true,
      ...detail,
    };
  }
  if (status === 403) {
    return {
      kind: 'failed',
      reason: 'push service refused this subscription for this VAPID key (HTTP 403)',
      ...detail,
    };
  }
  if (status === 429 || status >= 500) {
    const retryAfterMs = parseRetryAfter(headerOf(headers, 'retry-after') ?? undefined, at);
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
