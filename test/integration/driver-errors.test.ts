// A driver's bookkeeping failing after the provider answered (here: writing the suppression for an address
// the provider reported gone) must not undo the answer: the delivery still ends FAILED invalid_destination with
// its attempt recorded, and the failure is logged; it is never requeued to be sent again without a record.
// Runs on every available engine.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultRetryPolicies } from '../../src/core/retry-policy.js';
import { CircuitBreakers } from '../../src/delivery/circuit-breaker.js';
import { type ConfigCache, createConfigCache } from '../../src/delivery/config-cache.js';
import { createDeliveryRunner } from '../../src/delivery/delivery-run.js';
import { createMemoryRateLimiter } from '../../src/delivery/rate-limiter.js';
import { createLogger } from '../../src/observability/logger.js';
import { claimDueDeliveries, storeNotifications } from '../../src/store/index.js';
import { startWebhookReceiver, type WebhookReceiver } from '../emulators/webhook-receiver.js';
import { testChannelDrivers } from '../support/drivers.js';
import { engines, type TestDatabase } from '../support/engines.js';
import { httpTestProvider } from '../support/http-provider.js';
import { newNotification } from '../support/notifications.js';
import { LogCapture } from '../support/server.js';

describe.each(engines())('a driver failing after the provider answered, on $name', (engine) => {
  let db: TestDatabase;
  let config: ConfigCache;
  let receiver: WebhookReceiver;
  beforeAll(async () => {
    db = await engine.open();
    config = await createConfigCache(db.database, 60_000, () => new Set(['email'] as const));
    receiver = await startWebhookReceiver();
  });
  afterAll(async () => {
    config?.close();
    await receiver?.close();
    await db?.destroy();
  });

  it('keeps the outcome and the attempt, and logs the failure', async () => {
    const { database } = db;
    const [stored] = await storeNotifications(
      database,
      null,
      [newNotification('bounced', { recipient: { email: 'gone@example.com' }, channels: ['email'] })],
      (item) => config.plan(item),
    );
    const deliveryId = stored!.deliveries[0]!.id;
    receiver.script('/mail', [{ status: 410, body: 'gone' }]);
    const drivers = testChannelDrivers(database.sql, config);
    const logs = new LogCapture();
    const runner = createDeliveryRunner({
      database,
      config,
      drivers: {
        email: {
          ...drivers.email!,
          invalidate: async () => {
            throw new Error('database unavailable');
          },
        },
      },
      acquireProviders: () => ({
        providers: { email: [httpTestProvider('mailer', 'email', `${receiver.url}/mail`)] },
        release: () => {},
      }),
      retryPolicies: defaultRetryPolicies,
      circuits: new CircuitBreakers(),
      rateLimiter: createMemoryRateLimiter(),
      rateLimits: {},
      maxTokenWaitMs: 1_000,
      now: () => new Date(),
      random: () => 0.5,
      logger: createLogger('info', logs),
    });
    const [claim] = await claimDueDeliveries(database.sql, 'email', 10, 60_000, new Date());
    expect(claim?.id).toBe(deliveryId);
    const signals = { stopping: new AbortController().signal, abort: new AbortController().signal };
    expect(await runner.run(claim!, signals)).toBeNull();
    await runner.drain();

    const [row] = await database.sql.query<{ status: string; reason: string; attempts: number }>(
      'select status, reason, attempts from deliveries where id = $1::uuid',
      [deliveryId],
    );
    expect(row).toEqual({ status: 'failed', reason: 'invalid_destination: gone', attempts: 1 });
    const attempts = await database.sql.query<{ outcome: string; destination: string }>(
      'select outcome, destination from delivery_attempts where delivery_id = $1::uuid',
      [deliveryId],
    );
    expect(attempts).toEqual([{ outcome: 'invalid_destination', destination: 'g***@example.com' }]);
    const logged = logs.lines.filter((l) => l.includes('the attempt stands')).map((l) => JSON.parse(l));
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ deliveryId, channel: 'email', outcome: 'invalid_destination' });
  });
});
