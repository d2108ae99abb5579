// Channel planning: which deliveries a notification gets, and which of them cannot be attempted at all.
// The plan names what each channel requires of the recipient; whether the recipient has it is read inside
// the Send statement itself (so it is the recipient as of that commit), by the same rule as `evaluate`.
// Preference and quiet-hours evaluation join here with the delivery engine.
import { type ChannelName, type DeliveryStatus, defaultChannels } from './channels.js';

/** What the recipient can be reached on. */
export interface Reach {
  email: boolean;
  phone: boolean;
  pushTokens: boolean;
}

export interface ChannelPlan {
  channel: ChannelName;
  /** The address the channel needs, or null when it needs none. */
  requires: keyof Reach | null;
  /** The delivery's reason when the requirement is not met. */
  skipReason: string | null;
}

export interface PlannedDelivery {
  channel: ChannelName;
  status: Extract<DeliveryStatus, 'queued' | 'skipped'>;
  reason: string | null;
}

const requirement: Record<ChannelName, keyof Reach | null> = {
  in_app: null,
  webhook: null,
  email: 'email',
  sms: 'phone',
  push: 'pushTokens',
};

const missingReason: Record<keyof Reach, string> = {
  email: 'no_address: recipient has no e-mail address',
  phone: 'no_address: recipient has no phone number',
  pushTokens: 'no_address: recipient has no active push token',
};

export function planChannels(requested: readonly ChannelName[]): ChannelPlan[] {
  const channels = requested.length > 0 ? requested : defaultChannels;
  return channels.map((channel) => {
    const requires = requirement[channel];
    return { channel, requires, skipReason: requires ? missingReason[requires] : null };
  });
}

/** A delivery is queued when the recipient has what its channel requires, skipped with the reason otherwise. */
export function evaluatePlan(plan: ChannelPlan, reach: Reach): PlannedDelivery {
  return plan.requires === null || reach[plan.requires]
    ? { channel: plan.channel, status: 'queued', reason: null }
    : { channel: plan.channel, status: 'skipped', reason: plan.skipReason };
}

export function planDeliveries(requested: readonly ChannelName[], reach: Reach): PlannedDelivery[] {
  return planChannels(requested).map((plan) => evaluatePlan(plan, reach));
}
