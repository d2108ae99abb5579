// SMS around any provider: preferences, quiet hours and the suppression list gate it; the text is the
// template's body (or the notification's), measured as carriers bill it; a number a provider reports gone
// (opted out, unreachable for good) is suppressed.
import { maskPhone } from '../../core/destinations.js';
import { smsShape } from '../../core/sms.js';
import type { ChannelDriver, RenderedParts } from '../../delivery/channel.js';
import type { Content } from '../../delivery/provider.js';
import type { ClaimedDelivery } from '../../store/deliveries.js';
import { type SqlRunner, suppressAddress } from '../../store/index.js';
import { preferenceGate, suppressionGate } from '../gates.js';

export function createSmsDriver(deps: { sql: SqlRunner }): ChannelDriver {
  return {
    channel: 'sms',
    markdown: false,
    gate: (claim, now) => preferenceGate(claim, now) ?? suppressionGate(claim),
    // A delivery planned by an older version has no destination of its own: the recipient's current one.
    destination: (claim) => {
      const number = claim.destination ?? claim.phone;
      return number
        ? { channel: 'sms', number }
        : { unusable: 'no_address: the delivery has no phone number' };
    },
    describe: (destination) => (destination.channel === 'sms' ? maskPhone(destination.number) : ''),
    content: smsContent,
    async invalidate(claim, destination, { reason }) {
      if (destination.channel !== 'sms') return;
      await suppressAddress(deps.sql, {
        channel: 'sms',
        address: destination.number,
        reason,
        deliveryId: claim.id,
      });
    },
  };
}

export function smsContent(claim: ClaimedDelivery, parts: RenderedParts): Content {
  const text = parts.body ?? parts.title ?? claim.type;
  const { encoding, segments } = smsShape(text);
  return { channel: 'sms', text, encoding, segments };
}
