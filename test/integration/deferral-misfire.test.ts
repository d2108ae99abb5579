// The claim loop's safety net: a claim that ends deferred (no attempt) to a time that is not in the future of
// the clock it was claimed by would be claimed straight back. The runner logs it once, counts it, and backs
// it off (1 s, then doubling) instead. Here the gate's clock is deliberately hours behind the claiming clock,
// the disagreement that once made the dispatcher spin; every clock is injected, so the date of the run does
// not matter. Runs on every available engine.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultRetryPolicies } from '../../src/core/retry-policy.js';
import { CircuitBreakers } from '../../src/delivery/circuit-breaker.js';
import { type ConfigCache, createConfigCache } from '../../src/delivery/config-cache.js';
import { createDeliveryRunner } from '../../src/delivery/delivery-run.js';
import { createMemoryRateLimiter } from '../../src/delivery/rate-limiter.js';
import { createLogger } from '../../src/observability/logger.js';
import { claimDueDeliveries, storeNotifications, updatePreferences } from '../../src/store/index.js';
import { testChannelDrivers } from '../support/drivers.js';
import { engines, type TestDatabase } from '../support/engines.js';
import { newNotification } from '../support/notifications.js';
import { LogCapture } from '../support/server.js';

/** The gate's clock: 23:30 in Vienna, inside the recipient's quiet hours (they end at 06:00Z). */
const GATE = new Date('2026-11-28T22:30:00Z');
/** The claiming clock: hours after the quiet hours ended. */
const CLAIMED = new Date('2026-11-29T08:00:00Z');
const LEASE_MS = 60_000;

describe.each(engines())('a deferral that is not in the future of its claim, on $name', (engine) => {
  let db: TestDatabase;
  let config: ConfigCache;
  beforeAll(async () => {
    db = await engine.open();
    config = await createConfigCache(db.database, 60_000, () => new Set(['email'] as const));
  });
  afterAll(async () => {
    config?.close();
    await db?.destroy();
  });

  it('is logged once, counted, and backed off 1 s then 2 s instead of being claimed again at once', async () => {
    const { database } = db;
    await updatePreferences(database.db, 'night-owl', {
      channels: [],
      types: [],
      quietHours: { start: '22:00', end: '07:00', timezone: 'Europe/Vienna' },
    });
    const [stored] = await storeNotifications(
      database,
      null,
      [
        newNotification('night-owl', {
          recipient: { email: 'ada@example.com' },
          type: 'digest.daily',
          channels: ['email'],
          acceptedAt: GATE,
        }),
      ],
      (item) => config.plan(item),
    );
    const deliveryId = stored!.deliveries[0]!.id;
    const logs = new LogCapture();
    const misfires: string[] = [];
    const runner = createDeliveryRunner({
      database,
      config,
      drivers: testChannelDrivers(database.sql, config),
      acquireProviders: () => ({ providers: { email: [] }, release: () => {} }),
      retryPolicies: defaultRetryPolicies,
      circuits: new CircuitBreakers(),
      rateLimiter: createMemoryRateLimiter(),
      rateLimits: {},
      maxTokenWaitMs: 1_000,
      now: () => GATE,
      random: () => 0.5,
      logger: createLogger('info', logs),
      onMisfire: (channel) => misfires.push(channel),
    });
    const signals = { stopping: new AbortController().signal, abort: new AbortController().signal };
    const claim = (at: Date) => claimDueDeliveries(database.sql, 'email', 10, LEASE_MS, at);
    const row = async () => {
      const [r] = await database.sql.query<{
        status: string;
        next_attempt_at: Date | string;
        attempts: number;
      }>('select status, next_attempt_at, attempts from deliveries where id = $1::uuid', [deliveryId]);
      return { ...r!, next_attempt_at: new Date(r!.next_attempt_at).getTime() };
    };

    // The gate defers to 06:00Z, which the claiming clock has passed: backed off to a second after the claim.
    const first = await claim(CLAIMED);
    expect(first.map((c) => c.id)).toEqual([deliveryId]);
    expect(await runner.run(first[0]!, signals)).toEqual(new Date(CLAIMED.getTime() + 1_000));
    await runner.drain();
    expect(await row()).toEqual({
      status: 'queued',
      next_attempt_at: CLAIMED.getTime() + 1_000,
      attempts: 0,
    });
    expect(await claim(CLAIMED)).toEqual([]);

    // Claimed again a second later, it misfires again: twice the wait, and no second log line.
    const again = new Date(CLAIMED.getTime() + 1_000);
    const second = await claim(again);
    expect(second.map((c) => c.id)).toEqual([deliveryId]);
    await runner.run(second[0]!, signals);
    await runner.drain();
    expect((await row()).next_attempt_at).toBe(again.getTime() + 2_000);

    expect(misfires).toEqual(['email', 'email']);
    const logged = logs.lines.filter((line) => line.includes('a deferral was not in the future'));
    expect(logged).toHaveLength(1);
    expect(JSON.parse(logged[0]!)).toMatchObject({
      deliveryId,
      channel: 'email',
      deferredTo: '2026-11-29T06:00:00.000Z',
      claimedAt: CLAIMED.toISOString(),
    });
  });
});
