// The shutdown drain spreads the end of live connections over its window, so their clients do not all
// reconnect in the same second; few connections are not held back for the whole window (at most DRAIN_RATE
// ends a second); one that ended by itself before the drain is not ended again.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryBus, createRealtime, DRAIN_RATE, type Realtime } from '../../src/realtime/index.js';
import { pgliteEngine, type TestDatabase } from '../support/engines.js';

describe('the shutdown drain', () => {
  let db: TestDatabase;
  const realtimes: Realtime[] = [];
  beforeAll(async () => {
    db = await pgliteEngine.open();
  });
  afterAll(async () => {
    for (const realtime of realtimes) await realtime.close();
    await db?.destroy();
  });

  function realtime(): Realtime {
    const created = createRealtime({
      database: db.database,
      bus: createMemoryBus(),
      logger: pino({ level: 'silent' }),
      fallbackPollMs: 60_000,
      sessionStarts: { limit: 10, maxWaitMs: 1_000 },
    });
    realtimes.push(created);
    return created;
  }

  it('ends many connections spread over the window, each once, in no fixed order', async () => {
    const r = realtime();
    const count = 3_000;
    const endedAt = new Float64Array(count);
    const order: number[] = [];
    const untracks = Array.from({ length: count }, (_, i) =>
      r.track(() => {
        expect(endedAt[i]).toBe(0);
        endedAt[i] = performance.now();
        order.push(i);
      }),
    );
    untracks[7]!(); // ended by itself before the shutdown
    const windowMs = 600;
    const started = performance.now();
    await r.drain(windowMs);
    expect(r.draining()).toBe(true);
    expect(endedAt[7]).toBe(0);
    const ends = [...endedAt].filter((_, i) => i !== 7);
    expect(ends.every((t) => t > 0)).toBe(true);
    const first = Math.min(...ends) - started;
    const last = Math.max(...ends) - started;
    expect(first).toBeLessThan(windowMs / 4);
    expect(last).toBeGreaterThan(windowMs * 0.75);
    // Not in the order they were tracked.
    expect(order.slice(0, 10)).not.toEqual([...order].slice(0, 10).sort((a, b) => a - b));
  });

  it('does not hold a few connections for the whole window', async () => {
    const r = realtime();
    let ended = 0;
    for (let i = 0; i < 10; i++) r.track(() => ended++);
    const started = performance.now();
    await r.drain(60_000);
    expect(ended).toBe(10);
    // Ten at DRAIN_RATE a second take 10 ms; a tick or two of the timer on a busy machine at most.
    expect(performance.now() - started).toBeLessThan((10 / DRAIN_RATE) * 1000 + 2_000);
  });
});
