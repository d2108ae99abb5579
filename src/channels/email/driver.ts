// E-mail around any provider: preferences, quiet hours and the suppression list gate it; the subject, HTML
// and text come from the template (or the notification's title and body); an address a provider reports gone
// (hard bounce, complaint) is suppressed.
import { maskEmail } from '../../core/destinations.js';
import type { ChannelDriver, RenderedParts } from '../../delivery/channel.js';
import type { Content } from '../../delivery/provider.js';
import type { ClaimedDelivery } from '../../store/deliveries.js';
import { type SqlRunner, suppressAddress } from '../../store/index.js';
import { preferenceGate, suppressionGate } from '../gates.js';
import type { EmailMetrics } from './metrics.js';

export interface EmailDriverDeps {
  sql: SqlRunner;
  /** The one-click unsubscribe URL for a user and notification type (signed, expiring). */
  unsubscribeUrl: (userId: string, type: string) => string;
  metrics: EmailMetrics;
}

export function createEmailDriver(deps: EmailDriverDeps): ChannelDriver {
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
    content: (claim, parts) => emailContent(claim, parts, deps.unsubscribeUrl),
    async attempted(claim, outcome, provider) {
      if (outcome.kind === 'sent') deps.metrics.count('sent', provider, claim.type);
    },
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

/**
 * Subject, HTML and text, and the headers every e-mail carries. A non-critical e-mail gets RFC 8058 one-click
 * unsubscribe headers and a visible unsubscribe link; critical ones (password resets) carry none.
 */
export function emailContent(
  claim: ClaimedDelivery,
  parts: RenderedParts,
  unsubscribeUrl: (userId: string, type: string) => string,
): Content {
  const body = parts.body ?? '';
  const html = parts.html ?? paragraphs(body);
  const text = parts.text ?? body;
  const headers: Record<string, string> = { 'X-Herald-Notification-Id': claim.notification_id };
  if (claim.critical) return { channel: 'email', subject: parts.title ?? claim.type, html, text, headers };
  const url = unsubscribeUrl(claim.user_id, claim.type);
  return {
    channel: 'email',
    subject: parts.title ?? claim.type,
    html: `${html}\n<p style="font-size:12px;color:#666">You get these e-mails about ${escapeHtml(claim.type)}. <a href="${escapeHtml(url)}">Unsubscribe</a></p>`,
    text: `${text}\n\n--\nUnsubscribe: ${url}`,
    headers: {
      ...headers,
      'List-Unsubscribe': `<${url}>`,
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    },
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
