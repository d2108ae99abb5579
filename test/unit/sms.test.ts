// SMS text as carriers count it — GSM-7 or UCS-2 for the whole message, extension characters at two
// septets, characters outside the BMP at two UCS-2 units, 160/153 and 70/67 per segment, no character split
// across segments — and shortening to a segment budget at a grapheme boundary.
import { describe, expect, it } from 'vitest';
import { fitSms, smsShape } from '../../src/core/sms.js';

describe('smsShape', () => {
  it.each([
    ['empty', '', 'GSM-7', 0, 1],
    ['ASCII at 160', 'a'.repeat(160), 'GSM-7', 160, 1],
    ['ASCII at 161', 'a'.repeat(161), 'GSM-7', 161, 2],
    ['ASCII at 306 (two full parts)', 'a'.repeat(306), 'GSM-7', 306, 2],
    ['ASCII at 307', 'a'.repeat(307), 'GSM-7', 307, 3],
    ['the euro sign counts two', `${'a'.repeat(158)}€`, 'GSM-7', 160, 1],
    ['a brace tips it over', `${'a'.repeat(159)}{`, 'GSM-7', 161, 2],
    ['an escape is never split across parts', `${'a'.repeat(152)}€${'a'.repeat(10)}`, 'GSM-7', 164, 2],
    ['an escape pushed to the next part', `${'a'.repeat(152)}€${'a'.repeat(152)}`, 'GSM-7', 306, 3],
    ['accented Latin inside GSM-7', 'é à ü ñ Ä Ö Ü ß', 'GSM-7', 15, 1],
    ['accented Latin outside GSM-7 (ç; only Ç is in it)', 'ç', 'UCS-2', 1, 1],
    ['a character outside GSM-7 makes it UCS-2', `${'a'.repeat(69)}ê`, 'UCS-2', 70, 1],
    ['UCS-2 at 71', `${'a'.repeat(70)}ê`, 'UCS-2', 71, 2],
    ['an emoji takes two units', `${'a'.repeat(68)}🎉`, 'UCS-2', 70, 1],
    ['a surrogate pair is never split across parts', `${'a'.repeat(66)}🎉${'a'.repeat(10)}`, 'UCS-2', 78, 2],
    ['a pair pushed to the next part', `${'a'.repeat(66)}🎉${'a'.repeat(66)}`, 'UCS-2', 134, 3],
    ['mixed scripts', 'Hello Привет 你好', 'UCS-2', 15, 1],
    ['Greek capitals are in GSM-7', 'ΔΦΓΛΩΠΨΣΘΞ', 'GSM-7', 10, 1],
  ])('%s', (_case, text, encoding, units, segments) => {
    expect(smsShape(text)).toEqual({ encoding, units, segments });
  });
});

describe('fitSms', () => {
  it('keeps a text that fits', () => {
    expect(fitSms('Your code is 123456', 1)).toEqual({ text: 'Your code is 123456', truncated: false });
  });

  it('cuts a GSM-7 text to one segment with a GSM-7 ellipsis', () => {
    const { text, truncated } = fitSms(`Order ${'x'.repeat(200)} shipped`, 1);
    expect(truncated).toBe(true);
    expect(text).toBe(`Order ${'x'.repeat(151)}...`);
    expect(smsShape(text)).toEqual({ encoding: 'GSM-7', units: 160, segments: 1 });
  });

  it('allows more segments when the type does', () => {
    const long = 'word '.repeat(100).trim();
    const { text } = fitSms(long, 2);
    expect(smsShape(text).segments).toBe(2);
    expect(text.endsWith('...')).toBe(true);
    expect(long.startsWith(text.slice(0, -3))).toBe(true);
  });

  it('never splits an emoji sequence or a combining character, and uses … in UCS-2', () => {
    const family = '👨‍👩‍👧';
    const { text } = fitSms(family.repeat(20), 1);
    expect(text.endsWith('…')).toBe(true);
    const kept = text.slice(0, -1);
    expect(kept).toBe(family.repeat(kept.length / family.length));
    expect(smsShape(text).segments).toBe(1);
    const accents = 'e\u0301'.repeat(100);
    const cut = fitSms(accents, 1).text.slice(0, -1);
    expect(cut).toBe('e\u0301'.repeat(cut.length / 2));
  });

  it('cuts inside a grapheme only when not even the first one fits', () => {
    const { text } = fitSms(`e${'\u0301'.repeat(200)}`, 1);
    expect(text).toBe(`e${'\u0301'.repeat(68)}…`);
    expect(smsShape(text)).toEqual({ encoding: 'UCS-2', units: 70, segments: 1 });
  });

  it('falls back to GSM-7 when the cut drops the only UCS-2 character', () => {
    const { text } = fitSms(`${'a'.repeat(170)}ê`, 1);
    expect(text).toBe(`${'a'.repeat(157)}...`);
    expect(smsShape(text).encoding).toBe('GSM-7');
  });
});
