// The channel platform on the embedded default (no providers file): every channel that has no provider
// delivers into the outbox, so every planned delivery reaches a final state with no credentials at all.
// - The README's quickstart Sends, run as written (its curl bodies, posted as curl would): every provider
//   channel final within 5 s (e-mail SENT to the outbox, no address SKIPPED with the reason).
// - A Send on all five channels to a user with two push tokens, an e-mail, a phone and a webhook endpoint:
//   one delivery per token, each with its masked destination, every attempt naming provider and destination,
//   and each outbox message holding what a real provider would have received.
// Runs on every available engine.
import { readFileSync } from 'node:fs';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel, DeliveryStatus, Platform } from '../../clients/node/index.js';
import { startWebhookReceiver, type WebhookReceiver } from '../emulators/webhook-receiver.js';
import { engines } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

/** Final for a delivery that goes to a provider: anything but queued and sending. */
const inFlight = new Set([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]);

/** The quickstart's curl commands: the RPC path and the JSON body of each. */
function quickstartCurls(): { path: string; body: string }[] {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('## Quickstart');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const curls = [...section.matchAll(/curl -s http:\/\/localhost:8080(\/\S+) \\\n[\s\S]*?-d '([^']+)'/g)];
  return curls.map((m) => ({ path: m[1]!, body: m[2]! }));
}

describe.each(engines())('the channel platform on $name', (engine) => {
  let server: TestServer;
  let receiver: WebhookReceiver;
  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    server = await startTestServer(engine, {
      overrides: { HERALD_WEBHOOK_ALLOW_NETWORKS: '127.0.0.1/32', HERALD_DISPATCH_POLL_MS: '200' },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await receiver?.close();
  });

  async function settled(notificationId: string) {
    return until(`deliveries of ${notificationId} final`, 5_000, async () => {
      const { notification } = await server.admin().getNotification({ notificationId });
      const pending = notification!.deliveries.filter(
        (d) => d.channel !== Channel.IN_APP && inFlight.has(d.status),
      );
      return pending.length === 0 ? notification! : undefined;
    });
  }

  it('takes the README quickstart Sends to final states within 5 s', async () => {
    const curls = quickstartCurls();
    expect(curls.length).toBeGreaterThanOrEqual(2);
    for (const { path, body } of curls) {
      const res = await fetch(`${server.url}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${server.adminKey}`, 'content-type': 'application/json' },
        body,
      });
      expect(res.status).toBe(200);
      const answer = (await res.json()) as { notificationId?: string };
      if (!path.endsWith('/Send')) continue;
      const notification = await settled(answer.notificationId!);
      const requested = (JSON.parse(body) as { channels: string[] }).channels;
      expect(notification.deliveries).toHaveLength(requested.length);
      for (const d of notification.deliveries) {
        if (d.channel === Channel.EMAIL) {
          expect([d.status, d.provider, d.destination]).toEqual([
            DeliveryStatus.SENT,
            'outbox',
            'a***@example.com',
          ]);
          const { message } = await server.adminService().getOutboxMessage({
            id: d.providerMessageId.replace(/^outbox-/, ''),
          });
          expect(message?.message).toMatchObject({
            subject: 'Hello',
            text: expect.stringMatching(
              /^Welcome to Herald\n\n--\nUnsubscribe: http:\/\/\S+\/unsubscribe\/v1\./,
            ),
          });
        } else if (d.channel === Channel.SMS || d.channel === Channel.PUSH) {
          expect(d.status).toBe(DeliveryStatus.SKIPPED);
          expect(d.reason).toMatch(/^no_address: /);
        } else {
          // In-app: the notification is in alice's inbox; it is QUEUED until a live session takes it.
          expect(d.channel).toBe(Channel.IN_APP);
        }
      }
    }
  });

  it('plans one push delivery per token and records what each provider would have received', async () => {
    const admin = server.admin();
    const apnsToken = 'ab'.repeat(32);
    const fcmToken = 'fcm-registration-token-0123456789';
    await admin.registerToken({
      userId: 'five',
      platform: Platform.APNS,
      token: apnsToken,
      appId: 'com.example',
    });
    await admin.registerToken({
      userId: 'five',
      platform: Platform.FCM,
      token: fcmToken,
      appId: 'com.example',
    });
    const endpoint = await server.adminService().createWebhookEndpoint({
      url: `${receiver.url}/five`,
      eventTypes: ['order.shipped'],
    });
    try {
      const sent = await admin.send({
        userId: 'five',
        type: 'order.shipped',
        title: 'Shipped',
        body: 'Order A-1 & B-2 <shipped>',
        data: { order: 'A-1' },
        priority: 3,
        recipient: { email: 'Five@Example.com', phone: '+4915112345678' },
        channels: [Channel.IN_APP, Channel.PUSH, Channel.EMAIL, Channel.SMS, Channel.WEBHOOK],
      });
      const channels = sent.deliveries.map((d) => d.channel);
      expect(channels).toEqual([
        Channel.IN_APP,
        Channel.PUSH,
        Channel.PUSH,
        Channel.EMAIL,
        Channel.SMS,
        Channel.WEBHOOK,
      ]);
      const notification = await settled(sent.notificationId);
      const byChannel = (c: Channel) => notification.deliveries.filter((d) => d.channel === c);
      for (const d of notification.deliveries.filter((x) => x.channel !== Channel.IN_APP)) {
        expect(d.status, `${Channel[d.channel]} ${d.reason}`).toBe(DeliveryStatus.SENT);
        expect(d.attempts).toHaveLength(1);
        expect(d.attempts[0]?.provider).toBe(d.provider);
        expect(d.attempts[0]?.destination).toBe(d.destination);
      }
      expect(
        byChannel(Channel.PUSH)
          .map((d) => d.destination)
          .sort(),
      ).toEqual([`…${apnsToken.slice(-8)}`, `…${fcmToken.slice(-8)}`].sort());
      expect(byChannel(Channel.EMAIL)[0]?.destination).toBe('f***@example.com');
      expect(byChannel(Channel.SMS)[0]?.destination).toBe('+49********678');
      expect(byChannel(Channel.WEBHOOK)[0]).toMatchObject({
        provider: 'webhook',
        destination: `endpoint ${endpoint.endpoint!.id}`,
      });

      const { messages } = await server.adminService().listOutboxMessages({ limit: 10 });
      const mine = messages.filter((m) => m.notificationId === sent.notificationId);
      const of = (c: Channel) => mine.filter((m) => m.channel === c).map((m) => m.message);
      const unsubscribe = expect.stringMatching(
        /^http:\/\/127\.0\.0\.1:\d+\/unsubscribe\/v1\.[\w-]+\.[\w-]+$/,
      );
      expect(of(Channel.EMAIL)).toEqual([
        {
          headers: {
            To: 'five@example.com',
            Subject: 'Shipped',
            'X-Herald-Notification-Id': sent.notificationId,
            'List-Unsubscribe': expect.stringMatching(/^<http:\/\/127\.0\.0\.1:\d+\/unsubscribe\/v1\.\S+>$/),
            'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
          },
          subject: 'Shipped',
          html: expect.stringMatching(
            /<p style="[^"]+">Order A-1 &amp; B-2 &lt;shipped&gt;<\/p>[\s\S]*<a href="http:\/\/127\.0\.0\.1:\d+\/unsubscribe\/v1\.[^"]+"[^>]*>Unsubscribe<\/a>/,
          ),
          text: expect.stringMatching(/^Order A-1 & B-2 <shipped>\n\n--\nUnsubscribe: /),
        },
      ]);
      const email = of(Channel.EMAIL)[0] as { headers: Record<string, string>; text: string };
      const footer = /\nUnsubscribe: (\S+)\nPreferences: (\S+)$/.exec(email.text)!;
      expect(footer[1]).toEqual(unsubscribe);
      expect(footer[2]).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/preferences\/v1\.[\w-]+\.[\w-]+$/);
      expect(email.headers['List-Unsubscribe']).toBe(`<${footer[1]}>`);
      expect(of(Channel.SMS)).toEqual([
        { to: '+4915112345678', text: 'Order A-1 & B-2 <shipped>', encoding: 'GSM-7', segments: 1 },
      ]);
      const push = of(Channel.PUSH);
      expect(push).toHaveLength(2);
      const pushIds = byChannel(Channel.PUSH).map((d) => d.id);
      const apns = push.find((m) => m?.platform === 'apns');
      expect(apns).toMatchObject({
        headers: {
          'apns-push-type': 'alert',
          'apns-priority': '10',
          'apns-topic': 'com.example',
        },
        payload: {
          // The badge is the recipient's unread in-app count: this notification.
          aps: { alert: { title: 'Shipped', body: 'Order A-1 & B-2 <shipped>' }, badge: 1 },
          notification_id: sent.notificationId,
          type: 'order.shipped',
          data: { order: 'A-1' },
        },
      });
      expect(pushIds).toContain((apns!.headers as Record<string, string>)['apns-id']);
      expect(push.find((m) => m?.platform === 'fcm')).toMatchObject({
        message: {
          token: fcmToken,
          notification: { title: 'Shipped', body: 'Order A-1 & B-2 <shipped>' },
          data: { order: 'A-1', herald_notification_id: sent.notificationId, herald_type: 'order.shipped' },
          android: { priority: 'HIGH' },
          apns: { headers: { 'apns-priority': '10', 'apns-push-type': 'alert' } },
        },
      });
      expect(mine.find((m) => m.channel === Channel.PUSH && m.destination === apnsToken)).toBeDefined();
      // The webhook went to the endpoint itself, not to the outbox.
      expect(of(Channel.WEBHOOK)).toEqual([]);
      await receiver.waitFor((r) => r.some((w) => w.path === '/five'), 5_000);
    } finally {
      await server.adminService().deleteWebhookEndpoint({ id: endpoint.endpoint!.id });
    }
  });

  it("never sends a user's push to a device that changed hands after planning", async () => {
    const admin = server.admin();
    const token = 'moved-device-token-0123456789';
    await admin.registerToken({ userId: 'seller', platform: Platform.FCM, token });
    const sent = await admin.send({
      userId: 'seller',
      type: 'private',
      title: 'Your code is 123456',
      channels: [Channel.PUSH],
      sendAt: timestampFromDate(new Date(Date.now() + 1_500)),
    });
    expect(sent.deliveries.map((d) => d.status)).toEqual([DeliveryStatus.QUEUED]);
    await admin.registerToken({ userId: 'buyer', platform: Platform.FCM, token });
    const d = await until('the push delivery final', 6_000, async () => {
      const { notification } = await admin.getNotification({ notificationId: sent.notificationId });
      const push = notification!.deliveries[0]!;
      return inFlight.has(push.status) ? undefined : push;
    });
    expect([d.status, d.reason, d.attempts.length]).toEqual([
      DeliveryStatus.SKIPPED,
      'no_address: the push token now belongs to another user',
      0,
    ]);
  });

  it('sends a delivery planned by an older version (no destination of its own) to the current address', async () => {
    const admin = server.admin();
    const sent = await admin.send({
      userId: 'legacy',
      type: 'legacy',
      title: 'From before',
      recipient: { email: 'legacy@example.com' },
      channels: [Channel.EMAIL],
      sendAt: timestampFromDate(new Date(Date.now() + 1_000)),
    });
    await server.db.database.sql.query('update deliveries set destination = null where id = $1::uuid', [
      sent.deliveries[0]!.deliveryId,
    ]);
    const n = await settled(sent.notificationId);
    const d = n.deliveries[0]!;
    expect([d.status, d.attempts[0]?.destination]).toEqual([DeliveryStatus.SENT, 'l***@example.com']);
  });

  it('renders an e-mail template part per field: subject, HTML (escaped output) and its own text part', async () => {
    const service = server.adminService();
    await service.putTemplate({
      template: {
        type: 'receipt',
        channel: Channel.EMAIL,
        locale: 'default',
        title: 'Receipt {{ data.order }} & more',
        body: '<h1>Thanks, {{ data.name }}</h1>',
        text: 'Thanks, {{ data.name }}. Order {{ data.order }}.',
      },
    });
    await expect(
      service.putTemplate({
        template: { type: 'receipt', channel: Channel.SMS, locale: 'default', body: 'x', text: 'y' },
      }),
    ).rejects.toThrow(/template\.text: only e-mail templates have a plain-text part/);
    await expect(
      service.putTemplate({
        template: {
          type: 'receipt',
          channel: Channel.EMAIL,
          locale: 'default',
          body: 'x',
          text: '{{ broken',
        },
      }),
    ).rejects.toThrow(/template\.text: /);
    const sent = await server.admin().send({
      userId: 'templated',
      type: 'receipt',
      title: 'fallback',
      data: { order: 'A-7', name: '<Ada>' },
      recipient: { email: 'ada@example.com' },
      channels: [Channel.EMAIL],
    });
    const n = await settled(sent.notificationId);
    const { message } = await service.getOutboxMessage({
      id: n.deliveries[0]!.providerMessageId.replace(/^outbox-/, ''),
    });
    expect(message?.message).toMatchObject({
      subject: 'Receipt A-7 & more',
      html: expect.stringMatching(/<h1>Thanks, &lt;Ada&gt;<\/h1>/),
      text: expect.stringMatching(/^Thanks, <Ada>\. Order A-7\.\n\n--\nUnsubscribe: /),
    });
  });

  it("picks the e-mail template of the recipient's nearest locale: de-AT falls back to de, others to default", async () => {
    const service = server.adminService();
    const key = { type: 'locale.mail', channel: Channel.EMAIL };
    await service.putTemplate({
      template: { ...key, locale: 'default', title: 'Hello', body: 'Hello {{ data.name }}' },
    });
    await service.putTemplate({
      template: { ...key, locale: 'de', title: 'Hallo', body: 'Hallo {{ data.name }}' },
    });
    const subjectFor = async (userId: string, locale: string) => {
      const sent = await server.admin().send({
        userId,
        type: 'locale.mail',
        title: 'fallback',
        data: { name: 'Anna' },
        recipient: { email: `${userId}@example.com`, locale },
        channels: [Channel.EMAIL],
      });
      const n = await settled(sent.notificationId);
      const { message } = await service.getOutboxMessage({
        id: n.deliveries[0]!.providerMessageId.replace(/^outbox-/, ''),
      });
      const m = message!.message as { subject: string; text: string };
      return [m.subject, m.text.split('\n')[0]];
    };
    expect(await subjectFor('austrian', 'de-AT')).toEqual(['Hallo', 'Hallo Anna']);
    expect(await subjectFor('french', 'fr-FR')).toEqual(['Hello', 'Hello Anna']);
  });

  it('pages the outbox newest first, follows it with after_id, and refuses bad arguments', async () => {
    const admin = server.admin();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const sent = await admin.send({
        userId: 'pager',
        type: 'digest',
        title: `Digest ${i}`,
        recipient: { email: 'pager@example.com' },
        channels: [Channel.EMAIL],
      });
      const n = await settled(sent.notificationId);
      ids.push(n.deliveries[0]!.providerMessageId.replace(/^outbox-/, ''));
    }
    const service = server.adminService();
    const first = await service.listOutboxMessages({ channel: Channel.EMAIL, limit: 2 });
    expect(first.messages.map((m) => m.id)).toEqual([ids[2], ids[1]]);
    const second = await service.listOutboxMessages({
      channel: Channel.EMAIL,
      limit: 2,
      cursor: first.nextCursor,
    });
    expect(second.messages[0]?.id).toBe(ids[0]);
    const newer = await service.listOutboxMessages({ afterId: ids[0]! });
    expect(newer.messages.map((m) => m.id)).toEqual([ids[1], ids[2]]);
    await expect(service.listOutboxMessages({ channel: Channel.IN_APP })).rejects.toThrow(/channel/);
    await expect(service.listOutboxMessages({ limit: 501 })).rejects.toThrow(/limit/);
    await expect(service.listOutboxMessages({ cursor: 'nope' })).rejects.toThrow(/cursor/);
    await expect(service.getOutboxMessage({ id: '00000000-0000-7000-8000-000000000000' })).rejects.toThrow(
      /no such outbox message/,
    );
    const sender = server.adminService(await server.keyWith('send', 'read'));
    await expect(sender.listOutboxMessages({})).rejects.toThrow(/admin/);
    await expect(sender.getOutboxMessage({ id: ids[0]! })).rejects.toThrow(/admin/);
  });
});
