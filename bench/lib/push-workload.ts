// What every push phase sends, and what the emulator child checks each arrival against: one app, one
// notification type, the same title, body and data shape for the bare baseline and for Herald, and one
// device (an APNs token or a Web Push subscription) per recipient, so N notifications make N deliveries.
import { createHash } from 'node:crypto';

export const APP_ID = 'com.example.app';
export const KEY_ID = 'BENCHKEY01';
export const TEAM_ID = 'BENCHTEAM1';
/** Also the collapse key of every notification: the apns-collapse-id both phases send. */
export const PUSH_TYPE = 'bench.push';
export const PUSH_TITLE = 'Hello';
export const PUSH_BODY = 'Your order has shipped and will arrive on Thursday.';
/** Herald's APNs expiry when a notification has no expires_at; node-apn users typically set an hour too. */
export const APNS_EXPIRY_S = 3_600;
/** Herald's Web Push TTL when a notification has no expires_at. */
export const WEB_PUSH_TTL_S = 86_400;

export function pushUser(index: number): string {
  return `push-bench-user-${index}`;
}

/** A stable 64-hex-digit APNs device token for recipient `index` (lower case, as Herald stores them). */
export function apnsToken(index: number): string {
  return createHash('sha256').update(`push-bench-device-${index}`).digest('hex');
}

export function pushData(index: number): { orderId: string; n: number } {
  return { orderId: `o-${index}`, n: index };
}

/** The APNs JSON body Herald sends for an alert push with its default badge (the unread count, 0 here). */
export function apnsBody(notificationId: string, seq: number, index: number): string {
  return JSON.stringify({
    aps: { alert: { title: PUSH_TITLE, body: PUSH_BODY }, badge: 0 },
    notification_id: notificationId,
    seq,
    type: PUSH_TYPE,
    data: pushData(index),
  });
}
