import { describe, expect, it } from 'vitest';
import type { ChannelName } from '../../src/core/channels.js';
import {
  decideRetry,
  defaultRetryPolicies,
  parseRetryAfter,
  type RetryPolicy,
  retryDelayMs,
} from '../../src/core/retry-policy.js';

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const fixed = (value: number) => () => value;

describe('default retry policies', () => {
  it.each<[ChannelName, number, number, number, number]>([
    ['webhook', 5 * SECOND, 10 * HOUR, 8, 3 * DAY],
    ['push', 2 * SECOND, 30 * MINUTE, 6, DAY],
    ['email', 5 * SECOND, HOUR, 8, 2 * DAY],
    ['sms', 5 * SECOND, 30 * MINUTE, 6, DAY],
    ['in_app', SECOND, MINUTE, 10, DAY],
  ])('%s: base %i ms, cap %i ms, %i attempts, max age %i ms', (channel, base, cap, attempts, age) => {
    expect(defaultRetryPolicies[channel]).toEqual({
      baseDelayMs: base,
      maxDelayMs: cap,
      maxAttempts: attempts,
      maxAgeMs: age,
      retryAfterCapMs: HOUR,
    });
  });
});

describe('retryDelayMs', () => {
  const email = defaultRetryPolicies.email;

  it('doubles the jitter ceiling with each attempt made', () => {
    const delays = [1, 2, 3, 4].map((n) => retryDelayMs(email, n, fixed(0.5)));
    expect(delays).toEqual([2_500, 5_000, 10_000, 20_000]);
  });

  it('stops doubling at maxDelayMs', () => {
    expect(retryDelayMs(email, 20, fixed(0.5))).toBe(30 * MINUTE);
  });

  it('stays finite however many attempts were made', () => {
    expect(retryDelayMs(email, 10_000, fixed(0.5))).toBe(30 * MINUTE);
  });

  it('applies full jitter: a random 0 retries at once, one just under 1 waits almost the whole ceiling', () => {
    expect(retryDelayMs(email, 3, fixed(0))).toBe(0);
    expect(retryDelayMs(email, 3, fixed(0.9999))).toBe(19_998);
  });

  it('returns whole milliseconds', () => {
    expect(Number.isInteger(retryDelayMs(email, 1, fixed(1 / 3)))).toBe(true);
  });

  it('waits at least as long as a Retry-After asks', () => {
    expect(retryDelayMs(email, 1, fixed(0), 30 * SECOND)).toBe(30 * SECOND);
  });

  it('keeps the jittered delay when a Retry-After asks for less', () => {
    expect(retryDelayMs(email, 4, fixed(0.5), SECOND)).toBe(20_000);
  });

  it('caps a Retry-After at retryAfterCapMs', () => {
    expect(retryDelayMs(email, 1, fixed(0), 5 * HOUR)).toBe(HOUR);
  });

  it('honours a Retry-After beyond maxDelayMs up to the cap', () => {
    expect(retryDelayMs(defaultRetryPolicies.in_app, 1, fixed(0), 10 * MINUTE)).toBe(10 * MINUTE);
  });

  it.each([0, -1, 1.5])('rejects attemptsMade %s', (attemptsMade) => {
    expect(() => retryDelayMs(email, attemptsMade, fixed(0.5))).toThrow(RangeError);
  });
});

describe('parseRetryAfter', () => {
  const now = new Date('2026-10-21T07:27:00Z');

  it('reads delta-seconds', () => {
    expect(parseRetryAfter('120', now)).toBe(120 * SECOND);
  });

  it('reads zero delta-seconds as retry now', () => {
    expect(parseRetryAfter('0', now)).toBe(0);
  });

  it('ignores surrounding whitespace', () => {
    expect(parseRetryAfter(' 30 ', now)).toBe(30 * SECOND);
  });

  it('reads an IMF-fixdate as the time until then', () => {
    expect(parseRetryAfter('Wed, 21 Oct 2026 07:28:00 GMT', now)).toBe(MINUTE);
  });

  it('reads the obsolete RFC 850 date form', () => {
    expect(parseRetryAfter('Wednesday, 21-Oct-26 07:28:00 GMT', now)).toBe(MINUTE);
  });

  it('reads the obsolete asctime form as GMT', () => {
    expect(parseRetryAfter('Wed Oct 21 07:28:00 2026', now)).toBe(MINUTE);
    expect(parseRetryAfter('Sun Nov  1 07:27:00 2026', now)).toBe(11 * DAY);
  });

  it('takes a two-digit year more than 50 years ahead as the past century', () => {
    const in2070 = new Date('2070-01-01T00:00:00Z');
    expect(parseRetryAfter('Wednesday, 01-Jan-71 00:00:00 GMT', in2070)).toBe(365 * DAY);
    expect(parseRetryAfter('Friday, 01-Jan-77 00:00:00 GMT', now)).toBe(0);
  });

  it('gives 0 for a date already past', () => {
    expect(parseRetryAfter('Tue, 20 Oct 2026 07:28:00 GMT', now)).toBe(0);
  });

  it.each([null, undefined, ''])('gives undefined when the header is absent (%j)', (value) => {
    expect(parseRetryAfter(value, now)).toBeUndefined();
  });

  it.each([
    '-5',
    '1.5',
    '10s',
    'soon',
    'Wed, 31 Feb 2026 07:28:00 GMT',
    'Wed, 21 Oct 2026 24:00:00 GMT',
    'Wed, 21 Oct 2026 07:28:00 +0000',
    '2026-10-21T07:28:00Z',
  ])('gives undefined for the unparseable %j', (value) => {
    expect(parseRetryAfter(value, now)).toBeUndefined();
  });
});

describe('decideRetry', () => {
  const policy: RetryPolicy = {
    baseDelayMs: SECOND,
    maxDelayMs: MINUTE,
    maxAttempts: 5,
    maxAgeMs: HOUR,
    retryAfterCapMs: 10 * MINUTE,
  };
  const firstQueuedAt = new Date('2026-05-04T10:00:00Z');
  const now = new Date('2026-05-04T10:10:00Z');
  const plus = (ms: number, from = now) => new Date(from.getTime() + ms);
  // attemptsMade 3 with random 0.5: half of 4 s.
  const base = { policy, attemptsMade: 3, firstQueuedAt, expiresAt: null, now, random: fixed(0.5) };

  it('schedules the retry the jittered delay from now', () => {
    expect(decideRetry(base)).toEqual({ kind: 'retry', at: plus(2 * SECOND) });
  });

  it('retries after the second-to-last attempt', () => {
    expect(decideRetry({ ...base, attemptsMade: 4 }).kind).toBe('retry');
  });

  it('gives up once maxAttempts attempts were made', () => {
    expect(decideRetry({ ...base, attemptsMade: 5 })).toEqual({
      kind: 'exhausted',
      reason: 'max attempts (5) reached',
    });
  });

  it('gives up on max attempts even if a Retry-After asks for a short wait', () => {
    expect(decideRetry({ ...base, attemptsMade: 6, retryAfterMs: SECOND }).kind).toBe('exhausted');
  });

  it('waits as long as a Retry-After asks', () => {
    expect(decideRetry({ ...base, retryAfterMs: 5 * MINUTE })).toEqual({
      kind: 'retry',
      at: plus(5 * MINUTE),
    });
  });

  it('retries exactly at the max-age deadline', () => {
    const deadline = plus(HOUR, firstQueuedAt);
    expect(decideRetry({ ...base, now: plus(-2 * SECOND, deadline) })).toEqual({
      kind: 'retry',
      at: deadline,
    });
  });

  it('gives up when the retry would fall past the max age', () => {
    const lateNow = plus(HOUR - SECOND, firstQueuedAt);
    expect(decideRetry({ ...base, now: lateNow })).toEqual({
      kind: 'exhausted',
      reason: 'max age (1 hour) reached',
    });
  });

  it('names the default webhook max age in days', () => {
    const decision = decideRetry({
      ...base,
      policy: defaultRetryPolicies.webhook,
      now: plus(3 * DAY, firstQueuedAt),
    });
    expect(decision).toEqual({ kind: 'exhausted', reason: 'max age (3 days) reached' });
  });

  it('expires when the retry would fall exactly at expiresAt', () => {
    expect(decideRetry({ ...base, expiresAt: plus(2 * SECOND) })).toEqual({ kind: 'expired' });
  });

  it('retries when the retry falls just before expiresAt', () => {
    expect(decideRetry({ ...base, expiresAt: plus(2 * SECOND + 1) }).kind).toBe('retry');
  });

  it('expires when a Retry-After pushes the retry past expiresAt', () => {
    const decision = decideRetry({ ...base, retryAfterMs: 5 * MINUTE, expiresAt: plus(MINUTE) });
    expect(decision).toEqual({ kind: 'expired' });
  });

  it('expires when a notification already past expiresAt comes up for retry', () => {
    expect(decideRetry({ ...base, expiresAt: plus(-MINUTE) })).toEqual({ kind: 'expired' });
  });

  describe('when the retry lies past both limits, the earlier limit names the outcome', () => {
    // The retry would fall at deadline + 1 s.
    const lateNow = plus(HOUR - SECOND, firstQueuedAt);
    const deadline = plus(HOUR, firstQueuedAt);

    it('expiry before the max-age deadline: expired', () => {
      const decision = decideRetry({ ...base, now: lateNow, expiresAt: plus(-1, deadline) });
      expect(decision).toEqual({ kind: 'expired' });
    });

    it('max-age deadline before expiry: exhausted', () => {
      const decision = decideRetry({ ...base, now: lateNow, expiresAt: plus(500, deadline) });
      expect(decision).toEqual({ kind: 'exhausted', reason: 'max age (1 hour) reached' });
    });
  });
});
