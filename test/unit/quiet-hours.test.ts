import { describe, expect, it } from 'vitest';
import { isWithinQuietHours, type QuietHours, quietHoursEnd } from '../../src/core/quiet-hours.js';

const at = (iso: string) => new Date(iso);
const window = (start: string, end: string, timezone: string): QuietHours => ({ start, end, timezone });

describe('a 22:00-07:00 window in Europe/Vienna (CET, UTC+1 in January)', () => {
  const night = window('22:00', '07:00', 'Europe/Vienna');

  it('at 23:30 local, ends at 07:00 local the next day', () => {
    expect(quietHoursEnd(night, at('2026-01-15T22:30:00Z'))).toEqual(at('2026-01-16T06:00:00Z'));
  });

  it('at 06:59 local, ends at 07:00 the same day', () => {
    expect(quietHoursEnd(night, at('2026-01-16T05:59:00Z'))).toEqual(at('2026-01-16T06:00:00Z'));
  });

  it('at local midnight, ends at 07:00 that morning', () => {
    expect(quietHoursEnd(night, at('2026-01-15T23:00:00Z'))).toEqual(at('2026-01-16T06:00:00Z'));
  });

  it('starts exactly at 22:00 local', () => {
    expect(quietHoursEnd(night, at('2026-01-15T21:00:00Z'))).toEqual(at('2026-01-16T06:00:00Z'));
    expect(isWithinQuietHours(night, at('2026-01-15T20:59:59.999Z'))).toBe(false);
  });

  it('is over exactly at 07:00 local', () => {
    expect(isWithinQuietHours(night, at('2026-01-16T05:59:59.999Z'))).toBe(true);
    expect(quietHoursEnd(night, at('2026-01-16T06:00:00Z'))).toBeNull();
  });

  it('is not in force at midday', () => {
    expect(isWithinQuietHours(night, at('2026-01-16T11:00:00Z'))).toBe(false);
  });

  it('follows the zone into summer time (CEST, UTC+2)', () => {
    expect(quietHoursEnd(night, at('2026-07-01T21:30:00Z'))).toEqual(at('2026-07-02T05:00:00Z'));
  });
});

describe('a 09:00-17:00 window in Europe/Vienna', () => {
  const workday = window('09:00', '17:00', 'Europe/Vienna');

  it('at midday, ends at 17:00 the same day', () => {
    expect(quietHoursEnd(workday, at('2026-01-15T11:00:00Z'))).toEqual(at('2026-01-15T16:00:00Z'));
  });

  it('starts exactly at 09:00 local', () => {
    expect(quietHoursEnd(workday, at('2026-01-15T08:00:00Z'))).toEqual(at('2026-01-15T16:00:00Z'));
  });

  it('is not in force before 09:00, at 17:00 or overnight', () => {
    for (const instant of ['2026-01-15T07:59:00Z', '2026-01-15T16:00:00Z', '2026-01-15T23:30:00Z']) {
      expect(isWithinQuietHours(workday, at(instant))).toBe(false);
    }
  });
});

describe('Europe/Berlin on the spring-forward night (2026-03-29, 02:00 CET becomes 03:00 CEST at 01:00Z)', () => {
  it('a window ending in the gap (01:00-02:30) ends at 03:00 local, 01:00Z', () => {
    const quiet = window('01:00', '02:30', 'Europe/Berlin');
    expect(quietHoursEnd(quiet, at('2026-03-29T00:30:00Z'))).toEqual(at('2026-03-29T01:00:00Z'));
    expect(isWithinQuietHours(quiet, at('2026-03-29T00:59:59.999Z'))).toBe(true);
    expect(isWithinQuietHours(quiet, at('2026-03-29T01:00:00Z'))).toBe(false);
  });

  it('a window from the evening before ending in the gap (22:00-02:30) ends at 03:00 local', () => {
    const quiet = window('22:00', '02:30', 'Europe/Berlin');
    expect(quietHoursEnd(quiet, at('2026-03-28T22:00:00Z'))).toEqual(at('2026-03-29T01:00:00Z'));
  });

  it('a window starting in the gap (02:30-06:00) starts at 03:00 local', () => {
    const quiet = window('02:30', '06:00', 'Europe/Berlin');
    expect(isWithinQuietHours(quiet, at('2026-03-29T00:59:59Z'))).toBe(false);
    expect(quietHoursEnd(quiet, at('2026-03-29T01:00:00Z'))).toEqual(at('2026-03-29T04:00:00Z'));
  });

  it('a 22:00-07:00 night is an hour shorter and ends at 07:00 CEST', () => {
    const quiet = window('22:00', '07:00', 'Europe/Berlin');
    expect(quietHoursEnd(quiet, at('2026-03-28T21:00:00Z'))).toEqual(at('2026-03-29T05:00:00Z'));
  });
});

describe('Europe/Berlin on the fall-back night (2026-10-25, 03:00 CEST becomes 02:00 CET at 01:00Z)', () => {
  it('a 22:00-07:00 night is an hour longer and ends at 07:00 CET', () => {
    const quiet = window('22:00', '07:00', 'Europe/Berlin');
    expect(quietHoursEnd(quiet, at('2026-10-24T21:00:00Z'))).toEqual(at('2026-10-25T06:00:00Z'));
  });

  it('a window ending in the repeated hour (01:00-02:30) ends at the first 02:30, in CEST', () => {
    const quiet = window('01:00', '02:30', 'Europe/Berlin');
    expect(quietHoursEnd(quiet, at('2026-10-25T00:15:00Z'))).toEqual(at('2026-10-25T00:30:00Z'));
  });

  it('is not in force again when the clock shows 02:15 the second time', () => {
    const quiet = window('01:00', '02:30', 'Europe/Berlin');
    expect(isWithinQuietHours(quiet, at('2026-10-25T01:15:00Z'))).toBe(false);
  });

  it('a window starting in the repeated hour (02:30-06:00) starts at the first 02:30 and holds through the second 02:15', () => {
    const quiet = window('02:30', '06:00', 'Europe/Berlin');
    expect(isWithinQuietHours(quiet, at('2026-10-25T00:29:59Z'))).toBe(false);
    expect(quietHoursEnd(quiet, at('2026-10-25T00:30:00Z'))).toEqual(at('2026-10-25T05:00:00Z'));
    expect(quietHoursEnd(quiet, at('2026-10-25T01:15:00Z'))).toEqual(at('2026-10-25T05:00:00Z'));
  });
});

describe('America/New_York', () => {
  const night = window('22:00', '07:00', 'America/New_York');

  it('in winter (EST, UTC-5), 23:00 local ends at 07:00 local the next day', () => {
    expect(quietHoursEnd(night, at('2026-01-15T04:00:00Z'))).toEqual(at('2026-01-15T12:00:00Z'));
  });

  it('in summer (EDT, UTC-4), 23:00 local ends at 07:00 local the next day', () => {
    expect(quietHoursEnd(night, at('2026-07-01T03:00:00Z'))).toEqual(at('2026-07-01T11:00:00Z'));
  });

  it('on the spring-forward night (2026-03-08), a window ending at 02:30 ends at 03:00 EDT', () => {
    const quiet = window('23:00', '02:30', 'America/New_York');
    expect(quietHoursEnd(quiet, at('2026-03-08T05:00:00Z'))).toEqual(at('2026-03-08T07:00:00Z'));
  });

  it('on the fall-back night (2026-11-01), a window ending at 01:30 ends at the first 01:30, in EDT', () => {
    const quiet = window('22:00', '01:30', 'America/New_York');
    expect(quietHoursEnd(quiet, at('2026-11-01T03:00:00Z'))).toEqual(at('2026-11-01T05:30:00Z'));
    expect(isWithinQuietHours(quiet, at('2026-11-01T06:15:00Z'))).toBe(false);
  });
});

describe('zones with unusual offsets', () => {
  it('handles a quarter-hour offset (Asia/Kathmandu, UTC+5:45)', () => {
    const quiet = window('22:00', '07:00', 'Asia/Kathmandu');
    expect(quietHoursEnd(quiet, at('2026-01-15T17:00:00Z'))).toEqual(at('2026-01-16T01:15:00Z'));
  });

  it('handles UTC', () => {
    const quiet = window('22:00', '07:00', 'UTC');
    expect(quietHoursEnd(quiet, at('2026-01-15T22:00:00Z'))).toEqual(at('2026-01-16T07:00:00Z'));
  });
});

describe('a window whose start equals its end', () => {
  const none = window('08:00', '08:00', 'Europe/Vienna');

  it.each(['2026-01-15T07:00:00Z', '2026-01-15T07:30:00Z', '2026-01-15T21:00:00Z'])(
    'is never in force (%s)',
    (instant) => {
      expect(quietHoursEnd(none, at(instant))).toBeNull();
    },
  );
});

describe('malformed windows', () => {
  it.each([
    ['7:00', '08:00'],
    ['22:00', '24:00'],
    ['22:60', '07:00'],
  ])('rejects start %s / end %s', (start, end) => {
    expect(() => quietHoursEnd(window(start, end, 'Europe/Vienna'), at('2026-01-15T12:00:00Z'))).toThrow(
      RangeError,
    );
  });
});
