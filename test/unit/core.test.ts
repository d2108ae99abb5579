import { describe, expect, it } from 'vitest';
import { generateApiKey, hashApiKey, isWellFormedApiKey } from '../../src/core/api-key.js';
import { channelNames } from '../../src/core/channels.js';
import { canonicalJson, fingerprint } from '../../src/core/fingerprint.js';
import { isUuid, newId } from '../../src/core/ids.js';
import { normalisePhone } from '../../src/core/phone.js';
import { endpointTakesType, planDeliveries } from '../../src/core/planning.js';
import { checkEmail, checkId, checkLocale, checkTextLength, checkTimezone } from '../../src/core/rules.js';

describe('field rules', () => {
  it.each(['u', 'user-1', 'a.b_c:d@e', 'x'.repeat(128)])('accepts the id %s', (id) => {
    expect(checkId(id)).toBeUndefined();
  });
  it.each(['', 'a b', 'ä', 'a/b', 'x'.repeat(129)])('rejects the id %j', (id) => {
    expect(checkId(id)).toBeDefined();
  });
  it.each(['a@b.co', 'first.last+tag@sub.example.co.uk'])('accepts the e-mail %s', (email) => {
    expect(checkEmail(email)).toBeUndefined();
  });
  it.each(['plain', 'a@b', '@b.co', 'a@-b.co', `${'l'.repeat(65)}@b.co`, 'a b@c.de'])(
    'rejects the e-mail %s',
    (e) => {
      expect(checkEmail(e)).toBeDefined();
    },
  );
  it.each([
    ['+4915112345678', '+4915112345678'],
    ['+49 (0)151 1234-5678', '+4915112345678'],
    [' +1 415 555 0100', '+14155550100'],
    ['+44 20 7946 0958', '+442079460958'],
    ['+61 491 570 156', '+61491570156'],
  ])('normalises the number %s to %s', (input, number) => {
    expect(normalisePhone(input)).toEqual({ number });
  });
  it.each([
    '12345',
    '015112345678',
    '004915112345678',
    '+0123',
    '+1234567890123456',
    '+1 555',
    '+15551234567',
    '+491511234567',
    `+49${'1'.repeat(60)}`,
  ])('rejects the number %s', (p) => {
    expect(normalisePhone(p)).toHaveProperty('problem');
  });
  it.each(['UTC', 'Europe/Vienna', 'America/Argentina/Buenos_Aires'])('accepts the zone %s', (z) => {
    expect(checkTimezone(z)).toBeUndefined();
  });
  it.each(['Mars/Base', '+01:00', 'vienna', ''])('rejects the zone %j', (z) => {
    expect(checkTimezone(z)).toBeDefined();
  });
  it.each(['de', 'de-AT', 'zh-Hant-TW'])('accepts the locale %s', (l) => {
    expect(checkLocale(l)).toBeUndefined();
  });
  it('counts emoji once toward text limits', () => {
    expect(checkTextLength('🎉'.repeat(256), 1, 256)).toBeUndefined();
    expect(checkTextLength('🎉'.repeat(257), 1, 256)).toBeDefined();
  });
});

describe('planDeliveries', () => {
  const plan = (input: Partial<Parameters<typeof planDeliveries>[0]>) =>
    planDeliveries({
      requested: [],
      type: 'order.shipped',
      rule: null,
      endpoints: [],
      configured: new Set(channelNames),
      ...input,
    });
  const now = { step: 0, delaySeconds: 0, cancelUnless: null, endpointId: null };

  it('uses IN_APP when no channel is requested and the type has no rule', () => {
    expect(plan({})).toEqual([{ ...now, channel: 'in_app', requires: null, skipReason: null }]);
  });
  it('names what each channel needs of the recipient, and the reason when it is missing', () => {
    expect(plan({ requested: ['email', 'sms', 'push'] })).toEqual([
      {
        ...now,
        channel: 'email',
        requires: 'email',
        skipReason: 'no_address: recipient has no e-mail address',
      },
      { ...now, channel: 'sms', requires: 'phone', skipReason: 'no_address: recipient has no phone number' },
      {
        ...now,
        channel: 'push',
        requires: 'pushTokens',
        skipReason: 'no_address: recipient has no active push token',
      },
    ]);
  });
  it('skips a channel that has no provider at planning (not_configured), never leaving it queued', () => {
    const configured = new Set(['in_app', 'webhook'] as const);
    expect(plan({ requested: ['in_app', 'email', 'push'], configured })).toEqual([
      { ...now, channel: 'in_app', requires: null, skipReason: null },
      {
        ...now,
        channel: 'email',
        requires: 'unavailable',
        skipReason: 'not_configured: no provider is configured for email',
      },
      {
        ...now,
        channel: 'push',
        requires: 'unavailable',
        skipReason: 'not_configured: no provider is configured for push',
      },
    ]);
  });
  it('follows the routing rule: ordered steps with their delays and cancel conditions', () => {
    const rule = {
      critical: false,
      steps: [
        { channels: ['in_app'] as const, delaySeconds: 0, cancelUnless: null },
        { channels: ['email'] as const, delaySeconds: 900, cancelUnless: 'read' as const },
      ],
    };
    expect(plan({ rule }).map((d) => [d.channel, d.step, d.delaySeconds, d.cancelUnless])).toEqual([
      ['in_app', 0, 0, null],
      ['email', 1, 900, 'read'],
    ]);
  });
  it('lets channels named in the Send override the rule', () => {
    const rule = {
      critical: false,
      steps: [{ channels: ['email'] as const, delaySeconds: 0, cancelUnless: null }],
    };
    expect(plan({ rule, requested: ['sms'] }).map((d) => d.channel)).toEqual(['sms']);
  });
  it('fans a webhook delivery out to every endpoint that takes the type, and skips when none does', () => {
    const endpoints = [
      { id: 'a', eventTypes: [] },
      { id: 'b', eventTypes: ['order.*'] },
      { id: 'c', eventTypes: ['invoice.paid'] },
      { id: 'd', eventTypes: ['notification.failed'] },
    ];
    expect(plan({ requested: ['webhook'], endpoints }).map((d) => d.endpointId)).toEqual(['a', 'b']);
    const none = plan({ requested: ['webhook'], endpoints: [endpoints[2]!] });
    expect(none).toEqual([
      {
        ...now,
        channel: 'webhook',
        requires: 'endpoint',
        skipReason: 'no_address: no enabled webhook endpoint subscribes to order.shipped',
      },
    ]);
  });
  it('sends status events only to endpoints that name them', () => {
    expect(endpointTakesType([], 'order.shipped')).toBe(true);
    expect(endpointTakesType(['notification.*'], 'notification.failed')).toBe(true);
    expect(endpointTakesType(['order.*'], 'orders.shipped')).toBe(false);
  });
});

describe('fingerprint', () => {
  it('ignores key order and undefined fields but not values', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }], u: undefined })).toBe('{"a":[{"c":3,"d":2}],"b":1}');
    expect(fingerprint({ a: 1, b: 2 })).toBe(fingerprint({ b: 2, a: 1 }));
    expect(fingerprint({ a: 1 })).not.toBe(fingerprint({ a: 2 }));
    expect(fingerprint({ at: new Date(0) })).toBe(fingerprint({ at: '1970-01-01T00:00:00.000Z' }));
  });
});

describe('ids and keys', () => {
  it('makes UUIDv7 ids that carry the time and increase strictly, even within one millisecond', () => {
    const before = Date.now();
    const ids = Array.from({ length: 10_000 }, newId);
    expect(ids.every(isUuid)).toBe(true);
    expect(ids.every((id) => id[14] === '7' && '89ab'.includes(id[19]!))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    const ms = Number.parseInt(ids[0]!.replace('-', '').slice(0, 12), 16);
    expect(ms).toBeGreaterThanOrEqual(before);
    expect(ms).toBeLessThanOrEqual(Date.now() + 1);
  });
  it('makes API keys that are well-formed, distinct, and stored only as a SHA-256', () => {
    const a = generateApiKey();
    const b = generateApiKey();
    expect(isWellFormedApiKey(a.key)).toBe(true);
    expect(a.key).not.toBe(b.key);
    expect(a.prefix).toBe(a.key.slice(0, 11));
    expect(a.hash).toBe(hashApiKey(a.key));
    expect(a.hash).toMatch(/^[0-9a-f]{64}$/);
  });
});
