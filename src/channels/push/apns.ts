// APNs through `@parse/node-apn` (HTTP/2): token auth (a .p8 key, its key id and the team id) or certificate
// auth; each app (the token's app id) has its topic (bundle id) and its environment (production or sandbox),
// one HTTP/2 client per environment. node-apn's own retries are off: they ignore Retry-After and would mask a
// dead token behind a later success, so the dispatcher's backoff stays in charge.
// Classification: 200 sent; 410 Unregistered (with the time APNs saw the token go), 400 BadDeviceToken and
// DeviceTokenNotForTopic: the token is gone; 403 (provider token or certificate refused): credentials, which
// trip the circuit; 429 and 5xx: retried; other 4xx (a request or configuration bug): failed.
import apn from '@parse/node-apn';
import type { DeliveryTask, Outcome, ProviderAdapter } from '../../delivery/provider.js';
import { apnsRequest } from './payloads.js';

export interface ApnsApp {
  appId: string;
  /** The bundle id the app's pushes go to; defaults to the app id. */
  topic: string;
  environment: 'production' | 'sandbox';
}

export type ApnsAuth =
  | { type: 'token'; key: string; keyId: string; teamId: string }
  | { type: 'certificate'; cert: string; key: string; passphrase?: string | undefined };

export interface ApnsAdapterOptions {
  name?: string;
  timeoutMs: number;
  auth: ApnsAuth;
  /** The apps this provider serves; a token registered without an app id goes to the only one, if one. */
  apps: readonly ApnsApp[];
  /** Another APNs host (a proxy, or a test emulator) and the CA to trust for it. */
  endpoint?: { address: string; port: number; ca?: string | undefined } | undefined;
  now?: () => Date;
}

/** Token problems that mean this device will never take this app's pushes again. */
const DEAD_TOKEN_REASONS = new Set(['BadDeviceToken', 'DeviceTokenNotForTopic']);

interface ApnsFailure {
  status?: number | string;
  response?: { reason?: string; timestamp?: number | string };
  error?: Error;
}

export function createApnsAdapter(options: ApnsAdapterOptions): ProviderAdapter {
  const name = options.name ?? 'apns';
  const now = options.now ?? (() => new Date());
  const apps = new Map(options.apps.map((app) => [app.appId, app]));
  const clients = new Map<ApnsApp['environment'], apn.Provider>();

  // Credentials go in as Buffers: node-apn reads a string without a PEM header as a file path, and would quote
  // the "path" (the key) in its error. Both clients are made now, so a key that does not load is a problem of
  // the providers file, not of every delivery.
  const auth =
    options.auth.type === 'token'
      ? {
          token: {
            key: Buffer.from(options.auth.key),
            keyId: options.auth.keyId,
            teamId: options.auth.teamId,
          },
        }
      : {
          cert: Buffer.from(options.auth.cert),
          key: Buffer.from(options.auth.key),
          passphrase: options.auth.passphrase,
        };
  for (const environment of new Set(options.apps.map((app) => app.environment))) {
    clients.set(
      environment,
      new apn.Provider({
        ...auth,
        production: environment === 'production',
        ...(options.endpoint
          ? {
              address: options.endpoint.address,
              port: options.endpoint.port,
              ...(options.endpoint.ca ? { ca: Buffer.from(options.endpoint.ca) } : {}),
            }
          : {}),
        connectionRetryLimit: 0,
        requestTimeout: options.timeoutMs,
      } as apn.ProviderOptions),
    );
  }

  function appOf(task: DeliveryTask): ApnsApp | undefined {
    if (task.destination.channel !== 'push') return undefined;
    // A token registered without an app id is taken only when there is no choice to make.
    if (task.destination.appId === null) return options.apps.length === 1 ? options.apps[0] : undefined;
    return apps.get(task.destination.appId);
  }

  async function send(task: DeliveryTask): Promise<Outcome> {
    const app = appOf(task);
    if (!app || task.destination.channel !== 'push') {
      return { kind: 'failed', reason: 'APNs delivery for an app this provider does not serve' };
    }
    const request = apnsRequest(task, app.topic, now());
    if ('tooLarge' in request) return { kind: 'failed', reason: request.tooLarge };
    const notification = new apn.Notification();
    notification.rawPayload = request.payload;
    notification.topic = app.topic;
    notification.pushType = request.headers['apns-push-type'] as apn.NotificationPushType;
    notification.priority = Number(request.headers['apns-priority']);
    notification.expiry = Number(request.headers['apns-expiration']);
    const collapseId = request.headers['apns-collapse-id'];
    if (collapseId) notification.collapseId = collapseId;
    notification.id = task.deliveryId;
    try {
      const result = await clients.get(app.environment)!.send(notification, task.destination.token);
      if (result.sent.length > 0)
        return { kind: 'sent', providerMessageId: task.deliveryId, statusCode: 200 };
      return classify((result.failed[0] ?? {}) as ApnsFailure);
    } catch {
      // Whatever node-apn throws here is its own failure, not an answer; its text is not kept (it can carry
      // credential material).
      return { kind: 'retry', reason: 'APNs: the request could not be made' };
    }
  }

  return {
    name,
    channel: 'push',
    timeoutMs: options.timeoutMs,
    accepts: (task) =>
      task.destination.channel === 'push' &&
      task.destination.platform === 'apns' &&
      task.content.channel === 'push' &&
      appOf(task) !== undefined,
    circuitKey: (task) => `${name}:${appOf(task)?.environment ?? 'unknown'}`,
    send,
    close: async () => {
      // node-apn's shutdown() does not wait for its sessions: ask each and let them close.
      await Promise.all(
        [...clients.values()].map(
          (provider) => new Promise<void>((resolve) => provider.shutdown(() => resolve())),
        ),
      );
      clients.clear();
    },
  };
}

function classify(failure: ApnsFailure): Outcome {
  const status = Number(failure.status);
  const reason = failure.response?.reason;
  if (!Number.isInteger(status)) {
    return { kind: 'retry', reason: `APNs: ${failure.error?.message ?? 'no answer'}` };
  }
  const detail = { statusCode: status, response: reason ?? '', code: reason };
  const said = `APNs answered ${status}${reason ? ` ${reason}` : ''}`;
  if (status === 410) {
    const at = Number(failure.response?.timestamp);
    return {
      kind: 'invalid_destination',
      reason: said,
      since: Number.isFinite(at) && at > 0 ? new Date(at) : undefined,
      ...detail,
    };
  }
  if (status === 400 && reason && DEAD_TOKEN_REASONS.has(reason)) {
    return { kind: 'invalid_destination', reason: said, ...detail };
  }
  // node-apn signs a fresh provider token after this answer: the next attempt goes with it.
  if (status === 403 && reason === 'ExpiredProviderToken') return { kind: 'retry', reason: said, ...detail };
  if (status === 403) return { kind: 'failed', reason: said, credentials: true, ...detail };
  if (status === 429 || status >= 500) return { kind: 'retry', reason: said, ...detail };
  return { kind: 'failed', reason: said, ...detail };
}
