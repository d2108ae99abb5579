// The dispatcher wakes on NOTIFY from the Send statement, not on its poll: with the poll set to ten
// minutes a webhook still goes out at once, on the same instance and, on PostgreSQL, when an API-only
// instance took the Send and another instance dispatches.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel } from '../../clients/node/index.js';
import { startWebhookReceiver, type WebhookReceiver } from '../emulators/webhook-receiver.js';
import { engines } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';

const NO_POLL = {
  HERALD_WEBHOOK_ALLOW_NETWORKS: '127.0.0.1/32',
  HERALD_DISPATCH_POLL_MS: '600000',
};
const PROMPTLY_MS = 3_000;

describe.each(engines())('dispatcher wake-up on $name', (engine) => {
  let receiver: WebhookReceiver;
  let server: TestServer;
  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    server = await startTestServer(engine, { overrides: NO_POLL });
    await server.adminService().createWebhookEndpoint({ url: `${receiver.url}/woken` });
  });
  afterAll(async () => {
    await server?.stop();
    await receiver?.close();
  });

  it('delivers a webhook right after the Send commits, long before the next poll', async () => {
    const sent = await server.admin().send({
      userId: 'wake-1',
      type: 'job.done',
      title: 'Done',
      channels: [Channel.WEBHOOK],
    });
    const deliveryId = sent.deliveries[0]!.deliveryId;
    const started = Date.now();
    await receiver.waitFor((all) => all.some((r) => r.headers['webhook-id'] === deliveryId), PROMPTLY_MS);
    expect(Date.now() - started).toBeLessThan(PROMPTLY_MS);
  });

  // Two instances on one database need PostgreSQL (the embedded engine belongs to one process).
  if (engine.name !== 'postgres') return;
  it('wakes the dispatcher of another instance when an API-only instance takes the Send', async () => {
    const api = await startTestServer(engine, {
      db: server.db,
      overrides: { ...NO_POLL, HERALD_DISPATCHER: 'false', HERALD_BOOTSTRAP_ADMIN_KEY: 'false' },
    });
    try {
      expect(api.herald.delivery.dispatcher).toBeUndefined();
      const sent = await api.client({ apiKey: server.adminKey }).send({
        userId: 'wake-2',
        type: 'job.done',
        title: 'Done',
        channels: [Channel.WEBHOOK],
      });
      const deliveryId = sent.deliveries[0]!.deliveryId;
      await receiver.waitFor((all) => all.some((r) => r.headers['webhook-id'] === deliveryId), PROMPTLY_MS);
    } finally {
      await api.stop();
    }
  });
});
