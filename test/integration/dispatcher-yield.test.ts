// The dispatcher yields to the event loop between claim batches. Here a misbehaving runner hands every
// claim straight back, due at once, so the dispatcher claims the same deliveries over and over: timers in
// the same process must still fire on time meanwhile (on PGlite, whose queries can complete without giving
// timers a turn, too). Runs on every available engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryRunner } from '../../src/delivery/delivery-run.js';
import { createDispatcher } from '../../src/delivery/dispatcher.js';
import { releaseClaims, storeNotifications } from '../../src/store/index.js';
import { engines, type TestDatabase } from '../support/engines.js';
import { newNotification, plainPlanner } from '../support/notifications.js';

describe.each(engines())('the dispatcher under a claim loop, on $name', (engine) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await engine.open();
  });
  afterAll(() => db?.destroy());

  it('keeps giving timers their turn while it claims the same deliveries again and again', async () => {
    const { database } = db;
    await storeNotifications(
      database,
      null,
      Array.from({ length: 20 }, (_, i) =>
        newNotification(`loop-${i}`, { recipient: { email: `loop-${i}@example.com` }, channels: ['email'] }),
      ),
      plainPlanner,
    );
    let runs = 0;
    // Every claim comes back due at once and the dispatcher immediately claims it again.
    const runner: DeliveryRunner = {
      async run(claim) {
        runs++;
        await releaseClaims(database.sql, [claim]);
        return null;
      },
      release: (claims) => releaseClaims(database.sql, claims),
      drain: async () => {},
    };
    const dispatcher = createDispatcher({
      database,
      run: runner,
      channels: ['email'],
      concurrency: 4,
      leaseMs: 60_000,
      maxAttemptMs: 30_000,
      pollMs: 60_000,
      now: () => new Date(),
      onError: (error) => {
        throw error;
      },
    });

    // A 10 ms interval timer, measured over a second of the loop.
    const lateness: number[] = [];
    let expected = performance.now() + 10;
    const ticker = setInterval(() => {
      lateness.push(performance.now() - expected);
      expected = performance.now() + 10;
    }, 10);
    await dispatcher.start();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    clearInterval(ticker);
    await dispatcher.stop(1_000);

    // The loop really ran (hundreds of claims)...
    expect(runs).toBeGreaterThan(100);
    // ...and the timer ran all along: dozens of ticks, none held back for long.
    expect(lateness.length).toBeGreaterThan(20);
    expect(Math.max(...lateness)).toBeLessThan(250);
  });
});
