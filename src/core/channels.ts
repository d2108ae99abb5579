// Channel names as stored and as the domain rules speak of them.

export const channelNames = ['in_app', 'push', 'email', 'sms', 'webhook'] as const;
export type ChannelName = (typeof channelNames)[number];

export const deliveryStatuses = [
  'queued',
  'sending',
  'sent',
  'delivered',
  'failed',
  'expired',
  'skipped',
  'cancelled',
] as const;
export type DeliveryStatus = (typeof deliveryStatuses)[number];

/** Channels used when a Send names none and the type has no routing rule. */
export const defaultChannels: readonly ChannelName[] = ['in_app'];
