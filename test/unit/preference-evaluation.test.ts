import { describe, expect, it } from 'vitest';
import type { ChannelName } from '../../src/core/channels.js';
import { evaluatePreferences, type PreferenceSet } from '../../src/core/preference-evaluation.js';

const nightInVienna = { start: '22:00', end: '07:00', timezone: 'Europe/Vienna' };
// 23:30 in Vienna (CET); the window ends at 07:00 CET, 06:00Z.
const duringQuietHours = new Date('2026-01-15T22:30:00Z');
const quietHoursOver = new Date('2026-01-16T06:00:00Z');
const midday = new Date('2026-01-15T11:00:00Z');

const prefs = (overrides: Partial<PreferenceSet>): PreferenceSet => ({
  channels: {},
  types: {},
  quietHours: null,
  ...overrides,
});

const input = (channel: ChannelName, overrides: { type?: string; critical?: boolean; at?: Date } = {}) => ({
  type: 'order.shipped',
  channel,
  critical: false,
  at: midday,
  ...overrides,
});

describe('opt-outs', () => {
  it('sends when the recipient has no preferences', () => {
    expect(evaluatePreferences(null, input('email'))).toEqual({ action: 'send' });
  });

  it('sends when no switch is set: missing switches mean enabled', () => {
    expect(evaluatePreferences(prefs({}), input('email'))).toEqual({ action: 'send' });
  });

  it('skips a channel the recipient turned off', () => {
    const verdict = evaluatePreferences(prefs({ channels: { email: false } }), input('email'));
    expect(verdict).toEqual({ action: 'skip', reason: 'preference: email is turned off' });
  });

  it('sends on a channel explicitly turned on', () => {
    expect(evaluatePreferences(prefs({ channels: { email: true } }), input('email'))).toEqual({
      action: 'send',
    });
  });

  it('leaves other channels alone when one is turned off', () => {
    expect(evaluatePreferences(prefs({ channels: { email: false } }), input('sms'))).toEqual({
      action: 'send',
    });
  });

  it('skips a channel turned off for the notification type', () => {
    const set = prefs({ types: { 'order.shipped': { push: false } } });
    expect(evaluatePreferences(set, input('push'))).toEqual({
      action: 'skip',
      reason: 'preference: push is turned off for order.shipped',
    });
  });

  it('lets a type switch turned on win over the channel turned off', () => {
    const set = prefs({ channels: { push: false }, types: { 'order.shipped': { push: true } } });
    expect(evaluatePreferences(set, input('push'))).toEqual({ action: 'send' });
  });

  it('lets a type switch turned off win over the channel turned on', () => {
    const set = prefs({ channels: { push: true }, types: { 'order.shipped': { push: false } } });
    expect(evaluatePreferences(set, input('push'))).toEqual({
      action: 'skip',
      reason: 'preference: push is turned off for order.shipped',
    });
  });

  it('falls back to the channel switch when the type sets no switch for that channel', () => {
    const set = prefs({ channels: { push: false }, types: { 'order.shipped': { email: true } } });
    expect(evaluatePreferences(set, input('push'))).toEqual({
      action: 'skip',
      reason: 'preference: push is turned off',
    });
  });

  it('ignores switches of other notification types', () => {
    const set = prefs({ types: { 'marketing.digest': { email: false } } });
    expect(evaluatePreferences(set, input('email'))).toEqual({ action: 'send' });
  });
});

describe('quiet hours', () => {
  const quiet = prefs({ quietHours: nightInVienna });

  it.each<ChannelName>(['push', 'email', 'sms'])('defer %s to the end of the window', (channel) => {
    expect(evaluatePreferences(quiet, input(channel, { at: duringQuietHours }))).toEqual({
      action: 'defer',
      until: quietHoursOver,
      reason: 'quiet_hours: deferred until 2026-01-16T06:00:00.000Z',
    });
  });

  it.each<ChannelName>(['in_app', 'webhook'])('never defer %s', (channel) => {
    expect(evaluatePreferences(quiet, input(channel, { at: duringQuietHours }))).toEqual({ action: 'send' });
  });

  it('send outside the window', () => {
    expect(evaluatePreferences(quiet, input('push', { at: midday }))).toEqual({ action: 'send' });
  });

  it('give way to an opt-out: a channel turned off is skipped, not deferred', () => {
    const set = prefs({ channels: { sms: false }, quietHours: nightInVienna });
    expect(evaluatePreferences(set, input('sms', { at: duringQuietHours }))).toEqual({
      action: 'skip',
      reason: 'preference: sms is turned off',
    });
  });
});

describe('critical notifications', () => {
  it('bypass a channel turned off', () => {
    const set = prefs({ channels: { sms: false } });
    expect(evaluatePreferences(set, input('sms', { critical: true }))).toEqual({ action: 'send' });
  });

  it('bypass a channel turned off for the type', () => {
    const set = prefs({ types: { 'order.shipped': { sms: false } } });
    expect(evaluatePreferences(set, input('sms', { critical: true }))).toEqual({ action: 'send' });
  });

  it('bypass quiet hours', () => {
    const set = prefs({ quietHours: nightInVienna });
    const verdict = evaluatePreferences(set, input('push', { critical: true, at: duringQuietHours }));
    expect(verdict).toEqual({ action: 'send' });
  });
});
