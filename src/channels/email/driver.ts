// E-mail around any provider: preferences, quiet hours and the suppression list gate it; the subject, HTML
// and text come from the template (or the notification's title and body); an address a provider reports gone
// (hard bounce, complaint) is suppressed.
import { maskEmail } from '../../core/destinations.js';
import { escapeMarkdown } from '../../core/templates.js';
import type { ChannelDriver, RenderedParts } from '../../delivery/channel.js';
import type { Content } from '../../delivery/provider.js';
import type { ClaimedDelivery } from '../../store/deliveries.js';
import { type SqlRunner, suppressAddress } from '../../store/index.js';
import { preferenceGate, suppressionGate } from '../gates.js';
import { emailHtml, emailText } from './layout.js';
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
    markdown: true,
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
 * Subject, HTML and text, and the headers every e-mail carries. The HTML and the text both come from the
 * body's Markdown (a template's, or the notification's own body as plain text) in the e-mail layout. A
 * non-critical e-mail gets RFC 8058 one-click unsubscribe headers and a visible unsubscribe link; critical
 * ones (password resets) carry none.
 */
export function emailContent(
  claim: ClaimedDelivery,
  parts: RenderedParts,
  unsubscribeUrl: (userId: string, type: string) => string,
): Content {
  const subject = parts.title ?? claim.type;
  const markdown = parts.fromTemplate ? (parts.body ?? '') : escapeMarkdown(parts.body ?? '');
  const headers: Record<string, string> = { 'X-Herald-Notification-Id': claim.notification_id };
  const url = claim.critical ? null : unsubscribeUrl(claim.user_id, claim.type);
  const footer = url
    ? { text: `You get these e-mails about ${claim.type}.`, linkText: 'Unsubscribe', url }
    : undefined;
  const layout = { subject, markdown, footer };
  const text =
    parts.text === null
      ? emailText(layout)
      : footer
        ? `${parts.text}\n\n--\nUnsubscribe: ${footer.url}`
        : parts.text;
  return {
    channel: 'email',
    subject,
    html: emailHtml(layout),
    text,
    headers: url
      ? { ...headers, 'List-Unsubscribe': `<${url}>`, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' }
      : headers,
  };
}
