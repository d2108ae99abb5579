// The Redis bus's registry of which instances hold each user expires by Redis's clock, not by an instance's:
// an instance whose clock runs ahead of the others must not take their live entries for expired and drop
// their users' events. Two buses in one process; the process clock jumps between the registration and the
// publish, as a host clock ahead of another host's would look. Needs Redis (REDIS_URL).
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { BusEvent } from '../../src/realtime/bus.js';
import { createRedisBus } from '../../src/realtime/redis-bus.js';
import { until } from '../support/until.js';

const url = process.env.REDIS_URL;
const TTL_MS = 60_000;

describe.runIf(url)('the Redis bus registry with instances whose clocks disagree', () => {
  let holder: Awaited<ReturnType<typeof createRedisBus>>;
  let sender: Awaited<ReturnType<typeof createRedisBus>>;
  beforeAll(async () => {
    const options = { url: url!, registryTtlMs: TTL_MS, onError: () => {} };
    holder = await createRedisBus(options);
    sender = await createRedisBus(options);
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(async () => {
    await holder?.close();
    await sender?.close();
  });

  it.each([
    { when: 'ten minutes ahead of', shiftMs: 10 * 60_000 },
    { when: 'ten minutes behind', shiftMs: -10 * 60_000 },
  ])("routes to a user's instance when the sender's clock is $when the holder's", async ({ shiftMs }) => {
    const userId = `clock-${shiftMs}-${Date.now()}`;
    const received: BusEvent[] = [];
    const unsubscribe = await holder.subscribe(userId, (event) => received.push(event));
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + shiftMs, shouldAdvanceTime: true });
    await sender.publish({ kind: 'resync', userId });
    await until('the event reached the holder', 5_000, () => (received.length > 0 ? true : undefined));
    expect(received).toEqual([{ kind: 'resync', userId }]);
    unsubscribe();
  });
});
