// Graceful shutdown of the dispatcher: it stops claiming, lets attempts in flight finish within the
// deadline, and leaves no delivery leased behind: what it cut off is queued again at once, so another
// instance can take it. Runs on every available engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel } from '../../clients/node/index.js';
import { startWebhookReceiver, type WebhookReceiver } from '../emulators/webhook-receiver.js';
import { engines, type TestDatabase } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';

const SETTINGS = { HERALD_WEBHOOK_ALLOW_NETWORKS: '127.0.0.1/32', HERALD_DISPATCH_POLL_MS: '200' };

describe.each(engines())('dispatcher shutdown on $name', (engine) => {
  let receiver: WebhookReceiver;
  beforeAll(async () => {
    receiver = await startWebhookReceiver();
  });
  afterAll(async () => {
    await receiver?.close();
  });

  async function rows(db: TestDatabase) {
    return db.database.sql.query<{ status: string; leased: boolean; attempts: number }>(
      'select status, lease_until is not null as leased, attempts from deliveries order by id',
      [],
    );
  }

  async function serverWithQueuedWebhooks(db: TestDatabase, path: string, count: number, overrides = {}) {
    const server: TestServer = await startTestServer(engine, {
      db,
      overrides: { ...SETTINGS, ...overrides },
    });
    await server.adminService().createWebhookEndpoint({ url: `${receiver.url}${path}` });
    await server.admin().sendBatch({
      requests: Array.from({ length: count }, (_, i) => ({
        userId: `shutdown-${i}`,
        type: 'job.done',
        title: 'Done',
        channels: [Channel.WEBHOOK],
      })),
    });
    await receiver.waitFor((all) => all.filter((r) => r.path === path).length >= count, 10_000);
    return server;
  }

  it('lets attempts in flight finish before it stops', async () => {
    const db = await engine.open();
    try {
      receiver.script(
        '/slow',
        Array.from({ length: 4 }, () => ({ status: 200, delayMs: 400 })),
      );
      const server = await serverWithQueuedWebhooks(db, '/slow', 4);
      await server.stop(); // the four answers are still 400 ms away
      const after = await rows(db);
      expect(after.map((r) => r.status)).toEqual(['sent', 'sent', 'sent', 'sent']);
      expect(after.some((r) => r.leased)).toBe(false);
    } finally {
      await db.destroy();
    }
  });

  it('cuts attempts still running at the deadline and requeues them, leaving no lease behind', async () => {
    const db = await engine.open();
    try {
      receiver.script('/stuck', [{ hang: true }, { hang: true }]);
      const server = await serverWithQueuedWebhooks(db, '/stuck', 2, { HERALD_SHUTDOWN_TIMEOUT_MS: '300' });
      await server.stop();
      const after = await rows(db);
      expect(after.map((r) => [r.status, r.leased, r.attempts])).toEqual([
        ['queued', false, 1],
        ['queued', false, 1],
      ]);
      const attempts = await db.database.sql.query<{ outcome: string; error: string }>(
        'select outcome, error from delivery_attempts',
        [],
      );
      expect(attempts).toEqual([
        { outcome: 'retry', error: 'aborted: the dispatcher is shutting down' },
        { outcome: 'retry', error: 'aborted: the dispatcher is shutting down' },
      ]);
    } finally {
      await db.destroy();
    }
  });
});
