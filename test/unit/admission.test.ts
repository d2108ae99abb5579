// Admission control for session starts: a bounded number at once, the rest waiting in arrival order for a
// bounded time (and in bounded numbers), refused beyond that with a delay within the documented bounds.
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  type Admission,
  createAdmissionControl,
  MAX_RETRY_AFTER_MS,
  MIN_RETRY_AFTER_MS,
} from '../../src/realtime/admission.js';

function released(admission: Admission): () => void {
  if (!admission.admitted) throw new Error(`refused: ${admission.reason}`);
  return admission.release;
}

describe('admission control', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('admits up to the limit, then the waiting ones in arrival order as slots free', async () => {
    const control = createAdmissionControl({ limit: 2, maxWaitMs: 60_000, maxQueued: 10 });
    const first = released(await control.request().admitted);
    const second = released(await control.request().admitted);
    const order: string[] = [];
    const noted = (name: string) => (admission: Admission) => {
      order.push(name);
      return admission;
    };
    const third = control.request().admitted.then(noted('third'));
    const fourth = control.request().admitted.then(noted('fourth'));
    expect([control.inProgress(), control.waiting()]).toEqual([2, 2]);
    first();
    first(); // a second release of the same slot frees nothing more
    const thirdDone = released(await third);
    expect(order).toEqual(['third']);
    expect([control.inProgress(), control.waiting()]).toEqual([2, 1]);
    second();
    released(await fourth)();
    thirdDone();
    expect(order).toEqual(['third', 'fourth']);
    expect([control.inProgress(), control.waiting()]).toEqual([0, 0]);
  });

  it('refuses a start that waited too long, and one beyond the queue at once, with a bounded delay', async () => {
    vi.useFakeTimers();
    const control = createAdmissionControl({ limit: 1, maxWaitMs: 500, maxQueued: 1 });
    released(await control.request().admitted);
    const waiting = control.request().admitted;
    const beyond = await control.request().admitted;
    expect(beyond).toMatchObject({ admitted: false, reason: 'queue full' });
    await vi.advanceTimersByTimeAsync(499);
    expect(control.waiting()).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    const refused = await waiting;
    expect(refused).toMatchObject({ admitted: false, reason: 'waited too long' });
    for (const r of [beyond, refused]) {
      if (r.admitted) throw new Error('admitted');
      expect(r.retryAfterMs).toBeGreaterThanOrEqual(MIN_RETRY_AFTER_MS);
      expect(r.retryAfterMs).toBeLessThanOrEqual(MAX_RETRY_AFTER_MS);
    }
    expect([control.inProgress(), control.waiting()]).toEqual([1, 0]);
  });

  it('gives up the place of a client that left while waiting, and the slot of one that left after', async () => {
    const control = createAdmissionControl({ limit: 1, maxWaitMs: 60_000, maxQueued: 10 });
    const holder = control.request();
    released(await holder.admitted);
    const left = control.request();
    const next = control.request();
    left.cancel();
    expect(control.waiting()).toBe(1);
    expect(await left.admitted).toMatchObject({ admitted: false });
    holder.cancel(); // the slot holder's connection closed
    const admitted = await next.admitted;
    expect(admitted.admitted).toBe(true);
    next.cancel();
    expect([control.inProgress(), control.waiting()]).toEqual([0, 0]);
  });
});
