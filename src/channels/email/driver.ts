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
import { emailHtml, emailText, footerText } from './layout.js';
import type { EmailMetrics } from './metrics.js';

/** The links a message carries, signed and expiring. */
export interface MessageLinks {
  /** The one-click unsubscribe URL for a user and notification type. */
  unsubscribeUrl(userId: string, type: string): string;
  /** `mailto:` unsubscribe for List-Unsubscribe, when an address for it is configured; else null. */
  unsubscribeMailto(userId: string, type: string): string | null;
  /** The user's preferences page. */
  preferencesUrl(userId: string): string;
}

export interface EmailDriverDeps {
  sql: SqlRunner;
  links: MessageLinks;
  /** The type's own sender (its routing rule), or null for the provider's. */
  sender: (type: string) => { from: string | null; replyTo: string | null } | null;
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
    content: (claim, parts) => ({
      ...emailContent(claim, parts, deps.links),
      ...senderOf(deps.sender(claim.type)),
    }),
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

function senderOf(sender: { from: string | null; replyTo: string | null } | null) {
  return {
    ...(sender?.from ? { from: sender.from } : {}),
    ...(sender?.replyTo ? { replyTo: sender.replyTo } : {}),
  };
}

/**
 * Subject, HTML and text, and the headers every e-mail carries. The HTML and the text both come from the
 * body's Markdown (a template's, or the notification's own body as plain text) in the e-mail layout. A
 * non-critical e-mail gets RFC 8058 one-click unsubscribe headers (with a `mailto:` alternative when one is
 * configured) and visible unsubscribe and preferences links; critical ones (password resets) carry none.
 */
export function emailContent(claim: ClaimedDelivery, parts: RenderedParts, links: MessageLinks): Content {
  const subject = parts.title ?? claim.type;
  const markdown = parts.fromTemplate ? (parts.body ?? '') : escapeMarkdown(parts.body ?? '');
  const headers: Record<string, string> = { 'X-Herald-Notification-Id': claim.notification_id };
  if (claim.critical) {
    const layout = { subject, markdown };
    return {
      channel: 'email',
      subject,
      html: emailHtml(layout),
      text: parts.text ?? emailText(layout),
      headers,
    };
  }
  const url = links.unsubscribeUrl(claim.user_id, claim.type);
  const mailto = links.unsubscribeMailto(claim.user_id, claim.type);
  const footer = {
    text: `You get these e-mails about ${claim.type}.`,
    links: [
      { text: 'Unsubscribe', url },
      { text: 'Preferences', url: links.preferencesUrl(claim.user_id) },
    ],
  };
  const layout = { subject, markdown, footer };
  return {
    channel: 'email',
    subject,
    html: emailHtml(layout),
    text: parts.text === null ? emailText(layout) : `${parts.text}\n\n--\n${footerText(footer)}`,
    headers: {
      ...headers,
      'List-Unsubscribe': mailto ? `<${url}>, <${mailto}>` : `<${url}>`,
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    },
  };
}
