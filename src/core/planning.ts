// Channel planning: which deliveries a notification gets, and what each needs of the recipient. Whether the
// recipient has it is checked inside the Send statement itself, so it is the recipient as of that commit: a
// delivery is queued when its requirement is met (or it has none) and skipped with `skipReason` otherwise.
// Preference and quiet-hours evaluation join here with the delivery engine.
import { type ChannelName, defaultChannels } from './channels.js';

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
