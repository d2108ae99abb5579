// What each push platform receives for one task: the APNs headers and JSON payload, the FCM HTTP v1 message,
// and the Web Push headers and (encrypted on the wire) JSON payload. One definition, used by the real adapters
// and by the outbox, so what the outbox shows is exactly what a provider would be sent.
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
const APNS_MAX_COLLAPSE_ID_BYTES = 64;
/** PRIORITY_LOW in herald.v1.Priority. */
const LOW_PRIORITY = 1;

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

/** `text` cut to at most `maxBytes` of UTF-8, at a character boundary. */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let out = '';
  let bytes = 0;
  for (const char of text) {
    const size = Buffer.byteLength(char);
    if (bytes + size > maxBytes) break;
    out += char;
    bytes += size;
  }
  return out;
}

export interface ApnsRequest {
  headers: Record<string, string>;
  payload: Record<string, unknown>;
}

/** `topic`: the app's bundle id (its APNs topic). */
export function apnsRequest(task: DeliveryTask, topic: string | null, now: Date): ApnsRequest {
  const content = pushContentOf(task);
  const background = content.dataOnly;
  const aps: Record<string, unknown> = background
    ? { 'content-available': 1 }
    : {
        alert: {
          ...(content.title ? { title: content.title } : {}),
          ...(content.body ? { body: content.body } : {}),
        },
        ...(content.badge === null ? {} : { badge: content.badge }),
        ...(content.sound ? { sound: content.sound } : {}),
        ...(content.threadId ? { 'thread-id': content.threadId } : {}),
        ...(content.category ? { category: content.category } : {}),
        ...(content.imageUrl ? { 'mutable-content': 1 } : {}),
      };
  return {
    headers: {
      'apns-push-type': background ? 'background' : 'alert',
      // Background pushes must be 5; 10 wakes the device at once, for HIGH and CRITICAL only.
      'apns-priority': !background && content.urgent ? '10' : '5',
      'apns-expiration': String(
        Math.floor(now.getTime() / 1000) + secondsLeft(task, now, APNS_DEFAULT_EXPIRY_S),
      ),
      'apns-collapse-id': truncateUtf8(content.collapseKey, APNS_MAX_COLLAPSE_ID_BYTES),
      'apns-id': task.deliveryId,
      ...(topic ? { 'apns-topic': topic } : {}),
    },
    payload: { aps, ...heraldFields(task, content), data: content.data },
  };
}

/** FCM data values are strings: strings as they are, anything else as JSON. */
function fcmData(task: DeliveryTask, content: PushContent): Record<string, string> {
  const data: Record<string, string> = {};
  for (const [key, value] of Object.entries(content.data)) {
    data[key] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  for (const [key, value] of Object.entries(heraldFields(task, content)))
    data[`herald_${key}`] = String(value);
  return data;
}

/** The FCM HTTP v1 message for one token, with an `apns` block for iOS apps registered through FCM. */
export function fcmMessage(task: DeliveryTask, token: string, now: Date): Record<string, unknown> {
  const content = pushContentOf(task);
  const apns = apnsRequest(task, null, now);
  const { 'apns-id': _id, ...apnsHeaders } = apns.headers;
  const notification = content.dataOnly
    ? undefined
    : {
        ...(content.title ? { title: content.title } : {}),
        ...(content.body ? { body: content.body } : {}),
        ...(content.imageUrl ? { image: content.imageUrl } : {}),
      };
  const androidNotification = content.dataOnly
    ? undefined
    : {
        ...(content.sound ? { sound: content.sound } : {}),
        ...(content.threadId ? { tag: content.threadId } : {}),
        ...(content.category ? { click_action: content.category } : {}),
      };
  return {
    token,
    ...(notification ? { notification } : {}),
    data: fcmData(task, content),
    android: {
      priority: content.urgent ? 'HIGH' : 'NORMAL',
      ...(task.expiresAt ? { ttl: `${secondsLeft(task, now, 0)}s` } : {}),
      collapse_key: content.collapseKey,
      ...(androidNotification && Object.keys(androidNotification).length > 0
        ? { notification: androidNotification }
        : {}),
    },
    apns: { headers: apnsHeaders, payload: { aps: apns.payload.aps } },
  };
}

export interface WebPushRequest {
  /** The TTL, Urgency and Topic headers. */
  headers: { TTL: string; Urgency: 'low' | 'normal' | 'high'; Topic: string };
  /** The JSON plaintext, at most WEB_PUSH_MAX_PAYLOAD_BYTES (the body shortened when needed). */
  payload: string;
}

/** Web Push: the payload a service worker receives, shortened to fit, and its delivery headers. */
export function webPushRequest(task: DeliveryTask, now: Date): WebPushRequest | { tooLarge: string } {
  const content = pushContentOf(task);
  const base = { ...heraldFields(task, content), title: content.title, data: content.data };
  const encode = (body: string | null) => JSON.stringify({ ...base, body });
  let payload = encode(content.body);
  if (Buffer.byteLength(payload) > WEB_PUSH_MAX_PAYLOAD_BYTES) {
    // Shorten the body alone, at a character boundary, by what the JSON is over (escapes counted as encoded).
    const fixed = Buffer.byteLength(encode(''));
    const room = WEB_PUSH_MAX_PAYLOAD_BYTES - fixed;
    if (room < 0 || content.body === null) {
      return { tooLarge: `payload is ${Buffer.byteLength(payload)} bytes without room for the body` };
    }
    let body = truncateUtf8(content.body, room);
    while (Buffer.byteLength(encode(body)) > WEB_PUSH_MAX_PAYLOAD_BYTES) body = body.slice(0, -1);
    // A lone high surrogate left at the end would not be valid UTF-16 text.
    if (/[\uD800-\uDBFF]$/.test(body)) body = body.slice(0, -1);
    payload = encode(body);
  }
  return {
    headers: {
      TTL: String(secondsLeft(task, now, WEB_PUSH_DEFAULT_TTL_S)),
      Urgency: content.urgent ? 'high' : task.priority <= LOW_PRIORITY ? 'low' : 'normal',
      Topic: webPushTopic(content.collapseKey, (text) =>
        createHash('sha256').update(text).digest('base64url'),
      ),
    },
    payload,
  };
}
