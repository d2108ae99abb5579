// Field rules shared by every RPC. Each returns a violation message, or undefined when the value is fine,
// so the API layer can name the field it checked.

const ID_PATTERN = /^[A-Za-z0-9._:@-]{1,128}$/;
// WHATWG's e-mail rule, with a dot required in the domain: what browsers accept in <input type=email>.
const EMAIL_PATTERN =
  /^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+$/;
const E164_PATTERN = /^\+[1-9]\d{1,14}$/;
const CLOCK_PATTERN = /^([01]\d|2[0-3]):[0-5]\d$/;
const IANA_ZONE_PATTERN = /^(UTC|[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)+)$/;

export const limits = {
  idLength: 128,
  titleLength: 256,
  bodyLength: 4_096,
  dataBytes: 64 * 1024,
  emailLength: 254,
  localeLength: 35,
  batchSize: 1_000,
  fcmTokenBytes: 4 * 1024,
  /** How far ahead send_at and expires_at may lie. */
  scheduleHorizonMs: 366 * 24 * 3600 * 1000,
  /** How far in the past send_at may lie (clock skew between services). */
  sendAtPastToleranceMs: 24 * 3600 * 1000,
} as const;

export function checkId(value: string): string | undefined {
  if (value.length === 0) return 'is required';
  if (!ID_PATTERN.test(value)) return 'must be 1..128 characters from [A-Za-z0-9._:@-]';
  return undefined;
}

export function checkEmail(value: string): string | undefined {
  if (value.length > limits.emailLength || !EMAIL_PATTERN.test(value))
    return 'must be a valid e-mail address';
  const local = value.slice(0, value.indexOf('@'));
  if (local.length > 64) return 'must be a valid e-mail address';
  return undefined;
}

export function checkPhone(value: string): string | undefined {
  return E164_PATTERN.test(value) ? undefined : 'must be an E.164 phone number such as +4915112345678';
}

export function checkTimezone(value: string): string | undefined {
  if (!IANA_ZONE_PATTERN.test(value)) return 'must be an IANA time zone such as Europe/Vienna';
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: value });
    return undefined;
  } catch {
    return 'must be an IANA time zone such as Europe/Vienna';
  }
}

export function checkLocale(value: string): string | undefined {
  if (value.length === 0 || value.length > limits.localeLength)
    return 'must be a BCP 47 language tag such as de-AT';
  try {
    Intl.getCanonicalLocales(value);
    return undefined;
  } catch {
    return 'must be a BCP 47 language tag such as de-AT';
  }
}

export function checkClockTime(value: string): string | undefined {
  return CLOCK_PATTERN.test(value) ? undefined : 'must be a time of day as HH:MM (00:00..23:59)';
}

/** Length in user-visible code points, so an emoji counts once. */
export function codePointLength(value: string): number {
  let n = 0;
  for (const _ of value) n++;
  return n;
}

/** PostgreSQL text and jsonb cannot hold U+0000; refuse it up front instead of failing at the database. */
export function containsNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (Array.isArray(value)) return value.some(containsNul);
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).some(([key, v]) => key.includes('\u0000') || containsNul(v));
  }
  return false;
}

export function checkTextLength(value: string, min: number, max: number): string | undefined {
  if (value.includes('\u0000')) return 'must not contain NUL characters';
  const n = codePointLength(value);
  if (n < min || n > max)
    return min > 0 ? `must be ${min}..${max} characters` : `must be at most ${max} characters`;
  return undefined;
}
