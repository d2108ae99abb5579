// Field rules shared by every RPC. Each returns a violation message, or undefined when the value is fine,
// so the API layer can name the field it checked.

const ID_PATTERN = /^[A-Za-z0-9._:@-]{1,128}$/;
// WHATWG's e-mail rule, with a dot required in the domain: what browsers accept in <input type=email>.
const EMAIL_PATTERN =
  /^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+$/;
const CLOCK_PATTERN = /^([01]\d|2[0-3]):[0-5]\d$/;
const IANA_ZONE_PATTERN = /^(UTC|[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)+)$/;

export const limits = {
  idLength: 128,
  titleLength: 256,
  bodyLength: 4_096,
  dataBytes: 64 * 1024,
  /** Objects and arrays inside `data`, counted from `data` itself. */
  dataDepth: 32,
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

// PostgreSQL's text and jsonb hold only well-formed Unicode without U+0000. Strings from JSON requests can
// carry either (`"\u0000"`, a lone `"\ud800"`), and the database would reject them mid-statement: refuse them
// at validation instead, naming the field. (In u-mode a surrogate class matches only unpaired surrogates.)
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
const LONE_SURROGATES = /[\uD800-\uDFFF]/gu;

/** Why PostgreSQL could not store this string, or undefined. */
export function checkStorableText(value: string): string | undefined {
  if (value.includes('\u0000')) return 'must not contain NUL characters';
  if (LONE_SURROGATE.test(value)) return 'must be well-formed Unicode (it holds a lone UTF-16 surrogate)';
  return undefined;
}

/**
 * Text from outside that Herald records rather than validates (a provider's reply, an error message): NUL and
 * lone surrogates become U+FFFD, so the record can always be written.
 */
export function toStorableText(value: string): string {
  return value.replaceAll('\u0000', '\uFFFD').replace(LONE_SURROGATES, '\uFFFD');
}

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface UnstorableValue {
  /** Where, below the field the walk started at. */
  field: string;
  problem: string;
  /** The walk stopped at the depth limit (nothing deeper was looked at). */
  tooDeep: boolean;
}

/**
 * The first string in a JSON value, key or value, that PostgreSQL could not store, or a number JSON cannot
 * hold (NaN, Infinity), with its path below `field` (e.g. `data.items[2].note`); or a value nested deeper
 * than `maxDepth`.
 */
export function findUnstorableText(
  value: unknown,
  field: string,
  maxDepth: number,
): UnstorableValue | undefined {
  if (typeof value === 'string') {
    const problem = checkStorableText(value);
    return problem ? { field, problem, tooDeep: false } : undefined;
  }
  // JSON has no NaN or Infinity (jsonb would store null, and the value could not be sent on as JSON).
  if (typeof value === 'number' && !Number.isFinite(value)) {
    return { field, problem: 'must be a finite number', tooDeep: false };
  }
  if (value === null || typeof value !== 'object') return undefined;
  if (maxDepth <= 0) return { field, problem: 'is nested too deeply', tooDeep: true };
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findUnstorableText(value[i], `${field}[${i}]`, maxDepth - 1);
      if (found) return found;
    }
    return undefined;
  }
  for (const [key, v] of Object.entries(value)) {
    const path = PLAIN_KEY.test(key) ? `${field}.${key}` : `${field}[${JSON.stringify(key)}]`;
    const keyProblem = checkStorableText(key);
    if (keyProblem) return { field: path, problem: `key ${keyProblem}`, tooDeep: false };
    const found = findUnstorableText(v, path, maxDepth - 1);
    if (found) return found;
  }
  return undefined;
}

export function checkTextLength(value: string, min: number, max: number): string | undefined {
  const unstorable = checkStorableText(value);
  if (unstorable) return unstorable;
  const n = codePointLength(value);
  if (n < min || n > max)
    return min > 0 ? `must be ${min}..${max} characters` : `must be at most ${max} characters`;
  return undefined;
}
