// Quiet hours: a daily window of the recipient's wall-clock time in which non-urgent messages wait.
// Each night's window is turned into a pair of instants, so membership stays exact across midnight and
// across DST changes: a start or end that falls into a spring-forward gap becomes the first instant after
// the gap; one that occurs twice on a fall-back night means its first occurrence.

export interface QuietHours {
  /** "HH:MM", 24 h, recipient's wall clock. A window may cross midnight (22:00-07:00); start == end means none. */
  start: string;
  end: string;
  /** IANA time zone, e.g. Europe/Vienna. */
  timezone: string;
}

/** When `at` falls inside the recipient's quiet window, the instant the window ends; otherwise null. */
export function quietHoursEnd(quiet: QuietHours, at: Date): Date | null {
  const start = minuteOfDay(quiet.start, 'start');
  const end = minuteOfDay(quiet.end, 'end');
  if (start === end) return null;
  const crossesMidnight = start > end;
  const today = localMidnight(quiet.timezone, at.getTime());
  // Only the window that began today or yesterday (local dates) can hold `at`.
  for (const day of [today - DAY, today]) {
    const from = instantOfWallTime(quiet.timezone, day + start * MINUTE);
    const until = instantOfWallTime(quiet.timezone, (crossesMidnight ? day + DAY : day) + end * MINUTE);
    if (from <= at.getTime() && at.getTime() < until) return new Date(until);
  }
  return null;
}

export function isWithinQuietHours(quiet: QuietHours, at: Date): boolean {
  return quietHoursEnd(quiet, at) !== null;
}

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const DAY = 24 * 60 * MINUTE;
const CLOCK = /^([01]\d|2[0-3]):([0-5]\d)$/;

function minuteOfDay(clock: string, field: 'start' | 'end'): number {
  const m = CLOCK.exec(clock);
  if (!m) throw new RangeError(`quiet hours ${field} must be HH:MM (24 h), got ${JSON.stringify(clock)}`);
  return Number(m[1]) * 60 + Number(m[2]);
}

// Wall times below are "local ms": the local date and time written as if it were UTC, so that date
// arithmetic on them is plain addition.

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

/** The wall time at `instant` (whole seconds) in `timeZone`, as local ms. */
function wallTime(timeZone: string, instant: number): number {
  const fields: Partial<Record<Intl.DateTimeFormatPartTypes, number>> = {};
  for (const part of formatterFor(timeZone).formatToParts(instant)) {
    if (part.type !== 'literal') fields[part.type] = Number(part.value);
  }
  const { year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0 } = fields;
  return Date.UTC(year, month - 1, day, hour, minute, second);
}

/** UTC offset in force at `instant`, in ms (local = instant + offset). */
function offsetAt(timeZone: string, instant: number): number {
  const wholeSecond = Math.floor(instant / SECOND) * SECOND;
  return wallTime(timeZone, wholeSecond) - wholeSecond;
}

function localMidnight(timeZone: string, instant: number): number {
  const local = instant + offsetAt(timeZone, instant);
  return local - (((local % DAY) + DAY) % DAY);
}

/**
 * The instant the wall clock in `timeZone` shows `local`. Offset correction: guess with the offsets in force
 * a day before and a day after (no zone changes its offset twice within a day), then re-check each guess.
 * Two that hold mean a fall-back overlap, and the earlier wins; none means a spring-forward gap.
 */
function instantOfWallTime(timeZone: string, local: number): number {
  const before = offsetAt(timeZone, local - DAY);
  const after = offsetAt(timeZone, local + DAY);
  const valid = [local - before, local - after].filter(
    (guess) => guess + offsetAt(timeZone, guess) === local,
  );
  if (valid.length > 0) return Math.min(...valid);
  return offsetChange(timeZone, local - after, local - before);
}

/** The first instant in (lo, hi] whose offset differs from lo's: the moment the clocks jumped. */
function offsetChange(timeZone: string, lo: number, hi: number): number {
  const offsetBefore = offsetAt(timeZone, lo);
  let [low, high] = [lo, hi];
  // Zones change offset on whole seconds, so bisecting down to one second finds the change exactly.
  while (high - low > SECOND) {
    const mid = Math.floor((low + high) / 2 / SECOND) * SECOND;
    if (offsetAt(timeZone, mid) === offsetBefore) low = mid;
    else high = mid;
  }
  return high;
}
