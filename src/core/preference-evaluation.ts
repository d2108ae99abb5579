// Preference evaluation: whether a recipient's settings let one delivery go out now, later, or not at all.
import type { ChannelName } from './channels.js';
import { type QuietHours, quietHoursEnd } from './quiet-hours.js';

export interface PreferenceSet {
  /** Channel switches; a missing channel is on. */
  channels: Record<string, boolean>;
  /** Per notification type, channel switches that override `channels`; a missing one defers to it. */
  types: Record<string, Record<string, boolean>>;
  quietHours: QuietHours | null;
}

export type PreferenceVerdict =
  | { action: 'send' }
  | { action: 'skip'; reason: string }
  | { action: 'defer'; until: Date; reason: string };

// In-app messages are read when the recipient chooses and make no sound; webhooks go to systems, not people.
const quietableChannels: ReadonlySet<ChannelName> = new Set(['push', 'email', 'sms']);

/**
 * Opt-outs: a type×channel switch wins over the channel switch; missing switches mean enabled. Quiet hours
 * defer only push, email and sms (never in_app or webhook) to the end of the window. `critical` (CRITICAL
 * priority or a critical type) bypasses opt-outs and quiet hours.
 */
export function evaluatePreferences(
  prefs: PreferenceSet | null,
  input: { type: string; channel: ChannelName; critical: boolean; at: Date },
): PreferenceVerdict {
  const { type, channel, critical, at } = input;
  if (critical || prefs === null) return { action: 'send' };

  const typeSwitches = own(prefs.types, type);
  const typeSwitch = typeSwitches === undefined ? undefined : own(typeSwitches, channel);
  if (typeSwitch === false) {
    return { action: 'skip', reason: `preference: ${channel} is turned off for ${type}` };
  }
  if (typeSwitch === undefined && own(prefs.channels, channel) === false) {
    return { action: 'skip', reason: `preference: ${channel} is turned off` };
  }

  if (prefs.quietHours !== null && quietableChannels.has(channel)) {
    const until = quietHoursEnd(prefs.quietHours, at);
    if (until !== null) {
      return { action: 'defer', until, reason: `quiet_hours: deferred until ${until.toISOString()}` };
    }
  }
  return { action: 'send' };
}

/** A value set on the record itself: a type named "constructor" must not find Object.prototype's. */
function own<T>(record: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}
