// "Destination gone", per channel: a provider answering that the destination no longer exists writes exactly
// one record, the channel's own (push: the token deactivated with the reason and the time; e-mail and SMS: a
// suppression naming the delivery; webhook: the endpoint disabled), and nothing else. The next Send to that
// destination is SKIPPED. The providers are real HTTP clients against a scripted receiver answering 410.
// Runs on every available engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel, DeliveryStatus, Platform } from '../../clients/node/index.js';
import { createWebhookAdapter } from '../../src/channels/webhook/adapter.js';
import { createAddressGuard } from '../../src/channels/webhook/address-guard.js';
import { startWebhookReceiver, type WebhookReceiver } from '../emulators/webhook-receiver.js';
import { engines } from '../support/engines.js';
import { httpTestProvider } from '../support/http-provider.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

const APNS_TOKEN = 'cd'.repeat(32);

interface Snapshot {
  tokens: { id: string; active: boolean; invalid_reason: string | null; invalidated: boolean }[];
  suppressions: { channel: string; address: string; reason: string; delivery_id: string | null }[];
  endpoints: { id: string; enabled: boolean; disabled_reason: string | null }[];
}

describe.each(engines())('a destination a provider reports gone, on $name', (engine) => {
  let receiver: WebhookReceiver;
  let server: TestServer;
  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    server = await startTestServer(engine, {
      overrides: { HERALD_DISPATCH_POLL_MS: '200', HERALD_WEBHOOK_ALLOW_NETWORKS: '127.0.0.1/32' },
      providers: {
        push: [httpTestProvider('pusher', 'push', `${receiver.url}/push`)],
        email: [httpTestProvider('mailer', 'email', `${receiver.url}/mail`)],
        sms: [httpTestProvider('texter', 'sms', `${receiver.url}/sms`)],
        webhook: [
          createWebhookAdapter({
            guard: createAddressGuard(['127.0.0.1/32']),
            timeoutMs: 2_000,
            connections: 4,
          }),
        ],
      },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await receiver?.close();
  });

  async function snapshot(): Promise<Snapshot> {
    const sql = server.db.database.sql;
    const [tokens, suppressions, endpoints] = await Promise.all([
      sql.query<Snapshot['tokens'][number]>(
        'select id::text as id, active, invalid_reason, invalidated_at is not null as invalidated from push_tokens order by id',
        [],
      ),
      sql.query<Snapshot['suppressions'][number]>(
        'select channel, address, reason, delivery_id::text as delivery_id from suppressions order by channel, address',
        [],
      ),
      sql.query<Snapshot['endpoints'][number]>(
        'select id::text as id, enabled, disabled_reason from webhook_endpoints order by id',
        [],
      ),
    ]);
    return { tokens, suppressions, endpoints };
  }

  async function finalDelivery(notificationId: string, channel: Channel) {
    return until(`${Channel[channel]} delivery final`, 5_000, async () => {
      const { notification } = await server.admin().getNotification({ notificationId });
      const d = notification!.deliveries.find((x) => x.channel === channel)!;
      return d.status === DeliveryStatus.QUEUED || d.status === DeliveryStatus.SENDING ? undefined : d;
    });
  }

  it('push: deactivates the token with the reason and the time, and nothing else', async () => {
    const admin = server.admin();
    const { token } = await admin.registerToken({
      userId: 'gone-push',
      platform: Platform.APNS,
      token: APNS_TOKEN,
    });
    receiver.script('/push', [{ status: 410, body: 'Unregistered' }]);
    const before = await snapshot();
    const sent = await admin.send({
      userId: 'gone-push',
      type: 'ping',
      title: 'Hi',
      channels: [Channel.PUSH],
    });
    const d = await finalDelivery(sent.notificationId, Channel.PUSH);
    expect([d.status, d.reason]).toEqual([DeliveryStatus.FAILED, 'invalid_destination: gone']);
    const after = await snapshot();
    expect(after.tokens).toEqual(
      before.tokens.map((t) =>
        t.id === token!.id ? { ...t, active: false, invalid_reason: 'gone', invalidated: true } : t,
      ),
    );
    expect([after.suppressions, after.endpoints]).toEqual([before.suppressions, before.endpoints]);

    const again = await admin.send({
      userId: 'gone-push',
      type: 'ping',
      title: 'Hi',
      channels: [Channel.PUSH],
    });
    expect(again.deliveries.map((x) => [x.status, x.reason])).toEqual([
      [DeliveryStatus.SKIPPED, 'no_address: recipient has no active push token'],
    ]);
  });

  it.each([
    ['email', Channel.EMAIL, '/mail', { email: 'Gone@Example.com' }, 'gone@example.com'],
    ['sms', Channel.SMS, '/sms', { phone: '+4915199999999' }, '+4915199999999'],
  ] as const)(
    '%s: suppresses the address, naming the delivery, and nothing else',
    async (name, channel, p, recipient, address) => {
      const admin = server.admin();
      receiver.script(p, [{ status: 410, body: 'gone' }]);
      const before = await snapshot();
      const sent = await admin.send({
        userId: `gone-${name}`,
        type: 'ping',
        title: 'Hi',
        recipient,
        channels: [channel],
      });
      const d = await finalDelivery(sent.notificationId, channel);
      expect([d.status, d.reason]).toEqual([DeliveryStatus.FAILED, 'invalid_destination: gone']);
      const after = await snapshot();
      expect(after.suppressions).toEqual(
        [...before.suppressions, { channel: name, address, reason: 'gone', delivery_id: d.id }].sort((a, b) =>
          `${a.channel} ${a.address}`.localeCompare(`${b.channel} ${b.address}`),
        ),
      );
      expect([after.tokens, after.endpoints]).toEqual([before.tokens, before.endpoints]);

      const again = await admin.send({
        userId: `gone-${name}`,
        type: 'ping',
        title: 'Again',
        channels: [channel],
      });
      const next = await finalDelivery(again.notificationId, channel);
      expect([next.status, next.reason, next.attemptCount]).toEqual([
        DeliveryStatus.SKIPPED,
        `suppressed: ${name} address is on the suppression list`,
        0,
      ]);
    },
  );

  it('webhook: disables the endpoint, and nothing else', async () => {
    const admin = server.admin();
    const created = await server.adminService().createWebhookEndpoint({ url: `${receiver.url}/hook-gone` });
    const id = created.endpoint!.id;
    try {
      receiver.script('/hook-gone', [{ status: 410 }]);
      const before = await snapshot();
      const sent = await admin.send({
        userId: 'gone-hook',
        type: 'ping',
        title: 'Hi',
        channels: [Channel.WEBHOOK],
      });
      const d = await finalDelivery(sent.notificationId, Channel.WEBHOOK);
      expect([d.status, d.reason]).toEqual([
        DeliveryStatus.FAILED,
        'invalid_destination: endpoint answered 410 Gone',
      ]);
      const after = await snapshot();
      expect(after.endpoints).toEqual(
        before.endpoints.map((e) =>
          e.id === id ? { ...e, enabled: false, disabled_reason: 'endpoint answered 410 Gone' } : e,
        ),
      );
      expect([after.tokens, after.suppressions]).toEqual([before.tokens, before.suppressions]);
      const again = await admin.send({
        userId: 'gone-hook',
        type: 'ping',
        title: 'Hi',
        channels: [Channel.WEBHOOK],
      });
      expect(again.deliveries[0]?.status).toBe(DeliveryStatus.SKIPPED);
    } finally {
      await server.adminService().deleteWebhookEndpoint({ id });
    }
  });
});
