// The dispatcher's claim loop, driven directly. It yields to the event loop between claim batches: here a
// misbehaving runner hands every claim straight back, due at once, so the dispatcher claims the same
// deliveries over and over, and timers in the same process must still fire on time meanwhile (on PGlite,
// whose queries can complete without giving timers a turn, too). And stop() waits for a claim in progress,
// so nothing is left leased once it returns. Runs on every available engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryRunner } from '../../src/delivery/delivery-run.js';
import { createDispatcher, type DispatcherOptions } from '../../src/delivery/dispatcher.js';
import { type Database, releaseClaims, type SqlParam, storeNotifications } from '../../src/store/index.js';
import { engines, type TestDatabase } from '../support/engines.js';
import { newNotification, plainPlanner } from '../support/notifications.js';

/** One e-mail lane, a long lease and no fallback poll: only the loop under test claims. */
const LANE = {
  channels: ['email'],
  concurrency: () => 4,
  leaseMs: 60_000,
  maxAttemptMs: () => 30_000,
  pollMs: 60_000,
  now: () => new Date(),
} satisfies Partial<DispatcherOptions>;

/** `count` e-mail notifications, one per user `<prefix>-<i>`, due now. */
function storeEmails(database: Database, prefix: string, count: number) {
  return storeNotifications(
    database,
    null,
    Array.from({ length: count }, (_, i) =>
      newNotification(`${prefix}-${i}`, {
        recipient: { email: `${prefix}-${i}@example.com` },
        channels: ['email'],
      }),
    ),
    plainPlanner,
  );
}

describe.each(engines())('the dispatcher under a claim loop, on $name', (engine) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await engine.open();
  });
  afterAll(() => db?.destroy());

  it('keeps giving timers their turn while it claims the same deliveries again and again', async () => {
    const { database } = db;
    await storeEmails(database, 'loop', 20);
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
      ...LANE,
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

    // The loop really ran (hundreds of claims on a quiet machine)...
    expect(runs).toBeGreaterThan(20);
    // ...and the timer ran all along, never held back for long. Without the yield, on PGlite not one tick
    // fires and the test never ends; on a quiet machine about 90 of the 100 ticks fire, on a loaded 2-core
    // machine as few as 9 were seen, so the bounds only tell "runs" from "starved".
    expect(lateness.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...lateness)).toBeLessThan(1_000);
  });

  it('waits in stop() for a claim in progress and hands its deliveries back', async () => {
    const { database } = db;
    await storeEmails(database, 'stop', 5);
    // Claims take their deliveries, then answer only after a pause: stop() arrives while one is in progress.
    let claimStarted: () => void = () => {};
    const claiming = new Promise<void>((resolve) => {
      claimStarted = resolve;
    });
    const slowClaims: Database = {
      ...database,
      sql: {
        ...database.sql,
        transaction: (fn) => database.sql.transaction(fn),
        async query<Row extends Record<string, unknown>>(text: string, params: readonly SqlParam[]) {
          const rows = await database.sql.query<Row>(text, params);
          if (text.includes('for update skip locked') && text.includes("set status = 'sending'")) {
            claimStarted();
            await new Promise((resolve) => setTimeout(resolve, 300));
          }
          return rows;
        },
      },
    };
    let runs = 0;
    const dispatcher = createDispatcher({
      database: slowClaims,
      run: {
        async run() {
          runs++;
          return null;
        },
        release: (claims) => releaseClaims(database.sql, claims),
        drain: async () => {},
      },
      ...LANE,
      onError: () => {},
    });
    await dispatcher.start();
    await claiming;
    await dispatcher.stop(1_000);

    const rows = await database.sql.query<{ status: string; leased: boolean }>(
      "select status, lease_until is not null as leased from deliveries where user_id like 'stop-%'",
      [],
    );
    expect(runs).toBe(0);
    expect(rows.map((r) => [r.status, r.leased])).toEqual(Array(5).fill(['queued', false]));
  });
});
