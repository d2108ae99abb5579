// Retry policy: how long to wait after a retry-class outcome, and when to stop trying. Pure: the clock and
// the random source are passed in, so the schedule is testable without sleeping.
import type { ChannelName } from './channels.js';

export interface RetryPolicy {
  /** Ceiling of the first retry's delay; it doubles with each attempt made. */
  baseDelayMs: number;
  /** The doubling stops here. */
  maxDelayMs: number;
  /** Attempts in all, the first one included. */
  maxAttempts: number;
  /** No retry is scheduled later than this long after the delivery was first queued. */
  maxAgeMs: number;
  /** A provider's Retry-After is honoured up to this long, so one header cannot park a delivery for days. */
  retryAfterCapMs: number;
}

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export const defaultRetryPolicies: Record<ChannelName, RetryPolicy> = {
  // In-app rows are written to our own store: failures are brief, and a stale in-app message is worthless.
  in_app: { baseDelayMs: SECOND, maxDelayMs: MINUTE, maxAttempts: 10, maxAgeMs: DAY, retryAfterCapMs: HOUR },
  // FCM/APNs outages are short and a push is only useful while it is fresh.
  push: {
    baseDelayMs: 2 * SECOND,
    maxDelayMs: 30 * MINUTE,
    maxAttempts: 6,
    maxAgeMs: DAY,
    retryAfterCapMs: HOUR,
  },
  // Mail relays greylist and throttle for minutes to hours; mail stays useful for a couple of days.
  email: {
    baseDelayMs: 5 * SECOND,
    maxDelayMs: HOUR,
    maxAttempts: 8,
    maxAgeMs: 2 * DAY,
    retryAfterCapMs: HOUR,
  },
  // SMS gateways rate-limit briefly; a text delivered a day late does more harm than good.
  sms: {
    baseDelayMs: 5 * SECOND,
    maxDelayMs: 30 * MINUTE,
    maxAttempts: 6,
    maxAgeMs: DAY,
    retryAfterCapMs: HOUR,
  },
  // Customer endpoints go down for deploys and outages lasting hours; on the scale of Svix's schedule
  // (5 s ... 10 h, about a day of retries in all), with three days before we give up.
  webhook: {
    baseDelayMs: 5 * SECOND,
    maxDelayMs: 10 * HOUR,
    maxAttempts: 8,
    maxAgeMs: 3 * DAY,
    retryAfterCapMs: HOUR,
  },
};

/**
 * Full jitter: random() * min(maxDelayMs, baseDelayMs * 2^(attemptsMade-1)); a Retry-After is a lower bound
 * capped at retryAfterCapMs. attemptsMade >= 1. random returns [0,1).
 */
export function retryDelayMs(
  policy: RetryPolicy,
  attemptsMade: number,
  random: () => number,
  retryAfterMs?: number,
): number {
  if (!Number.isInteger(attemptsMade) || attemptsMade < 1) {
    throw new RangeError(`attemptsMade must be an integer >= 1, got ${attemptsMade}`);
  }
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attemptsMade - 1));
  const jittered = Math.floor(random() * ceiling);
  // `!(x > 0)` also turns away NaN.
  if (retryAfterMs === undefined || !(retryAfterMs > 0)) return jittered;
  return Math.max(jittered, Math.min(retryAfterMs, policy.retryAfterCapMs));
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH = MONTHS.join('|');
// The three HTTP-date forms RFC 9110 §5.6.7 obliges a recipient to accept. Date.parse is not used: its
// reading of the obsolete forms is implementation-defined, and it takes asctime's zone-less time as local.
const IMF_FIXDATE = new RegExp(
  `^[A-Z][a-z]{2}, (\\d{2}) (${MONTH}) (\\d{4}) (\\d{2}):(\\d{2}):(\\d{2}) GMT$`,
);
const RFC850_DATE = new RegExp(
  `^[A-Z][a-z]+day, (\\d{2})-(${MONTH})-(\\d{2}) (\\d{2}):(\\d{2}):(\\d{2}) GMT$`,
);
const ASCTIME_DATE = new RegExp(`^[A-Z][a-z]{2} (${MONTH}) ([ \\d]\\d) (\\d{2}):(\\d{2}):(\\d{2}) (\\d{4})$`);

/** Retry-After header value: delta-seconds or an HTTP-date; returns ms from `now` (>= 0), or undefined when absent/unparseable. */
export function parseRetryAfter(value: string | null | undefined, now: Date): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * SECOND;
  const at = parseHttpDate(text, now);
  return at === undefined ? undefined : Math.max(0, at - now.getTime());
}

function parseHttpDate(text: string, now: Date): number | undefined {
  let m = IMF_FIXDATE.exec(text);
  if (m) return utcInstant(Number(m[3]), m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!);
  m = RFC850_DATE.exec(text);
  if (m) return utcInstant(fullYear(Number(m[3]), now), m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!);
  m = ASCTIME_DATE.exec(text);
  if (m) return utcInstant(Number(m[6]), m[1]!, Number(m[2]!.trim()), m[3]!, m[4]!, m[5]!);
  return undefined;
}

/** RFC 9110: a two-digit year more than 50 years ahead means the most recent past year with those digits. */
function fullYear(twoDigits: number, now: Date): number {
  const thisYear = now.getUTCFullYear();
  const year = thisYear - (thisYear % 100) + twoDigits;
  return year > thisYear + 50 ? year - 100 : year;
}

function utcInstant(
  year: number,
  monthName: string,
  day: number,
  hour: string,
  minute: string,
  second: string,
): number | undefined {
  const month = MONTHS.indexOf(monthName);
  const [h, min, s] = [Number(hour), Number(minute), Number(second)];
  if (h > 23 || min > 59 || s > 60) return undefined;
  const at = Date.UTC(year, month, day, h, min, Math.min(s, 59));
  // Date.UTC rolls 31 Feb over into March; such a date is malformed, not a date in March.
  return new Date(at).getUTCDate() === day ? at : undefined;
}

/** What happens after a retry-class outcome: retry at a time, or give up. */
export type RetryDecision =
  | { kind: 'retry'; at: Date }
  | { kind: 'exhausted'; reason: string }
  | { kind: 'expired' };

/**
 * After `attemptsMade` attempts ended in a retry-class outcome: schedule the next one, or give up. When the
 * retry time lies past both the notification's expiry and the policy's max age, whichever limit comes first
 * names the outcome.
 */
export function decideRetry(input: {
  policy: RetryPolicy;
  attemptsMade: number;
  firstQueuedAt: Date;
  expiresAt: Date | null;
  now: Date;
  retryAfterMs?: number;
  random: () => number;
}): RetryDecision {
  const { policy, attemptsMade, firstQueuedAt, expiresAt, now } = input;
  if (attemptsMade >= policy.maxAttempts) {
    return { kind: 'exhausted', reason: `max attempts (${policy.maxAttempts}) reached` };
  }
  const at = now.getTime() + retryDelayMs(policy, attemptsMade, input.random, input.retryAfterMs);
  const deadline = firstQueuedAt.getTime() + policy.maxAgeMs;
  if (expiresAt !== null && at >= expiresAt.getTime() && expiresAt.getTime() <= deadline) {
    return { kind: 'expired' };
  }
  if (at > deadline) {
    return { kind: 'exhausted', reason: `max age (${describeDuration(policy.maxAgeMs)}) reached` };
  }
  return { kind: 'retry', at: new Date(at) };
}

const UNITS: readonly [string, number][] = [
  ['day', DAY],
  ['hour', HOUR],
  ['minute', MINUTE],
  ['second', SECOND],
];

/** "3 days", "90 minutes": the largest unit that divides the duration evenly. */
function describeDuration(ms: number): string {
  for (const [unit, size] of UNITS) {
    if (ms >= size && ms % size === 0) {
      const n = ms / size;
      return `${n} ${unit}${n === 1 ? '' : 's'}`;
    }
  }
  return `${ms} ms`;
}
