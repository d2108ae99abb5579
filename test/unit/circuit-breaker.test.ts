import { describe, expect, it } from 'vitest';
import { CircuitBreaker, CircuitBreakers } from '../../src/delivery/circuit-breaker.js';

const options = { failureThreshold: 3, openMs: 1_000, halfOpenProbes: 1 };

function trip(breaker: CircuitBreaker, times: number, now: number): void {
  for (let i = 0; i < times; i++) {
    expect(breaker.acquire(now)).toEqual({ allowed: true });
    breaker.record('trip', now);
  }
}

/** A breaker whose open period started at t = 0 and ends at t = 1000. */
function openedAtZero(overrides: Partial<typeof options> = {}): CircuitBreaker {
  const breaker = new CircuitBreaker({ ...options, ...overrides });
  trip(breaker, breaker.options.failureThreshold, 0);
  return breaker;
}

describe('CircuitBreaker', () => {
  it('starts closed and admits attempts', () => {
    const breaker = new CircuitBreaker();
    expect(breaker.state(0)).toBe('closed');
    expect(breaker.acquire(0)).toEqual({ allowed: true });
  });

  it('opens at once for as long as a provider says it takes nothing (openFor), then half-opens', () => {
    const breaker = new CircuitBreaker(options);
    breaker.openFor(3_600_000, 0);
    expect(breaker.acquire(10)).toEqual({ allowed: false, retryAt: 3_600_000 });
    // A shorter open period asked for later does not cut the longer one short.
    breaker.openFor(1_000, 500);
    expect(breaker.acquire(2_000)).toEqual({ allowed: false, retryAt: 3_600_000 });
    expect(breaker.state(3_600_000)).toBe('half_open');
    expect(breaker.acquire(3_600_000)).toEqual({ allowed: true });
    breaker.record('success', 3_600_001);
    expect(breaker.state(3_600_001)).toBe('closed');
    // Opened the ordinary way again, it lasts openMs.
    trip(breaker, 3, 4_000_000);
    expect(breaker.acquire(4_000_000)).toEqual({ allowed: false, retryAt: 4_001_000 });
  });

  it('defaults to 5 trips, 30 s open, 1 probe', () => {
    expect(new CircuitBreaker().options).toEqual({ failureThreshold: 5, openMs: 30_000, halfOpenProbes: 1 });
  });

  it('stays closed one trip short of the threshold', () => {
    const breaker = new CircuitBreaker(options);
    trip(breaker, 2, 0);
    expect(breaker.state(0)).toBe('closed');
  });

  it('opens after failureThreshold consecutive trips and refuses until openMs has passed', () => {
    const breaker = new CircuitBreaker(options);
    trip(breaker, 3, 100);
    expect(breaker.state(100)).toBe('open');
    expect(breaker.acquire(100)).toEqual({ allowed: false, retryAt: 1_100 });
    expect(breaker.acquire(1_099)).toEqual({ allowed: false, retryAt: 1_100 });
  });

  it('never opens on neutral results, however many', () => {
    const breaker = new CircuitBreaker(options);
    for (let i = 0; i < 100; i++) {
      expect(breaker.acquire(i)).toEqual({ allowed: true });
      breaker.record('neutral', i);
    }
    expect(breaker.state(100)).toBe('closed');
  });

  it('does not let neutral results break a run of trips either', () => {
    const breaker = new CircuitBreaker(options);
    trip(breaker, 2, 0);
    breaker.record('neutral', 0);
    trip(breaker, 1, 0);
    expect(breaker.state(0)).toBe('open');
  });

  it('resets the consecutive count on success', () => {
    const breaker = new CircuitBreaker(options);
    trip(breaker, 2, 0);
    breaker.record('success', 0);
    trip(breaker, 2, 0);
    expect(breaker.state(0)).toBe('closed');
    trip(breaker, 1, 0);
    expect(breaker.state(0)).toBe('open');
  });

  it('turns half-open once openMs has passed', () => {
    const breaker = openedAtZero();
    expect(breaker.state(999)).toBe('open');
    expect(breaker.state(1_000)).toBe('half_open');
  });

  it('closes when the probe succeeds, and needs a full run of trips to open again', () => {
    const breaker = openedAtZero();
    expect(breaker.acquire(1_000)).toEqual({ allowed: true });
    breaker.record('success', 1_010);
    expect(breaker.state(1_010)).toBe('closed');
    trip(breaker, 2, 1_020);
    expect(breaker.state(1_020)).toBe('closed');
  });

  it('re-opens for another openMs when the probe trips', () => {
    const breaker = openedAtZero();
    expect(breaker.acquire(1_000)).toEqual({ allowed: true });
    breaker.record('trip', 1_050);
    expect(breaker.state(1_050)).toBe('open');
    expect(breaker.acquire(1_050)).toEqual({ allowed: false, retryAt: 2_050 });
    expect(breaker.state(2_050)).toBe('half_open');
  });

  it('admits only halfOpenProbes concurrent probes while half-open', () => {
    const breaker = openedAtZero({ halfOpenProbes: 2 });
    expect(breaker.acquire(1_000)).toEqual({ allowed: true });
    expect(breaker.acquire(1_001)).toEqual({ allowed: true });
    const refused = breaker.acquire(1_002);
    expect(refused.allowed).toBe(false);
    expect(breaker.state(1_002)).toBe('half_open');
  });

  it('frees a probe slot on a neutral result without changing state', () => {
    const breaker = openedAtZero();
    expect(breaker.acquire(1_000)).toEqual({ allowed: true });
    expect(breaker.acquire(1_000).allowed).toBe(false);
    breaker.record('neutral', 1_010);
    expect(breaker.state(1_010)).toBe('half_open');
    expect(breaker.acquire(1_010)).toEqual({ allowed: true });
  });

  it('reclaims the slot of a probe whose outcome never arrives after openMs', () => {
    const breaker = openedAtZero();
    expect(breaker.acquire(1_000)).toEqual({ allowed: true });
    expect(breaker.acquire(1_500)).toEqual({ allowed: false, retryAt: 2_000 });
    expect(breaker.acquire(2_000)).toEqual({ allowed: true });
  });

  it('ignores outcomes recorded while open: the open period runs its course', () => {
    const breaker = openedAtZero();
    breaker.record('success', 500);
    breaker.record('trip', 900);
    expect(breaker.acquire(999)).toEqual({ allowed: false, retryAt: 1_000 });
    expect(breaker.state(1_000)).toBe('half_open');
  });

  it.each([
    { failureThreshold: 0 },
    { failureThreshold: 1.5 },
    { openMs: -1 },
    { openMs: Number.NaN },
    { halfOpenProbes: 0 },
  ])('rejects the options %j', (bad) => {
    expect(() => new CircuitBreaker(bad)).toThrow(RangeError);
    expect(() => new CircuitBreakers(bad)).toThrow(RangeError);
  });
});

describe('CircuitBreakers', () => {
  it('keeps one breaker per provider, independent of the others', () => {
    const breakers = new CircuitBreakers(options);
    expect(breakers.get('apns')).toBe(breakers.get('apns'));
    trip(breakers.get('apns'), 3, 0);
    expect(breakers.get('fcm').acquire(0)).toEqual({ allowed: true });
    expect(breakers.states(0)).toEqual({ apns: 'open', fcm: 'closed' });
    expect(breakers.states(1_000)).toEqual({ apns: 'half_open', fcm: 'closed' });
  });
});
