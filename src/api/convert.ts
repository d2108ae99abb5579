// Translation between the wire types (gen/) and the domain's names. Enum maps are total in both
// directions, so an unknown enum number from a client is caught by validation, not passed on.
import { create, type JsonObject } from '@bufbuild/protobuf';
import { type Timestamp, timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  type Delivery,
  DeliveryAttemptSchema,
  DeliverySchema,
  DeliveryStatus,
  type Notification,
  NotificationSchema,
  Platform,
  type Preferences,
  PreferencesSchema,
  Channel as ProtoChannel,
  type PushToken,
  PushTokenSchema,
} from '../../gen/herald/v1/types_pb.js';
import type { ChannelName, DeliveryStatus as DomainStatus } from '../core/channels.js';
import { maskDestination } from '../core/destinations.js';
import type { NotificationDetail, PushTokenRow, StoredPreferences } from '../store/index.js';

const channelToProto: Record<ChannelName, ProtoChannel> = {
  in_app: ProtoChannel.IN_APP,
  push: ProtoChannel.PUSH,
  email: ProtoChannel.EMAIL,
  sms: ProtoChannel.SMS,
  webhook: ProtoChannel.WEBHOOK,
};
const channelFromProtoMap = new Map(Object.entries(channelToProto).map(([k, v]) => [v, k as ChannelName]));

/** undefined for UNSPECIFIED or a number this server does not know. */
export function channelFromProto(value: ProtoChannel): ChannelName | undefined {
  return channelFromProtoMap.get(value);
}

export function channelToProtoValue(channel: string): ProtoChannel {
  return channelToProto[channel as ChannelName] ?? ProtoChannel.UNSPECIFIED;
}

const statusToProto: Record<DomainStatus, DeliveryStatus> = {
  queued: DeliveryStatus.QUEUED,
  sending: DeliveryStatus.SENDING,
  sent: DeliveryStatus.SENT,
  delivered: DeliveryStatus.DELIVERED,
  failed: DeliveryStatus.FAILED,
  expired: DeliveryStatus.EXPIRED,
  skipped: DeliveryStatus.SKIPPED,
  cancelled: DeliveryStatus.CANCELLED,
};

export function statusToProtoValue(status: string): DeliveryStatus {
  return statusToProto[status as DomainStatus] ?? DeliveryStatus.UNSPECIFIED;
}

const statusFromProtoMap = new Map(Object.entries(statusToProto).map(([k, v]) => [v, k as DomainStatus]));

/** undefined for UNSPECIFIED or a number this server does not know. */
export function statusFromProto(value: DeliveryStatus): DomainStatus | undefined {
  return statusFromProtoMap.get(value);
}

export const platformNames = new Map<Platform, string>([
  [Platform.APNS, 'apns'],
  [Platform.FCM, 'fcm'],
  [Platform.WEB_PUSH, 'webpush'],
]);
const platformFromName = new Map([...platformNames].map(([k, v]) => [v, k]));

function ts(date: Date | null | undefined): Timestamp | undefined {
  return date ? timestampFromDate(date) : undefined;
}

/** A notification as the inbox, the stream and the list show it (without its deliveries). */
export function inboxNotificationToProto(n: NotificationDetail['notification']): Notification {
  return notificationToProto({ notification: n, deliveries: [] });
}

/**
 * Only what a caller allowed to cancel but perhaps not to read may see: the notification's id and each
 * delivery's id, channel, step and status; no content, no reasons, no attempts.
 */
export function notificationStatusToProto(detail: NotificationDetail): Notification {
  return create(NotificationSchema, {
    id: detail.notification.id,
    deliveries: detail.deliveries.map((d) =>
      create(DeliverySchema, {
        id: d.id,
        channel: channelToProtoValue(d.channel),
        step: d.step,
        status: statusToProtoValue(d.status),
      }),
    ),
  });
}

/**
 * A notification as its own recipient (a user token) may see it: the content that was sent to them, and for
 * each delivery its status and the kind of reason (`failed`, `quiet_hours`, ...), never the reason's text,
 * the provider, errors or attempts. Those can quote a receiver's reply, redirect targets or internal
 * addresses, and are for operators (API keys with "read").
 */
export function notificationToUserProto(detail: NotificationDetail): Notification {
  const full = notificationToProto(detail);
  for (const d of full.deliveries) {
    d.reason = reasonKind(d.reason);
    d.provider = '';
    d.lastError = '';
    d.providerMessageId = '';
    d.attempts = [];
    // Their own (masked) address or token is theirs to see; which webhook endpoint took it is not.
    if (d.channel === ProtoChannel.WEBHOOK) d.destination = '';
  }
  return full;
}

/** `failed: mailer answered 503` -> `failed`; a reason without a kind prefix says nothing more. */
export function reasonKind(reason: string): string {
  const match = /^([a-z_]+):/.exec(reason);
  return match?.[1] ?? '';
}

export function notificationToProto(detail: NotificationDetail): Notification {
  const n = detail.notification;
  return create(NotificationSchema, {
    id: n.id,
    userId: n.userId,
    seq: BigInt(n.seq),
    type: n.type,
    priority: n.priority,
    data: n.data as JsonObject,
    title: n.title ?? '',
    body: n.body ?? '',
    createdAt: ts(n.createdAt),
    sendAt: ts(n.sendAt),
    expiresAt: ts(n.expiresAt),
    readAt: ts(n.readAt),
    seenAt: ts(n.seenAt),
    archivedAt: ts(n.archivedAt),
    deliveries: detail.deliveries.map(deliveryToProto),
  });
}

function deliveryToProto(d: NotificationDetail['deliveries'][number]): Delivery {
  return create(DeliverySchema, {
    id: d.id,
    channel: channelToProtoValue(d.channel),
    step: d.step,
    status: statusToProtoValue(d.status),
    reason: d.reason ?? '',
    provider: d.provider ?? '',
    attemptCount: d.attempts,
    nextAttemptAt: ts(d.nextAttemptAt),
    lastError: d.lastError ?? '',
    providerMessageId: d.providerMessageId ?? '',
    smsSegments: d.smsSegments ?? 0,
    event: d.event,
    createdAt: ts(d.createdAt),
    updatedAt: ts(d.updatedAt),
    destination: maskDestination(d.channel as ChannelName, d.pushToken ?? d.destination ?? d.endpointId),
    attempts: d.attemptLog.map((a) =>
      create(DeliveryAttemptSchema, {
        provider: a.provider,
        destination: a.destination ?? '',
        outcome: a.outcome,
        statusCode: a.statusCode ?? 0,
        latencyMs: a.latencyMs,
        error: a.error ?? '',
        response: a.response ?? '',
        providerMessageId: a.providerMessageId ?? '',
        startedAt: ts(a.startedAt),
      }),
    ),
  });
}

export function pushTokenToProto(row: PushTokenRow): PushToken {
  return create(PushTokenSchema, {
    id: row.id,
    userId: row.userId,
    platform: platformFromName.get(row.platform) ?? Platform.UNSPECIFIED,
    deviceId: row.deviceId ?? '',
    appId: row.appId ?? '',
    active: row.active,
    createdAt: ts(row.createdAt),
    lastSeenAt: ts(row.lastSeenAt),
  });
}

export function preferencesToProto(p: StoredPreferences): Preferences {
  return create(PreferencesSchema, {
    userId: p.userId,
    channels: Object.entries(p.channels).map(([channel, enabled]) => ({
      channel: channelToProtoValue(channel),
      enabled,
    })),
    types: Object.entries(p.types).flatMap(([type, switches]) =>
      Object.entries(switches).map(([channel, enabled]) => ({
        type,
        channel: channelToProtoValue(channel),
        enabled,
      })),
    ),
    quietHours: p.quietHours ?? undefined,
    updatedAt: ts(p.updatedAt),
  });
}
