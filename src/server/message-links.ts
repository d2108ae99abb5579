// The links Herald puts into messages, signed with the link secret and based at the public URL: one-click
// unsubscribe (`/unsubscribe/<token>`), the preferences page (`/preferences/<token>`) and, when an address
// for it is configured, a `mailto:` unsubscribe whose subject carries the same token (the mailbox's owner
// applies it by posting the token to the unsubscribe URL).
import type { MessageLinks } from '../channels/email/driver.js';
import { signPreferencesLink, signUnsubscribeLink } from '../core/link-tokens.js';

export interface MessageLinkOptions {
  secret: Buffer;
  /** The base URL, read per link: it is known only once the server listens when none is configured. */
  base: () => string;
  /** HERALD_UNSUBSCRIBE_MAILTO, or null. */
  mailto: string | null;
  now: () => Date;
}

export function createMessageLinks(options: MessageLinkOptions): MessageLinks {
  const { secret, base, mailto, now } = options;
  const unsubscribeToken = (userId: string, type: string) =>
    signUnsubscribeLink(secret, { userId, type }, now());
  return {
    unsubscribeUrl: (userId, type) => `${base()}/unsubscribe/${unsubscribeToken(userId, type)}`,
    unsubscribeMailto: (userId, type) =>
      mailto === null
        ? null
        : `mailto:${mailto}?subject=${encodeURIComponent(`unsubscribe ${unsubscribeToken(userId, type)}`)}`,
    preferencesUrl: (userId) => `${base()}/preferences/${signPreferencesLink(secret, { userId }, now())}`,
  };
}
