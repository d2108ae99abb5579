// How database errors are classified: which make an unreachable database (UNAVAILABLE), and which may be one
// item's fault, so a grouped statement is retried one caller at a time.
import { describe, expect, it } from 'vitest';
import { isDatabaseUnavailable, mayBeOneItemsFault } from '../../src/store/errors.js';

const sqlError = (code: string) => Object.assign(new Error(`sqlstate ${code}`), { code });

describe('mayBeOneItemsFault', () => {
  it.each([
    ['22P02', 'invalid text representation'],
    ['22P05', 'untranslatable character (NUL)'],
    ['23505', 'unique violation'],
    ['54000', 'program limit exceeded'],
    ['40P01', 'deadlock detected'],
  ])('retries callers alone after %s (%s)', (code) => {
    expect(mayBeOneItemsFault(sqlError(code))).toBe(true);
  });

  it.each([
    ['57014', 'statement timeout'],
    ['53100', 'disk full'],
    ['53200', 'out of memory'],
    ['25006', 'read-only transaction after a failover'],
    ['55P03', 'lock not available'],
    ['08006', 'connection failure'],
    ['57P01', 'admin shutdown'],
    ['ECONNRESET', 'connection reset'],
  ])('fails the whole group after %s (%s)', (code) => {
    expect(mayBeOneItemsFault(sqlError(code))).toBe(false);
  });

  it('looks through a wrapping error (drizzle) to its cause', () => {
    const wrapped = new Error('Failed query: insert ...\nparams: ...', { cause: sqlError('22P02') });
    expect(mayBeOneItemsFault(wrapped)).toBe(true);
    expect(mayBeOneItemsFault(new Error('x', { cause: sqlError('57014') }))).toBe(false);
  });
});

describe('isDatabaseUnavailable', () => {
  it.each(['08006', '57P01', '53300', '40001', '40P01', 'ECONNREFUSED'])('is true for %s', (code) => {
    expect(isDatabaseUnavailable(sqlError(code))).toBe(true);
  });
  it.each(['22P02', '23505', '57014'])('is false for %s', (code) => {
    expect(isDatabaseUnavailable(sqlError(code))).toBe(false);
  });
});
