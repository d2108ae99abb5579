// The delivery engine's metrics on /metrics: the queue per channel (depth, and the age of the oldest due
// delivery) read from the shared database; attempt latency per provider; the delay from a notification being
// due to its first attempt; each provider's circuit state (0 closed, 2 open, the worst of its per-host
// circuits). A webhook endpoint on a local receiver; the dispatcher of a second server left off, so a due
// delivery stays queued there. Runs on every available engine.

import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel, DeliveryStatus } from '../../clients/node/index.js';
import { startWebhookReceiver, type WebhookReceiver } from '../emulators/webhook-receiver.js';
import { engines } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

const SETTINGS = {
  HERALD_WEBHOOK_ALLOW_NETWORKS: '127.0.0.1/32',
  HERALD_DISPATCH_POLL_MS: '100',
  HERALD_RETRY_WEBHOOK: 'attempts=1',
  HERALD_CIRCUIT_FAILURES: '1',
};

/** The value of one sample (`name{labels} value`) on /metrics, or undefined. */
async function sample(server: TestServer, series: string): Promise<number | undefined> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe.each(engines())('delivery metrics on $name', (engine) => {
  let receiver: WebhookReceiver;
  let server: TestServer;

  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    server = await startTestServer(engine, { overrides: SETTINGS });
  });
  afterAll(async () => {
    await server?.stop();
    await receiver?.close();
  });

  it('measures attempts, the first attempt delay and the circuits; counts what is queued for later', async () => {
    const { endpoint } = await server.adminService().createWebhookEndpoint({ url: `${receiver.url}/ok` });
    const sent = await server
      .admin()
      .send({ userId: 'm1', type: 'metrics.now', channels: [Channel.WEBHOOK] });
    await until('the webhook sent', 5_000, async () => {
      const { notification } = await server.admin().getNotification({ notificationId: sent.notificationId });
      return notification!.deliveries[0]!.status === DeliveryStatus.SENT || undefined;
    });
    const later = new Date(Date.now() + 3_600_000);
    await server.admin().send({
      userId: 'm1',
      type: 'metrics.later',
      channels: [Channel.WEBHOOK],
      sendAt: timestampFromDate(later),
    });
    const labels = '{channel="webhook",provider="webhook"}';
    expect(await sample(server, `herald_delivery_attempt_duration_seconds_count${labels}`)).toBe(1);
    expect(await sample(server, 'herald_delivery_first_attempt_delay_seconds_count{channel="webhook"}')).toBe(
      1,
    );
    expect(await sample(server, `herald_circuit_state${labels}`)).toBe(0);
    expect(await sample(server, 'herald_delivery_queue_depth{channel="webhook"}')).toBe(1);
    expect(await sample(server, 'herald_delivery_queue_oldest_due_seconds{channel="webhook"}')).toBe(0);

    // A failing host opens its circuit (one failure, HERALD_CIRCUIT_FAILURES=1): the provider reports open.
    receiver.script('/down', [{ status: 503 }]);
    await server.adminService().updateWebhookEndpoint({ id: endpoint!.id, url: `${receiver.url}/down` });
    await server.admin().send({ userId: 'm1', type: 'metrics.down', channels: [Channel.WEBHOOK] });
    await until(
      'the circuit open',
      5_000,
      async () => (await sample(server, `herald_circuit_state${labels}`)) === 2 || undefined,
    );
  });
});

describe.each(engines())('the queue of an instance whose dispatcher is off on $name', (engine) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(engine, { overrides: { ...SETTINGS, HERALD_DISPATCHER: 'false' } });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('reports a due delivery as queued, and how long it has been due', async () => {
    await server.adminService().createWebhookEndpoint({ url: 'http://127.0.0.1:9/never' });
    await server.admin().send({
      userId: 'm2',
      type: 'metrics.due',
      channels: [Channel.WEBHOOK],
      sendAt: timestampFromDate(new Date(Date.now() - 60_000)),
    });
    expect(await sample(server, 'herald_delivery_queue_depth{channel="webhook"}')).toBe(1);
    const age = await sample(server, 'herald_delivery_queue_oldest_due_seconds{channel="webhook"}');
    expect(age).toBeGreaterThanOrEqual(59);
    expect(age).toBeLessThan(3_600);
  });
});
