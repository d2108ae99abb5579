// What every e-mail phase sends, and what the emulator child checks each arrival against: one sender, one
// notification type, the same subject and body, and one address per recipient, so N notifications make N
// e-mails. The message is the one Herald's e-mail driver builds for a notification with a title and a body
// and no template (src/channels/email/driver.ts): the body in the e-mail layout as HTML and as text (built by
// the same code, src/channels/email/layout.ts), each with the one-click unsubscribe and preferences links,
// List-Unsubscribe and List-Unsubscribe-Post headers, X-Herald-Notification-Id and Message-ID
// <delivery id@herald>. The bare baseline builds the same message, signed links included.
import { emailHtml as layoutHtml, emailText as layoutText } from '../../src/channels/email/layout.js';
import { signPreferencesLink, signUnsubscribeLink } from '../../src/core/link-tokens.js';
import { escapeMarkdown } from '../../src/core/templates.js';

export const SMTP_USER = 'herald-bench';
export const SMTP_PASSWORD = 'bench-relay-password';
export const FROM_NAME = 'Example Shop';
export const FROM_ADDRESS = 'notifications@example.com';
export const FROM = `${FROM_NAME} <${FROM_ADDRESS}>`;
export const REPLY_TO = 'support@example.com';
/** HERALD_PUBLIC_URL and HERALD_LINK_SECRET of the Herald child; the baseline signs its links the same way. */
export const PUBLIC_URL = 'https://herald.example.com';
export const LINK_SECRET = 'bench-link-secret-of-at-least-32-bytes!';
export const EMAIL_TYPE = 'bench.email';
export const EMAIL_SUBJECT = 'Your order has shipped';
export const EMAIL_BODY =
  'Your order has shipped and will arrive on Thursday.\n\nThanks for shopping with us.';

const ADDRESS = /^email-bench-(\d+)@example\.org$/;

export function emailUser(index: number): string {
  return `email-bench-user-${index}`;
}

export function emailAddress(index: number): string {
  return `email-bench-${index}@example.org`;
}

/** The user an address of emailAddress() belongs to, or null for any other address. */
export function userOfAddress(address: string): string | null {
  const match = ADDRESS.exec(address);
  return match ? emailUser(Number(match[1])) : null;
}

export function messageId(deliveryId: string): string {
  return `<${deliveryId}@herald>`;
}

const linkSecret = Buffer.from(LINK_SECRET);

/** The links of a message: signed one-click unsubscribe (user and EMAIL_TYPE) and preferences page URLs. */
export interface MessageLinkUrls {
  unsubscribe: string;
  preferences: string;
}

/** The signed links for the user, as Herald's server composes them. */
export function messageLinks(userId: string): MessageLinkUrls {
  const now = new Date();
  return {
    unsubscribe: `${PUBLIC_URL}/unsubscribe/${signUnsubscribeLink(linkSecret, { userId, type: EMAIL_TYPE }, now)}`,
    preferences: `${PUBLIC_URL}/preferences/${signPreferencesLink(linkSecret, { userId }, now)}`,
  };
}

export function linkSecretBytes(): Buffer {
  return linkSecret;
}

/** The e-mail layout Herald's driver puts the notification's body in (the same code, so the same bytes). */
function layout(links: MessageLinkUrls) {
  return {
    subject: EMAIL_SUBJECT,
    markdown: escapeMarkdown(EMAIL_BODY),
    footer: {
      text: `You get these e-mails about ${EMAIL_TYPE}.`,
      links: [
        { text: 'Unsubscribe', url: links.unsubscribe },
        { text: 'Preferences', url: links.preferences },
      ],
    },
  };
}

export function emailHtml(links: MessageLinkUrls): string {
  return layoutHtml(layout(links));
}

export function emailText(links: MessageLinkUrls): string {
  return layoutText(layout(links));
}

/** The headers Herald's driver puts on a non-critical e-mail. */
export function emailHeaders(notificationId: string, url: string): Record<string, string> {
  return {
    'X-Herald-Notification-Id': notificationId,
    'List-Unsubscribe': `<${url}>`,
    'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
  };
}
