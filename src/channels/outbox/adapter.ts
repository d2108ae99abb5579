// The outbox provider: records exactly what a real provider of the channel would have received, in the
// outbox_messages table, and answers `sent` with the row's id as the provider message id. It is what every
// channel without a provider uses when Herald runs without a providers file, so a fresh install shows every
// channel's messages (AdminService.ListOutboxMessages, `herald outbox`, the /outbox page) with no credentials.
import type { ChannelName } from '../../core/channels.js';
import type {
  Content,
  DeliveryTask,
  Destination,
  Outcome,
  ProviderAdapter,
} from '../../delivery/provider.js';
import { insertOutboxMessage, pruneOutbox, type SqlRunner } from '../../store/index.js';
import { apnsRequest, fcmMessage, isTooLarge, webPushRequest } from '../push/payloads.js';
import { webhookPayload } from '../webhook/adapter.js';

export interface OutboxAdapterOptions {
  channel: Exclude<ChannelName, 'in_app'>;
  /** Recorded on every attempt and message; 'outbox' unless the providers file names it. */
  name?: string;
  sql: SqlRunner;
  /** The table keeps the newest this many (HERALD_OUTBOX_MAX_MESSAGES). */
  maxMessages: number;
  timeoutMs?: number;
  now?: () => Date;
}

/** An attempt is one insert; the lease budget counts it as this long (the providers file can raise it). */
const DEFAULT_TIMEOUT_MS = 1_000;

export function createOutboxAdapter(options: OutboxAdapterOptions): ProviderAdapter {
  const name = options.name ?? 'outbox';
  const now = options.now ?? (() => new Date());
  // Pruning runs every `pruneEvery` messages, so the table holds at most maxMessages + pruneEvery rows per
  // adapter (each channel's outbox, in each process, prunes the shared table).
  const pruneEvery = Math.max(1, Math.floor(options.maxMessages / 100));
  let sincePrune = pruneEvery;
  return {
    name,
    channel: options.channel,
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    accepts: (task) =>
      task.destination.channel === options.channel && task.content.channel === options.channel,
    // Per channel: the default outbox of each channel shares the name "outbox", not its circuit.
    circuitKey: () => `${name}:${options.channel}`,
    async send(task: DeliveryTask): Promise<Outcome> {
      try {
        const id = await insertOutboxMessage(options.sql, {
          deliveryId: task.deliveryId,
          notificationId: task.notificationId,
          userId: task.userId,
          channel: options.channel,
          provider: name,
          destination: destinationOf(task.destination),
          message: messageOf(task, now()),
        });
        if (++sincePrune >= pruneEvery) {
          sincePrune = 0;
          // The message is stored: a failed prune is tried again later, never a reason to store it twice.
          await pruneOutbox(options.sql, options.maxMessages).catch(() => {
            sincePrune = pruneEvery;
          });
        }
        return { kind: 'sent', providerMessageId: `outbox-${id}` };
      } catch (error) {
        return { kind: 'retry', reason: `outbox: ${error instanceof Error ? error.message : String(error)}` };
      }
    },
    close: async () => {},
  };
}

/** The destination whole, as the provider would get it. */
function destinationOf(destination: Destination): string {
  switch (destination.channel) {
    case 'email':
      return destination.address;
    case 'sms':
      return destination.number;
    case 'push':
      return destination.token;
    case 'webhook':
      return destination.url;
  }
}

/** What the channel's real provider would receive for this task. */
export function messageOf(task: DeliveryTask, at: Date): Record<string, unknown> {
  const { content, destination } = task;
  switch (content.channel) {
    case 'email':
      return emailMessage(content, destination);
    case 'sms':
      return {
        to: destinationOf(destination),
        text: content.text,
        encoding: content.encoding,
        segments: content.segments,
      };
    case 'push':
      return pushMessage(task, at);
    case 'webhook':
      return webhookMessage(task, at);
  }
}

function emailMessage(content: Extract<Content, { channel: 'email' }>, destination: Destination) {
  return {
    headers: {
      // The type's own sender when its routing rule names one; else the provider's, which the outbox has not.
      ...(content.from ? { From: content.from } : {}),
      ...(content.replyTo ? { 'Reply-To': content.replyTo } : {}),
      To: destinationOf(destination),
      Subject: content.subject,
      ...content.headers,
    },
    subject: content.subject,
    html: content.html,
    text: content.text,
  };
}

/** The push in the form of the token's platform: APNs headers and payload, the FCM v1 message, or Web Push. */
function pushMessage(task: DeliveryTask, at: Date): Record<string, unknown> {
  const destination = task.destination;
  if (destination.channel !== 'push') throw new Error('push content without a push destination');
  switch (destination.platform) {
    case 'apns': {
      const request = apnsRequest(task, destination.appId, at);
      return 'tooLarge' in request
        ? { platform: 'apns', error: request.tooLarge }
        : { platform: 'apns', ...request };
    }
    case 'fcm': {
      const message = fcmMessage(task, destination.token, at);
      return isTooLarge(message)
        ? { platform: 'fcm', error: message.tooLarge }
        : { platform: 'fcm', message };
    }
    case 'webpush': {
      const request = webPushRequest(task, at);
      if ('tooLarge' in request) return { platform: 'webpush', error: request.tooLarge };
      return {
        platform: 'webpush',
        headers: request.headers,
        payload: JSON.parse(request.payload) as unknown,
      };
    }
  }
}

function webhookMessage(task: DeliveryTask, at: Date) {
  const body = webhookPayload(task, at);
  const timestamp = Math.floor(at.getTime() / 1000);
  const secrets = task.destination.channel === 'webhook' ? task.destination.secrets : [];
  return {
    headers: {
      'content-type': 'application/json',
      'webhook-id': task.deliveryId,
      'webhook-timestamp': String(timestamp),
      // Shown redacted: a real signature would let anyone who reads the outbox post it to the endpoint.
      'webhook-signature': `v1,[redacted: ${secrets.length} signature${secrets.length === 1 ? '' : 's'}]`,
    },
    body: JSON.parse(body) as unknown,
  };
}
