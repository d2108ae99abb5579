// Signed tokens in the links Herald puts into messages (one-click unsubscribe): `v1.<payload>.<signature>`,
// the payload base64url JSON, the signature HMAC-SHA256 over "v1.<payload>" with the link secret. A token
// cannot be forged or altered without the secret, is compared in constant time, and expires.
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface UnsubscribeLink {
  /** Whose preference the link changes. */
  userId: string;
  /** The notification type it turns e-mail off for; null: all e-mail. */
  type: string | null;
}

/** How long an unsubscribe link in a message keeps working. */
export const UNSUBSCRIBE_LINK_DAYS = 365;
const VERSION = 'v1';

export function signUnsubscribeLink(secret: Buffer, link: UnsubscribeLink, now: Date): string {
  const expires = Math.floor(now.getTime() / 1000) + UNSUBSCRIBE_LINK_DAYS * 86_400;
  const payload = Buffer.from(
    JSON.stringify({ k: 'unsub', u: link.userId, t: link.type, e: expires }),
  ).toString('base64url');
  return `${VERSION}.${payload}.${signature(secret, payload)}`;
}

/** The link's content, or null for a token that is forged, altered, malformed or expired. */
export function verifyUnsubscribeLink(secret: Buffer, token: string, now: Date): UnsubscribeLink | null {
  const [version, payload, given, ...rest] = token.split('.');
  if (version !== VERSION || !payload || !given || rest.length > 0) return null;
  const expected = Buffer.from(signature(secret, payload), 'base64url');
  const actual = Buffer.from(given, 'base64url');
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) return null;
  try {
    const fields = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    if (fields.k !== 'unsub' || typeof fields.u !== 'string' || typeof fields.e !== 'number') return null;
    if (fields.t !== null && typeof fields.t !== 'string') return null;
    if (fields.e * 1000 <= now.getTime()) return null;
    return { userId: fields.u, type: fields.t };
  } catch {
    return null;
  }
}

function signature(secret: Buffer, payload: string): string {
  return createHmac('sha256', secret).update(`${VERSION}.${payload}`).digest('base64url');
}
