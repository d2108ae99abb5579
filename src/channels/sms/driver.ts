// SMS around any provider: preferences, quiet hours and the suppression list gate it; the text is the
// template's body (or the notification's), shortened to the type's segment budget and measured as carriers
// bill it; segments and their estimated cost are counted per provider and type; a number a provider reports
// gone (opted out, not a valid mobile number) is suppressed.
import { maskPhone } from '../../core/destinations.js';
import { fitSms, smsShape } from '../../core/sms.js';
import type { ChannelDriver, RenderedParts } from '../../delivery/channel.js';
import type { Content } from '../../delivery/provider.js';
import type { ClaimedDelivery } from '../../store/deliveries.js';
import { type SqlRunner, suppressAddress } from '../../store/index.js';
import { preferenceGate, suppressionGate } from '../gates.js';
import type { SmsMetrics } from './metrics.js';

export interface SmsDriverDeps {
  sql: SqlRunner;
  /** The most segments a type's SMS may take. */
  maxSegments: (type: string) => number;
  metrics: SmsMetrics;
}

export function createSmsDriver(deps: SmsDriverDeps): ChannelDriver {
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
    content: (claim, parts) => smsContent(claim, parts, deps.maxSegments(claim.type)),
    segments: (content) => (content.channel === 'sms' ? content.segments : null),
    async attempted(claim, outcome, provider, task) {
      if (outcome.kind === 'sent' && task.content.channel === 'sms') {
        deps.metrics.sent(provider, claim.type, task.content.segments, outcome.cost);
      }
    },
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

export function smsContent(claim: ClaimedDelivery, parts: RenderedParts, maxSegments: number): Content {
  const { text } = fitSms(parts.body ?? parts.title ?? claim.type, maxSegments);
  const { encoding, segments } = smsShape(text);
  return { channel: 'sms', text, encoding, segments };
}
