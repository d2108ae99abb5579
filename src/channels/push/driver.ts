// Push around any provider: one delivery per active token (planned at Send); preferences and quiet hours gate
// it; the token must still be registered, active and the recipient's own when the attempt starts; a token a provider reports gone
// (APNs 410 Unregistered, FCM UNREGISTERED, Web Push 404/410) is deactivated with the reason and the time.
import { maskToken } from '../../core/destinations.js';
import type { ChannelDriver, RenderedParts } from '../../delivery/channel.js';
import type { Content, Destination, PushPlatform } from '../../delivery/provider.js';
import type { ClaimedDelivery } from '../../store/deliveries.js';
import { invalidatePushToken, type SqlRunner } from '../../store/index.js';
import { preferenceGate } from '../gates.js';
import { type PushMetrics, reasonLabel } from './metrics.js';

/** PRIORITY_HIGH in herald.v1.Priority: HIGH and CRITICAL are urgent. */
const HIGH_PRIORITY = 3;

const platforms: ReadonlySet<string> = new Set<PushPlatform>(['apns', 'fcm', 'webpush']);

export function createPushDriver(deps: { sql: SqlRunner; metrics: PushMetrics }): ChannelDriver {
  return {
    channel: 'push',
    markdown: false,
    gate: preferenceGate,
    destination: pushDestination,
    describe: (destination) => (destination.channel === 'push' ? maskToken(destination.token) : ''),
    content: pushContent,
    async attempted(claim, outcome) {
      deps.metrics.attempt(claim.push_platform ?? 'unknown', outcome.kind);
    },
    async invalidate(_claim, destination, outcome) {
      if (destination.channel !== 'push') return;
      const since = outcome.since ?? null;
      if (await invalidatePushToken(deps.sql, destination.tokenId, outcome.reason, since)) {
        deps.metrics.deactivated(destination.platform, reasonLabel(outcome.code));
      }
    },
  };
}

function pushDestination(claim: ClaimedDelivery): Destination | { unusable: string } {
  if (!claim.push_token_id || claim.push_token === null) {
    return { unusable: 'no_address: the push token was unregistered' };
  }
  if (!claim.push_active) return { unusable: 'no_address: the push token was deactivated' };
  // The device changed hands since planning: its new owner must not get this user's notification.
  if (claim.push_user_id !== claim.user_id) {
    return { unusable: 'no_address: the push token now belongs to another user' };
  }
  if (!claim.push_platform || !platforms.has(claim.push_platform)) {
    return { unusable: `no_address: unknown push platform ${claim.push_platform}` };
  }
  const webPush = claim.push_platform === 'webpush';
  if (webPush && (!claim.push_p256dh || !claim.push_auth)) {
    return { unusable: 'no_address: the Web Push subscription has no keys' };
  }
  return {
    channel: 'push',
    tokenId: claim.push_token_id,
    platform: claim.push_platform as PushPlatform,
    appId: claim.push_app_id,
    token: claim.push_token,
    subscription: webPush
      ? { endpoint: claim.push_token, keys: { p256dh: claim.push_p256dh!, auth: claim.push_auth! } }
      : null,
  };
}

export function pushContent(claim: ClaimedDelivery, parts: RenderedParts): Content {
  const options = claim.push_options ?? {};
  return {
    channel: 'push',
    title: parts.title,
    body: parts.body,
    data: claim.data,
    urgent: claim.priority >= HIGH_PRIORITY,
    collapseKey: options.collapseKey ?? null,
    sound: options.sound ?? null,
    badge: options.badge ?? (claim.unread_count === null ? null : Number(claim.unread_count)),
    imageUrl: options.imageUrl ?? null,
    clickUrl: options.clickUrl ?? null,
    threadId: options.threadId ?? null,
    category: options.category ?? null,
    dataOnly: options.dataOnly ?? false,
  };
}
