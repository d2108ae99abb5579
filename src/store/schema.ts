// The drizzle schema: the source of truth for the tables and for the SQL migrations in drizzle/.
// Every hot table carries user_id so that it can later be sharded by user (docs/architecture.md).
import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  smallint,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import type { PushOptions } from '../core/push-options.js';

const timestamptz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });
const createdAt = () => timestamptz('created_at').notNull().defaultNow();

export const recipients = pgTable('recipients', {
  userId: text('user_id').primaryKey(),
  email: text('email'),
  phone: text('phone'),
  locale: text('locale'),
  timezone: text('timezone'),
  // The last seq handed out to this user's notifications; incremented under the row lock in Send.
  lastSeq: bigint('last_seq', { mode: 'number' }).notNull().default(0),
  /** Bumped by every inbox state change (mark), so live sessions can order the unread counts they get. */
  inboxVersion: bigint('inbox_version', { mode: 'number' }).notNull().default(0),
  createdAt: createdAt(),
  updatedAt: timestamptz('updated_at').notNull().defaultNow(),
});

export const notifications = pgTable(
  'notifications',
  {
    id: uuid('id').primaryKey(),
    userId: text('user_id').notNull(),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    type: text('type').notNull(),
    priority: smallint('priority').notNull(),
    data: jsonb('data').$type<Record<string, unknown>>().notNull(),
    title: text('title'),
    body: text('body'),
    // The API key that sent it (null when sent by the CLI).
    senderKeyId: uuid('sender_key_id'),
    idempotencyKey: text('idempotency_key'),
    sendAt: timestamptz('send_at').notNull(),
    expiresAt: timestamptz('expires_at'),
    // SendRequest.push: how PUSH deliveries are presented (null: the defaults).
    pushOptions: jsonb('push_options').$type<PushOptions>(),
    // CRITICAL priority or a critical type: bypasses opt-outs and quiet hours (never suppressions).
    critical: boolean('critical').notNull().default(false),
    // In the user's in-app inbox (and stream): it has an in-app delivery that was not skipped.
    inbox: boolean('inbox').notNull().default(false),
    cancelledAt: timestamptz('cancelled_at'),
    // The W3C traceparent of the Send that made it (null when tracing is off): its delivery attempts join
    // that trace, whichever instance dispatches them.
    traceParent: text('trace_parent'),
    createdAt: createdAt(),
    readAt: timestamptz('read_at'),
    seenAt: timestamptz('seen_at'),
    archivedAt: timestamptz('archived_at'),
  },
  (t) => [
    uniqueIndex('notifications_user_seq').on(t.userId, t.seq),
    // Exact unread counts without scanning the inbox.
    index('notifications_unread').on(t.userId).where(sql`inbox and read_at is null and archived_at is null`),
    // The console's activity view: newest first across all users, or for one user (cursor: created_at, id).
    index('notifications_created').on(t.createdAt, t.id),
    index('notifications_user_created').on(t.userId, t.createdAt, t.id),
  ],
);

export const deliveries = pgTable(
  'deliveries',
  {
    id: uuid('id').primaryKey(),
    notificationId: uuid('notification_id')
      .notNull()
      .references(() => notifications.id, { onDelete: 'cascade' }),
    userId: text('user_id').notNull(),
    channel: text('channel').notNull(),
    step: integer('step').notNull().default(0),
    // An escalation step's condition: cancelled when the notification is 'read' (or 'seen') before it is due.
    cancelUnless: text('cancel_unless'),
    // Webhook deliveries: the endpoint, and what is sent ('notification', or a status event such as
    // 'notification.failed' about this notification).
    endpointId: uuid('endpoint_id'),
    // Push deliveries: the token this delivery was planned for (one delivery per active token).
    pushTokenId: uuid('push_token_id'),
    // What the delivery was planned for, as the attempt uses it: the e-mail address, the E.164 number, the
    // push token's id or the webhook endpoint's id. Shown masked (core/destinations.ts).
    destination: text('destination'),
    event: text('event').notNull().default('notification'),
    // A status event's data (the delivery it reports on); null for notifications.
    payload: jsonb('payload').$type<Record<string, unknown>>(),
    status: text('status').notNull(),
    reason: text('reason'),
    provider: text('provider'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: timestamptz('next_attempt_at').notNull(),
    // The retry policy's max age counts from here.
    firstAttemptAt: timestamptz('first_attempt_at'),
    leaseUntil: timestamptz('lease_until'),
    lastError: text('last_error'),
    providerMessageId: text('provider_message_id'),
    // SMS: the segments the sent message took (what the provider bills).
    smsSegments: integer('sms_segments'),
    createdAt: createdAt(),
    updatedAt: timestamptz('updated_at').notNull().defaultNow(),
  },
  (t) => [
    index('deliveries_notification').on(t.notificationId),
    // The dispatcher's claim query scans only what is due on its channel, and leases that ran out (a
    // dispatcher died). By channel first: in-app deliveries stay queued until their user connects (no
    // dispatcher claims them), and a claim for e-mail must not walk past every one of them.
    index('deliveries_due_by_channel').on(t.channel, t.nextAttemptAt).where(sql`status = 'queued'`),
    index('deliveries_leased').on(t.leaseUntil).where(sql`status = 'sending'`),
    // Delivery statistics by minute read only the window asked for.
    index('deliveries_created').on(t.createdAt),
  ],
);

export const deliveryAttempts = pgTable(
  'delivery_attempts',
  {
    id: uuid('id').primaryKey(),
    deliveryId: uuid('delivery_id')
      .notNull()
      .references(() => deliveries.id, { onDelete: 'cascade' }),
    // The delivery's channel, so figures over a window of attempts need not visit each delivery (null on
    // attempts recorded before migration 0012).
    channel: text('channel'),
    provider: text('provider').notNull(),
    // The destination this attempt used, masked (an attempt log never holds a whole address).
    destination: text('destination'),
    outcome: text('outcome').notNull(),
    statusCode: integer('status_code'),
    latencyMs: integer('latency_ms').notNull(),
    error: text('error'),
    // The start of the provider's answer (webhooks: the response body), truncated.
    response: text('response'),
    // The provider's id of the message this attempt handed over (sent attempts): provider feedback (SES
    // bounces, complaints, deliveries) finds its delivery by it.
    providerMessageId: text('provider_message_id'),
    startedAt: timestamptz('started_at').notNull(),
  },
  (t) => [
    index('delivery_attempts_delivery').on(t.deliveryId),
    // Delivery statistics (attempts and latency by minute) and provider health read only a recent window.
    index('delivery_attempts_started').on(t.startedAt),
    index('delivery_attempts_provider_message_id')
      .on(t.providerMessageId)
      .where(sql`provider_message_id is not null`),
  ],
);

// Per-type switches: { "order.shipped": { "email": false } }.
export type TypeSwitches = Record<string, Record<string, boolean>>;
export type ChannelSwitches = Record<string, boolean>;

export const preferences = pgTable('preferences', {
  userId: text('user_id').primaryKey(),
  channels: jsonb('channels').$type<ChannelSwitches>().notNull().default({}),
  types: jsonb('types').$type<TypeSwitches>().notNull().default({}),
  quietStart: text('quiet_start'),
  quietEnd: text('quiet_end'),
  quietTimezone: text('quiet_timezone'),
  updatedAt: timestamptz('updated_at').notNull().defaultNow(),
});

export const pushTokens = pgTable(
  'push_tokens',
  {
    id: uuid('id').primaryKey(),
    userId: text('user_id').notNull(),
    platform: text('platform').notNull(),
    // APNs/FCM token, or the Web Push endpoint URL.
    token: text('token').notNull(),
    webPushP256dh: text('web_push_p256dh'),
    webPushAuth: text('web_push_auth'),
    deviceId: text('device_id'),
    appId: text('app_id'),
    active: boolean('active').notNull().default(true),
    invalidReason: text('invalid_reason'),
    // When a provider said the token is gone, or it was found stale (null for tokens unregistered by their user).
    invalidatedAt: timestamptz('invalidated_at'),
    createdAt: createdAt(),
    lastSeenAt: timestamptz('last_seen_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('push_tokens_platform_token').on(t.platform, t.token),
    index('push_tokens_user').on(t.userId),
  ],
);

export const apiKeys = pgTable('api_keys', {
  id: uuid('id').primaryKey(),
  name: text('name').notNull(),
  // The first characters of the key, for telling keys apart in listings; never enough to use it.
  prefix: text('prefix').notNull(),
  // Hex SHA-256 of the whole key. The key itself is never stored.
  keyHash: text('key_hash').notNull().unique(),
  scopes: text('scopes').array().notNull(),
  createdAt: createdAt(),
  revokedAt: timestamptz('revoked_at'),
});

// Idempotency keys live apart from notifications so that a key can expire (24 h) and be reused while the
// uniqueness that makes concurrent duplicates impossible stays a plain primary key.
export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    senderKeyId: uuid('sender_key_id').notNull(),
    key: text('key').notNull(),
    requestHash: text('request_hash').notNull(),
    notificationId: uuid('notification_id').notNull(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.senderKeyId, t.key] })],
);

// Routing per notification type: ordered steps, each with channels, a delay after send_at and an optional
// condition that cancels the step ('read', 'seen'); step 0 is what is sent at once.
export interface RoutingStep {
  channels: string[];
  delaySeconds: number;
  cancelUnless: 'read' | 'seen' | null;
}

export const routingRules = pgTable('routing_rules', {
  type: text('type').primaryKey(),
  steps: jsonb('steps').$type<RoutingStep[]>().notNull(),
  critical: boolean('critical').notNull().default(false),
  // This type's e-mail sender, instead of the providers' (null: theirs).
  emailFrom: text('email_from'),
  emailReplyTo: text('email_reply_to'),
  // The most segments this type's SMS may take (null: 1).
  smsMaxSegments: integer('sms_max_segments'),
  createdAt: createdAt(),
  updatedAt: timestamptz('updated_at').notNull().defaultNow(),
});

export const templates = pgTable(
  'templates',
  {
    type: text('type').notNull(),
    channel: text('channel').notNull(),
    // BCP 47 tag, or 'default'.
    locale: text('locale').notNull(),
    // Title, or e-mail subject.
    title: text('title'),
    body: text('body').notNull(),
    // E-mail only: the plain-text part (without it, the body rendered without HTML escaping).
    text: text('text'),
    createdAt: createdAt(),
    updatedAt: timestamptz('updated_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.type, t.channel, t.locale] })],
);

export const webhookEndpoints = pgTable('webhook_endpoints', {
  id: uuid('id').primaryKey(),
  url: text('url').notNull(),
  description: text('description').notNull().default(''),
  // Notification types (exact, or a prefix pattern such as 'order.*') and status events; empty = every type.
  eventTypes: text('event_types').array().notNull(),
  enabled: boolean('enabled').notNull().default(true),
  disabledReason: text('disabled_reason'),
  // The signing secret (whsec_...). Kept in clear because signing needs it, like any webhook sender's.
  secret: text('secret').notNull(),
  // After a rotation the old secret keeps signing too until previous_secret_until.
  previousSecret: text('previous_secret'),
  previousSecretUntil: timestamptz('previous_secret_until'),
  // Start of the current run of failed attempts; null after a success.
  failingSince: timestamptz('failing_since'),
  createdAt: createdAt(),
  updatedAt: timestamptz('updated_at').notNull().defaultNow(),
});

// Addresses that must never be contacted again on a channel (hard bounce, complaint, unsubscribe, STOP).
export const suppressions = pgTable(
  'suppressions',
  {
    channel: text('channel').notNull(),
    address: text('address').notNull(),
    reason: text('reason').notNull(),
    // The delivery whose provider answer caused it; null when an operator added it.
    deliveryId: uuid('delivery_id'),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.channel, t.address] })],
);

// What the outbox provider captured: exactly what a real provider would have received, per message. Bounded
// (HERALD_OUTBOX_MAX_MESSAGES): the oldest rows are pruned.
export const outboxMessages = pgTable(
  'outbox_messages',
  {
    // UUIDv7: newest first is id order.
    id: uuid('id').primaryKey(),
    deliveryId: uuid('delivery_id').notNull(),
    notificationId: uuid('notification_id').notNull(),
    userId: text('user_id').notNull(),
    channel: text('channel').notNull(),
    provider: text('provider').notNull(),
    // Whole, as a provider would get it: the address, number, token or endpoint URL.
    destination: text('destination').notNull(),
    // The channel's message: e-mail headers, subject, HTML and text; SMS text, encoding and segments; the
    // push payload per platform; the webhook's headers and body.
    message: jsonb('message').$type<Record<string, unknown>>().notNull(),
    createdAt: createdAt(),
  },
  (t) => [index('outbox_messages_channel').on(t.channel, t.id)],
);
