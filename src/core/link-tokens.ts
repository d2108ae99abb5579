// Signed tokens in the links Herald puts into messages (one-click unsubscribe, the preferences page):
// `v1.<payload>.<signature>`, the payload base64url JSON, the signature HMAC-SHA256 over "v1.<payload>" with
// the link secret. A token cannot be forged or altered without the secret, is compared in constant time,
// and expires. Each token names what it is for: an unsubscribe token does not open the preferences page.
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface UnsubscribeLink {
  /** Whose preference the link changes. */
  userId: string;
  /** The notification type it turns e-mail off for; null: all e-mail. */
  type: string | null;
}

export interface PreferencesLink {
  /** Whose preferences the page shows and changes. */
  userId: string;
}

/** How long a link in a message keeps working. */
export const LINK_DAYS = 365;
const VERSION = 'v1';
const UNSUBSCRIBE = 'unsub';
const PREFERENCES = 'prefs';

export function signUnsubscribeLink(secret: Buffer, link: UnsubscribeLink, now: Date): string {
  return sign(secret, { k: UNSUBSCRIBE, u: link.userId, t: link.type }, now);
}

/** The link's content, or null for a token that is forged, altered, malformed, expired or for another page. */
export function verifyUnsubscribeLink(secret: Buffer, token: string, now: Date): UnsubscribeLink | null {
  const fields = verify(secret, token, now, UNSUBSCRIBE);
  if (!fields || (fields.t !== null && typeof fields.t !== 'string')) return null;
  return { userId: fields.u, type: fields.t };
}

export function signPreferencesLink(secret: Buffer, link: PreferencesLink, now: Date): string {
  return sign(secret, { k: PREFERENCES, u: link.userId }, now);
}

export function verifyPreferencesLink(secret: Buffer, token: string, now: Date): PreferencesLink | null {
  const fields = verify(secret, token, now, PREFERENCES);
  return fields ? { userId: fields.u } : null;
}

function sign(secret: Buffer, fields: Record<string, unknown>, now: Date): string {
  const expires = Math.floor(now.getTime() / 1000) + LINK_DAYS * 86_400;
  const payload = Buffer.from(JSON.stringify({ ...fields, e: expires })).toString('base64url');
  return `${VERSION}.${payload}.${signature(secret, payload)}`;
}

/** The payload of a valid, unexpired token of this kind, with its user; null for anything else. */
function verify(
  secret: Buffer,
  token: string,
  now: Date,
  kind: string,
): ({ u: string } & Record<string, unknown>) | null {
  const [version, payload, given, ...rest] = token.split('.');
  if (version !== VERSION || !payload || !given || rest.length > 0) return null;
  const expected = Buffer.from(signature(secret, payload), 'base64url');
  const actual = Buffer.from(given, 'base64url');
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) return null;
  try {
    const fields = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    if (fields.k !== kind || typeof fields.u !== 'string' || typeof fields.e !== 'number') return null;
    if (fields.e * 1000 <= now.getTime()) return null;
    return fields as { u: string } & Record<string, unknown>;
  } catch {
    return null;
  }
}

function signature(secret: Buffer, payload: string): string {
  return createHmac('sha256', secret).update(`${VERSION}.${payload}`).digest('base64url');
}
