// Channel planning: which deliveries a notification gets, and which of them cannot be attempted at all.
// Preference and quiet-hours evaluation join here with the delivery engine.
import { type ChannelName, type DeliveryStatus, defaultChannels } from './channels.js';

/** What the recipient can be reached on, read from the store inside the Send transaction. */
export interface Reach {
  email: boolean;
  phone: boolean;
  pushTokens: boolean;
}

export interface PlannedDelivery {
  channel: ChannelName;
  status: Extract<DeliveryStatus, 'queued' | 'skipped'>;
  reason: string | null;
}

const missingAddress: Partial<Record<ChannelName, keyof Reach>> = {
  email: 'email',
  sms: 'phone',
  push: 'pushTokens',
};

const missingReason: Record<keyof Reach, string> = {
  email: 'no_address: recipient has no e-mail address',
  phone: 'no_address: recipient has no phone number',
  pushTokens: 'no_address: recipient has no active push token',
};

export function planDeliveries(requested: readonly ChannelName[], reach: Reach): PlannedDelivery[] {
  const channels = requested.length > 0 ? requested : defaultChannels;
  return channels.map((channel) => {
    const needs = missingAddress[channel];
    if (needs && !reach[needs]) return { channel, status: 'skipped', reason: missingReason[needs] };
    return { channel, status: 'queued', reason: null };
  });
}

export function needsPushReach(channels: readonly ChannelName[]): boolean {
  return channels.includes('push');
}
