// What each push platform receives for one task: the APNs headers and JSON payload, the FCM HTTP v1 message,
// and the Web Push headers and (encrypted on the wire) JSON payload. One definition, used by the real adapters
// and by the outbox, so what the outbox shows is exactly what a provider would be sent.
//
// Every platform caps the payload (APNs and FCM 4 KiB, Web Push 3,993 bytes of plaintext): a body too long
// for it is shortened at a character boundary (the JSON stays whole); only data too large on its own fails.
import { createHash } from 'node:crypto';
import { webPushTopic } from '../../core/push-options.js';
import type { Content, DeliveryTask } from '../../delivery/provider.js';

type PushContent = Extract<Content, { channel: 'push' }>;

/** APNs stores an undelivered notification this long when the notification has no expires_at. */
export const APNS_DEFAULT_EXPIRY_S = 3_600;
/** Web Push TTL when the notification has no expires_at: a browser offline for a day still gets it. */
export const WEB_PUSH_DEFAULT_TTL_S = 86_400;
/** The largest Web Push plaintext (4096-byte record minus aes128gcm overhead). */
export const WEB_PUSH_MAX_PAYLOAD_BYTES = 3_993;
/** APNs' payload limit, and FCM's (the message without the token). */
export const APNS_MAX_PAYLOAD_BYTES = 4_096;
export const FCM_MAX_PAYLOAD_BYTES = 4_000;
/** FCM keeps an undelivered message at most 28 days. */
const FCM_MAX_TTL_S = 2_419_200;
const APNS_MAX_COLLAPSE_ID_BYTES = 64;
/** PRIORITY_LOW in herald.v1.Priority. */
const LOW_PRIORITY = 1;
/** Data keys FCM reserves: such a key makes FCM refuse the message, so it travels in herald_data only. */
const FCM_RESERVED_KEY = /^(from|notification|message_type|google|gcm)/;

export type TooLarge = { tooLarge: string };

export function isTooLarge(value: object): value is TooLarge {
  return typeof (value as Partial<TooLarge>).tooLarge === 'string';
}

export function pushContentOf(task: DeliveryTask): PushContent {
  if (task.content.channel !== 'push') throw new Error(`push payload for ${task.content.channel} content`);
  return task.content;
}

/** Seconds until `expiresAt`, at least 0; `fallback` when there is none. */
function secondsLeft(task: DeliveryTask, now: Date, fallback: number): number {
  if (!task.expiresAt) return fallback;
  return Math.max(0, Math.floor((task.expiresAt.getTime() - now.getTime()) / 1000));
}

/** The app-facing fields every platform carries besides title and body. */
function heraldFields(task: DeliveryTask, content: PushContent) {
  return {
    notification_id: task.notificationId,
    seq: task.seq,
    type: task.type,
    ...(content.clickUrl ? { click_url: content.clickUrl } : {}),
    ...(content.imageUrl ? { image_url: content.imageUrl } : {}),
  };
}

/**
 * The payload `encode(body)` builds, with `body` shortened (a prefix, whole characters) until the encoding is
 * at most `maxBytes`; TooLarge when even an empty body does not fit. Binary search over the characters: the
 * encoded size grows with the prefix, escapes included.
 */
export function fitBody<T>(
  body: string | null,
  maxBytes: number,
  encode: (body: string | null) => T,
  size: (encoded: T) => number,
): T | TooLarge {
  const whole = encode(body);
  if (size(whole) <= maxBytes) return whole;
  const empty = encode(body === null ? null : '');
  if (body === null || size(empty) > maxBytes) {
    return { tooLarge: `payload is ${size(whole)} bytes, over ${maxBytes} even without the body` };
  }
  const chars = Array.from(body);
  let low = 0;
  let high = chars.length;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (size(encode(chars.slice(0, mid).join(''))) <= maxBytes) low = mid;
    else high = mid - 1;
  }
  return encode(chars.slice(0, low).join(''));
}

const jsonBytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

/** Longer than APNs takes, or not a plain token: a digest of it (one key, one collapse id). */
function apnsCollapseId(key: string): string {
  return Buffer.byteLength(key) <= APNS_MAX_COLLAPSE_ID_BYTES
    ? key
    : createHash('sha256').update(key).digest('base64url');
}

function apsOf(content: PushContent, body: string | null): Record<string, unknown> {
  if (content.dataOnly) return { 'content-available': 1 };
  return {
    alert: { ...(content.title ? { title: content.title } : {}), ...(body ? { body } : {}) },
    ...(content.badge === null ? {} : { badge: content.badge }),
    // An alert makes the device's default sound unless the Send names another.
    sound: content.sound ?? 'default',
    ...(content.threadId ? { 'thread-id': content.threadId } : {}),
    ...(content.category ? { category: content.category } : {}),
    ...(content.imageUrl ? { 'mutable-content': 1 } : {}),
  };
}

function apnsHeaders(task: DeliveryTask, content: PushContent, now: Date): Record<string, string> {
  const background = content.dataOnly;
  return {
    'apns-push-type': background ? 'background' : 'alert',
    // Background pushes must be 5; 10 wakes the device at once, for HIGH and CRITICAL only.
    'apns-priority': !background && content.urgent ? '10' : '5',
    'apns-expiration': String(
      Math.floor(now.getTime() / 1000) + secondsLeft(task, now, APNS_DEFAULT_EXPIRY_S),
    ),
    ...(content.collapseKey ? { 'apns-collapse-id': apnsCollapseId(content.collapseKey) } : {}),
  };
}

export interface ApnsRequest {
  headers: Record<string, string>;
  payload: Record<string, unknown>;
}

/** `topic`: the app's bundle id (its APNs topic). */
export function apnsRequest(task: DeliveryTask, topic: string | null, now: Date): ApnsRequest | TooLarge {
  const content = pushContentOf(task);
  const payload = fitBody(
    content.body,
    APNS_MAX_PAYLOAD_BYTES,
    (body) => ({ aps: apsOf(content, body), ...heraldFields(task, content), data: content.data }),
    jsonBytes,
  );
  if ('tooLarge' in payload) return payload;
  return {
    headers: {
      ...apnsHeaders(task, content, now),
      'apns-id': task.deliveryId,
      ...(topic ? { 'apns-topic': topic } : {}),
    },
    payload,
  };
}

/**
 * FCM data values are strings: the data whole as JSON in herald_data, and each field again on its own (strings
 * as they are, others as JSON) unless FCM reserves its name, with Herald's fields as herald_*.
 */
function fcmData(task: DeliveryTask, content: PushContent): Record<string, string> {
  const data: Record<string, string> = {};
  for (const [key, value] of Object.entries(content.data)) {
    if (!FCM_RESERVED_KEY.test(key) && !key.startsWith('herald_')) {
      data[key] = typeof value === 'string' ? value : JSON.stringify(value);
    }
  }
  for (const [key, value] of Object.entries(heraldFields(task, content)))
    data[`herald_${key}`] = String(value);
  if (content.threadId) data.herald_thread_id = content.threadId;
  if (content.category) data.herald_category = content.category;
  data.herald_data = JSON.stringify(content.data);
  return data;
}

/** The FCM HTTP v1 message for one token, with an `apns` block for iOS apps registered through FCM. */
export function fcmMessage(task: DeliveryTask, token: string, now: Date): Record<string, unknown> | TooLarge {
  const content = pushContentOf(task);
  const data = fcmData(task, content);
  const android = {
    priority: content.urgent ? 'HIGH' : 'NORMAL',
    ...(task.expiresAt ? { ttl: `${Math.min(FCM_MAX_TTL_S, secondsLeft(task, now, 0))}s` } : {}),
    ...(content.collapseKey ? { collapse_key: content.collapseKey } : {}),
    ...(content.dataOnly || !content.sound ? {} : { notification: { sound: content.sound } }),
  };
  return fitBody(
    content.body,
    FCM_MAX_PAYLOAD_BYTES,
    (body) => ({
      token,
      ...(content.dataOnly
        ? {}
        : {
            notification: {
              ...(content.title ? { title: content.title } : {}),
              ...(body ? { body } : {}),
              ...(content.imageUrl ? { image: content.imageUrl } : {}),
            },
          }),
      data,
      android,
      apns: { headers: apnsHeaders(task, content, now), payload: { aps: apsOf(content, body) } },
    }),
    (message) => jsonBytes({ ...message, token: '' }),
  );
}

export interface WebPushRequest {
  /** The TTL and Urgency headers, and Topic when the Send set a collapse key. */
  headers: { TTL: string; Urgency: 'low' | 'normal' | 'high'; Topic?: string };
  /** The JSON plaintext, at most WEB_PUSH_MAX_PAYLOAD_BYTES (the body shortened when needed). */
  payload: string;
}

/** Web Push: the payload a service worker receives, shortened to fit, and its delivery headers. */
export function webPushRequest(task: DeliveryTask, now: Date): WebPushRequest | TooLarge {
  const content = pushContentOf(task);
  const base = { ...heraldFields(task, content), title: content.title, data: content.data };
  const payload = fitBody(
    content.body,
    WEB_PUSH_MAX_PAYLOAD_BYTES,
    (body) => JSON.stringify({ ...base, body }),
    Buffer.byteLength,
  );
  if (typeof payload !== 'string') return payload;
  return {
    headers: {
      TTL: String(secondsLeft(task, now, WEB_PUSH_DEFAULT_TTL_S)),
      Urgency: content.urgent ? 'high' : task.priority <= LOW_PRIORITY ? 'low' : 'normal',
      ...(content.collapseKey
        ? {
            Topic: webPushTopic(content.collapseKey, (text) =>
              createHash('sha256').update(text).digest('base64url'),
            ),
          }
        : {}),
    },
    payload,
  };
}
