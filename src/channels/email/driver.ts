// E-mail around any provider: preferences, quiet hours and the suppression list gate it; the subject, HTML
// and text come from the template (or the notification's title and body); an address a provider reports gone
// (hard bounce, complaint) is suppressed.
import { maskEmail } from '../../core/destinations.js';
import type { ChannelDriver, RenderedParts } from '../../delivery/channel.js';
import type { Content } from '../../delivery/provider.js';
import type { ClaimedDelivery } from '../../store/deliveries.js';
import { type SqlRunner, suppressAddress } from '../../store/index.js';
import { preferenceGate, suppressionGate } from '../gates.js';

export function createEmailDriver(deps: { sql: SqlRunner }): ChannelDriver {
  return {
    channel: 'email',
    html: true,
    gate: (claim, now) => preferenceGate(claim, now) ?? suppressionGate(claim),
    // A delivery planned by an older version has no destination of its own: the recipient's current one.
    destination: (claim) => {
      const address = claim.destination ?? claim.email;
      return address
        ? { channel: 'email', address }
        : { unusable: 'no_address: the delivery has no e-mail address' };
    },
    describe: (destination) => (destination.channel === 'email' ? maskEmail(destination.address) : ''),
    content: emailContent,
    async invalidate(claim, destination, { reason }) {
      if (destination.channel !== 'email') return;
      await suppressAddress(deps.sql, {
        channel: 'email',
        address: destination.address,
        reason,
        deliveryId: claim.id,
      });
    },
  };
}

export function emailContent(claim: ClaimedDelivery, parts: RenderedParts): Content {
  const body = parts.body ?? '';
  return {
    channel: 'email',
    subject: parts.title ?? claim.type,
    html: parts.html ?? paragraphs(body),
    text: parts.text ?? body,
    headers: { 'X-Herald-Notification-Id': claim.notification_id },
  };
}

/** Plain text as HTML: escaped, blank lines between paragraphs, single line breaks kept. */
function paragraphs(text: string): string {
  return text
    .split(/\n{2,}/)
    .filter((p) => p.trim() !== '')
    .map((p) => `<p>${escapeHtml(p).replaceAll('\n', '<br>')}</p>`)
    .join('\n');
}

function escapeHtml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}
