// The webhook channel end to end: AdminService endpoint, Send, the dispatcher, a signed POST to a local
// receiver, and the attempt log in GetNotification. Signatures are checked with the independent
// `standardwebhooks` package. Runs on every available engine.

import { toJson } from '@bufbuild/protobuf';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Channel, DeliveryStatus, type Notification, NotificationSchema } from '../../clients/node/index.js';
import { startWebhookReceiver, type WebhookReceiver } from '../emulators/webhook-receiver.js';
import { engines } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

// Short, deterministic-enough retry schedule: attempts stay well under a second apart.
const TEST_SETTINGS = {
  HERALD_WEBHOOK_ALLOW_NETWORKS: '127.0.0.1/32',
  HERALD_RETRY_WEBHOOK: 'attempts=3,base_ms=50,max_delay_ms=100,max_age_ms=60000,retry_after_cap_ms=5000',
  HERALD_WEBHOOK_TIMEOUT_MS: '1000',
  HERALD_DISPATCH_POLL_MS: '200',
};

const FINAL = new Set([DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.EXPIRED]);

describe.each(engines())('webhook delivery on $name', (engine) => {
  let server: TestServer;
  let receiver: WebhookReceiver;

  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    server = await startTestServer(engine, { overrides: TEST_SETTINGS });
  });
  afterAll(async () => {
    await server?.stop();
    await receiver?.close();
  });

  const endpoints: string[] = [];
  afterEach(async () => {
    for (const id of endpoints.splice(0)) await server.adminService().deleteWebhookEndpoint({ id });
  });

  async function endpoint(path: string, eventTypes: string[] = []) {
    const created = await server.adminService().createWebhookEndpoint({
      url: `${receiver.url}${path}`,
      eventTypes,
      description: `test ${path}`,
    });
    endpoints.push(created.endpoint!.id);
    return created;
  }

  async function sendWebhook(type: string, extra: { title?: string; userId?: string } = {}) {
    return server.admin().send({
      userId: extra.userId ?? 'webhook-user',
      type,
      title: extra.title ?? 'Your order shipped',
      data: { order: 'A-1' },
      channels: [Channel.WEBHOOK],
    });
  }

  /** Waits until every webhook delivery of the notification is final, and returns it. */
  async function settled(notificationId: string, timeoutMs = 10_000): Promise<Notification> {
    let latest: Notification | undefined;
    try {
      return await until(`notification ${notificationId} settled`, timeoutMs, async () => {
        latest = (await server.admin().getNotification({ notificationId })).notification;
        return latest?.deliveries.every((d) => FINAL.has(d.status)) ? latest : undefined;
      });
    } catch (error) {
      const state = latest?.deliveries.map((d) => ({
        status: d.status,
        reason: d.reason,
        attempts: d.attempts.length,
      }));
      throw new Error(`${(error as Error).message}; deliveries: ${JSON.stringify(state)}`);
    }
  }

  it('POSTs a Standard Webhooks request that the reference library verifies, and logs the attempt', async () => {
    const { secret } = await endpoint('/ok', ['order.*']);
    const sent = await sendWebhook('order.shipped');
    expect(sent.deliveries).toHaveLength(1);
    const n = await settled(sent.notificationId);
    const [delivery] = n.deliveries;
    expect(delivery?.status).toBe(DeliveryStatus.SENT);
    expect(delivery?.attempts).toHaveLength(1);
    expect(delivery?.attempts[0]).toMatchObject({ provider: 'webhook', outcome: 'sent', statusCode: 200 });

    const request = receiver.received.find((r) => r.headers['webhook-id'] === delivery!.id)!;
    expect(request.method).toBe('POST');
    expect(request.headers['content-type']).toBe('application/json');
    expect(receiver.unverified(secret)).not.toContain(delivery!.id);
    const body = JSON.parse(request.body);
    expect(body).toMatchObject({
      type: 'order.shipped',
      data: { notification_id: sent.notificationId, user_id: 'webhook-user', title: 'Your order shipped' },
    });
    expect(body.data.data).toEqual({ order: 'A-1' });
  });

  it('retries a 503 and succeeds on the next attempt, with the same webhook-id', async () => {
    await endpoint('/flaky');
    receiver.script('/flaky', [{ status: 503, body: 'down for maintenance' }]);
    const sent = await sendWebhook('invoice.paid');
    const n = await settled(sent.notificationId);
    const d = n.deliveries[0]!;
    expect(d.status).toBe(DeliveryStatus.SENT);
    expect(d.attempts.map((a) => [a.outcome, a.statusCode])).toEqual([
      ['retry', 503],
      ['sent', 200],
    ]);
    expect(d.attempts[0]?.error).toBe('endpoint answered HTTP 503');
    expect(d.attempts[0]?.response).toBe('down for maintenance');
    expect(receiver.countsByWebhookId().get(d.id)).toBe(2);
  });

  it("shows the recipient's own token status and the kind of reason, never attempts, replies or addresses", async () => {
    await endpoint('/moved-for-user');
    receiver.script('/moved-for-user', [
      { status: 302, headers: { location: 'http://10.1.2.3/internal' }, body: 'secret-token=abc' },
    ]);
    const sent = await sendWebhook('invoice.paid', { userId: 'curious-user' });
    const operator = (await settled(sent.notificationId)).deliveries[0]!;
    expect(operator.reason).toContain('10.1.2.3');
    expect(operator.attempts[0]?.response).toBe('secret-token=abc');

    const user = server.client({ token: await server.userToken('curious-user') });
    const { notification } = await user.getNotification({ notificationId: sent.notificationId });
    const seen = notification!.deliveries[0]!;
    expect([seen.id, seen.status, seen.reason]).toEqual([operator.id, DeliveryStatus.FAILED, 'failed']);
    expect([seen.provider, seen.lastError, seen.attempts]).toEqual(['', '', []]);
    expect(JSON.stringify(toJson(NotificationSchema, notification!))).not.toMatch(/10\.1\.2\.3|secret-token/);
    expect(notification!.title).toBe('Your order shipped');
  });

  it('waits at least Retry-After after a 429', async () => {
    await endpoint('/throttled');
    receiver.script('/throttled', [{ status: 429, headers: { 'retry-after': '1' } }]);
    const sent = await sendWebhook('invoice.paid');
    const n = await settled(sent.notificationId);
    const d = n.deliveries[0]!;
    expect(d.attempts.map((a) => a.statusCode)).toEqual([429, 200]);
    const arrivals = receiver.received
      .filter((r) => r.headers['webhook-id'] === d.id)
      .map((r) => r.receivedAt);
    expect(arrivals[1]! - arrivals[0]!).toBeGreaterThanOrEqual(1000);
  });

  it('retries a timeout and a connection reset, then fails when attempts are exhausted', async () => {
    await endpoint('/broken');
    receiver.script('/broken', [{ hang: true }, { reset: true }, { status: 500 }]);
    const sent = await sendWebhook('invoice.paid');
    const n = await settled(sent.notificationId);
    const d = n.deliveries[0]!;
    expect(d.status).toBe(DeliveryStatus.FAILED);
    expect(d.reason).toMatch(/^exhausted: max attempts \(3\) reached; last: endpoint answered HTTP 500/);
    expect(d.attempts.map((a) => a.outcome)).toEqual(['retry', 'retry', 'retry']);
    expect(d.attempts[0]?.error).toMatch(/^timeout: no answer within 1000 ms/);
    expect(d.attempts[1]?.error).toMatch(/^network: .*(ECONNRESET|socket|closed)/i);
  });

  it('does not follow a redirect: the delivery fails without retrying', async () => {
    await endpoint('/moved');
    receiver.script('/moved', [{ status: 302, headers: { location: `${receiver.url}/ok` } }]);
    const before = receiver.received.length;
    const sent = await sendWebhook('invoice.paid');
    const d = (await settled(sent.notificationId)).deliveries[0]!;
    expect(d.status).toBe(DeliveryStatus.FAILED);
    expect(d.reason).toMatch(/^failed: redirect \(HTTP 302\) not followed/);
    expect(d.attempts).toHaveLength(1);
    expect(receiver.received.slice(before).map((r) => r.path)).toEqual(['/moved']);
  });

  it('disables an endpoint that answers 410 Gone', async () => {
    const { endpoint: created } = await endpoint('/gone');
    receiver.script('/gone', [{ status: 410 }]);
    const sent = await sendWebhook('invoice.paid');
    const d = (await settled(sent.notificationId)).deliveries[0]!;
    expect(d.status).toBe(DeliveryStatus.FAILED);
    expect(d.reason).toBe('invalid_destination: endpoint answered 410 Gone');
    const { endpoints: list } = await server.adminService().listWebhookEndpoints({});
    const after = list.find((e) => e.id === created!.id);
    expect(after).toMatchObject({ enabled: false, disabledReason: 'endpoint answered 410 Gone' });
    // A disabled endpoint no longer takes new notifications.
    const next = await sendWebhook('invoice.paid');
    expect(next.deliveries[0]).toMatchObject({ status: DeliveryStatus.SKIPPED });
  });

  it('signs with the old and the new secret while a rotation overlaps', async () => {
    const { endpoint: created, secret: oldSecret } = await endpoint('/rotating');
    const { secret: newSecret } = await server
      .adminService()
      .rotateWebhookSecret({ id: created!.id, overlapSeconds: 3600 });
    expect(newSecret).not.toBe(oldSecret);
    const sent = await sendWebhook('invoice.paid');
    const d = (await settled(sent.notificationId)).deliveries[0]!;
    const request = receiver.received.find((r) => r.headers['webhook-id'] === d.id)!;
    expect(request.headers['webhook-signature']?.split(' ')).toHaveLength(2);
    expect(receiver.unverified(oldSecret)).not.toContain(d.id);
    expect(receiver.unverified(newSecret)).not.toContain(d.id);
  });

  it('replays a failed delivery with the same webhook-id', async () => {
    await endpoint('/later');
    receiver.script('/later', [{ status: 302, headers: { location: '/elsewhere' } }]);
    const sent = await sendWebhook('invoice.paid');
    const failed = (await settled(sent.notificationId)).deliveries[0]!;
    expect(failed.status).toBe(DeliveryStatus.FAILED);
    const replayed = await server.adminService().replayDelivery({ deliveryId: failed.id });
    // Queued again; the dispatcher, woken by the replay, may already be on it.
    expect([DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.SENT]).toContain(
      replayed.delivery?.status,
    );
    const d = (await settled(sent.notificationId)).deliveries[0]!;
    expect(d.status).toBe(DeliveryStatus.SENT);
    expect(receiver.countsByWebhookId().get(d.id)).toBe(2);
  });

  it('emits notification.failed to endpoints subscribed to status events', async () => {
    const { secret } = await endpoint('/status', ['notification.failed']);
    await endpoint('/fails');
    receiver.script('/fails', [{ status: 302, headers: { location: '/x' } }]);
    const sent = await sendWebhook('invoice.paid');
    await settled(sent.notificationId);
    await receiver.waitFor((all) => all.some((r) => r.path === '/status'), 10_000);
    const event = receiver.received.find((r) => r.path === '/status')!;
    expect(receiver.unverified(secret)).not.toContain(event.headers['webhook-id']);
    expect(JSON.parse(event.body)).toMatchObject({
      type: 'notification.failed',
      data: { notification_id: sent.notificationId, channel: 'webhook', status: 'failed' },
    });
  });

  it('logged no dispatcher error, no webhook secret and no message body', async () => {
    const { secret } = await endpoint('/quiet');
    const sent = await sendWebhook('invoice.paid', { title: 'secret-title-7f3a' });
    await settled(sent.notificationId);
    const logs = server.logs.text();
    expect(logs).not.toMatch(/dispatcher error|delivery run failed/);
    expect(logs).not.toContain(secret);
    expect(logs).not.toContain('secret-title-7f3a');
  });

  it("renders the type's template for the recipient's locale into the payload, falling back de-AT -> de", async () => {
    await endpoint('/templated', ['shipment.*']);
    const admin = server.adminService();
    const template = (locale: string, title: string, body: string) =>
      admin.putTemplate({
        template: { type: 'shipment.sent', channel: Channel.WEBHOOK, locale, title, body },
      });
    await template('default', 'Shipped {{ data.order }}', 'Order {{ data.order }} is on its way');
    await template(
      'de',
      'Versandt: {{ data.order }}',
      'Bestellung {{ data.order }} für {{ recipient.userId }}',
    );
    const sent = await server.admin().send({
      userId: 'wien-1',
      type: 'shipment.sent',
      data: { order: 'A-7' },
      recipient: { locale: 'de-AT' },
      channels: [Channel.WEBHOOK],
    });
    const d = (await settled(sent.notificationId)).deliveries[0]!;
    const body = JSON.parse(receiver.received.find((r) => r.headers['webhook-id'] === d.id)!.body);
    expect(body.data).toMatchObject({ title: 'Versandt: A-7', body: 'Bestellung A-7 für wien-1' });
  });

  it('fails the delivery with a clear reason when the template needs a variable the data lacks', async () => {
    await endpoint('/templated-missing', ['invoice.due']);
    await server.adminService().putTemplate({
      template: {
        type: 'invoice.due',
        channel: Channel.WEBHOOK,
        locale: 'default',
        body: 'Pay {{ data.amount }}',
      },
    });
    const sent = await server.admin().send({
      userId: 'tpl-2',
      type: 'invoice.due',
      data: { currency: 'EUR' },
      channels: [Channel.WEBHOOK],
    });
    const d = (await settled(sent.notificationId)).deliveries[0]!;
    expect([d.status, d.reason]).toEqual([
      DeliveryStatus.FAILED,
      'template: missing variable "data.amount" in body',
    ]);
    expect(d.attempts).toHaveLength(0);
  });

  it('disables an endpoint whose attempts have all failed for longer than the configured period', async () => {
    const { endpoint: created } = await endpoint('/dead');
    receiver.script('/dead', [{ status: 500 }, { status: 500 }, { status: 500 }]);
    // Failing since six days (the default period is five): the next failed attempt disables it.
    await server.db.database.sql.query(
      "update webhook_endpoints set failing_since = now() - interval '6 days' where id = $1::uuid",
      [created!.id],
    );
    const sent = await sendWebhook('invoice.paid');
    await settled(sent.notificationId);
    const { endpoints: list } = await server.adminService().listWebhookEndpoints({});
    const after = list.find((e) => e.id === created!.id)!;
    expect(after.enabled).toBe(false);
    expect(after.disabledReason).toMatch(/^every attempt failed since \d{4}-\d{2}-\d{2}T/);
  });

  it('clears the failure clock after a success', async () => {
    const { endpoint: created } = await endpoint('/recovering');
    receiver.script('/recovering', [{ status: 500 }]);
    const sent = await sendWebhook('invoice.paid');
    await settled(sent.notificationId);
    const { endpoints: list } = await server.adminService().listWebhookEndpoints({});
    const after = list.find((e) => e.id === created!.id)!;
    expect(after).toMatchObject({ enabled: true });
    expect(after.failingSince).toBeUndefined();
  });

  it('stops retrying when the endpoint answers webhook-delivery: abort-message', async () => {
    await endpoint('/abort');
    receiver.script('/abort', [{ status: 500, headers: { 'webhook-delivery': 'abort-message' } }]);
    const sent = await sendWebhook('invoice.paid');
    const d = (await settled(sent.notificationId)).deliveries[0]!;
    expect([d.status, d.reason]).toEqual([
      DeliveryStatus.FAILED,
      'failed: endpoint aborted the message (HTTP 500)',
    ]);
    expect(d.attempts).toHaveLength(1);
  });

  it('records a reply holding NUL (which the database cannot store as text) and finishes the delivery once', async () => {
    await endpoint('/nul');
    receiver.script('/nul', [
      { status: 503, body: 'down\u0000' },
      { status: 200, body: 'ok\u0000' },
    ]);
    const sent = await sendWebhook('invoice.paid');
    const d = (await settled(sent.notificationId)).deliveries[0]!;
    expect(d.status).toBe(DeliveryStatus.SENT);
    expect(d.attempts.map((a) => [a.outcome, a.response])).toEqual([
      ['retry', 'down\uFFFD'],
      ['sent', 'ok\uFFFD'],
    ]);
    expect(receiver.countsByWebhookId().get(d.id)).toBe(2);
  });

  it('keeps only the first KiB of a long answer in the attempt log', async () => {
    await endpoint('/chatty');
    receiver.script('/chatty', [{ status: 500, body: 'x'.repeat(5000) }]);
    const sent = await sendWebhook('invoice.paid');
    const d = (await settled(sent.notificationId)).deliveries[0]!;
    expect(d.attempts[0]?.response).toBe('x'.repeat(1024));
  });
});
