// Gates that several channels share: the recipient's preferences and quiet hours (people's channels), and the
// suppression list (addresses that bounced, complained or opted out). Each channel's driver picks its own.
import { evaluatePreferences, type PreferenceSet } from '../core/preference-evaluation.js';
import type { GateVerdict } from '../delivery/channel.js';
import type { ClaimedDelivery } from '../store/deliveries.js';

/** Opt-outs skip, quiet hours defer (critical notifications pass both); null: the delivery may go. */
export function preferenceGate(claim: ClaimedDelivery, now: Date): GateVerdict | null {
  const verdict = evaluatePreferences(preferencesOf(claim), {
    type: claim.type,
    channel: claim.channel,
    critical: claim.critical,
    at: now,
  });
  if (verdict.action === 'skip') return { status: 'skipped', reason: verdict.reason };
  if (verdict.action === 'defer') return { status: 'queued', reason: verdict.reason, until: verdict.until };
  return null;
}

/** A suppressed destination is never contacted, critical or not. */
export function suppressionGate(claim: ClaimedDelivery): GateVerdict | null {
  if (!claim.suppressed) return null;
  return { status: 'skipped', reason: `suppressed: ${claim.channel} address is on the suppression list` };
}

function preferencesOf(claim: ClaimedDelivery): PreferenceSet | null {
  if (!claim.pref_channels && !claim.pref_types && !claim.quiet_start) return null;
  return {
    channels: claim.pref_channels ?? {},
    types: claim.pref_types ?? {},
    quietHours:
      claim.quiet_start && claim.quiet_end && claim.quiet_timezone
        ? { start: claim.quiet_start, end: claim.quiet_end, timezone: claim.quiet_timezone }
        : null,
  };
}
