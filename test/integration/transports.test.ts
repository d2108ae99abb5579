// Every implemented RPC over each wire protocol: native gRPC on the gRPC port (@grpc/grpc-js), and what the
// main port speaks: gRPC (h2c), Connect over HTTP/1.1 and HTTP/2, and gRPC-Web over HTTP/1.1. Same service
// implementations, same answers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel, createHeraldClient, DeliveryStatus, Platform } from '../../clients/node/index.js';
import { engines } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';

const protocols = [
  { port: 'gRPC port', protocol: 'grpc', httpVersion: '2' },
  { port: 'main port', protocol: 'grpc', httpVersion: '2' },
  { port: 'main port', protocol: 'connect', httpVersion: '1.1' },
  { port: 'main port', protocol: 'connect', httpVersion: '2' },
  { port: 'main port', protocol: 'grpc-web', httpVersion: '1.1' },
] as const;

describe.each(engines())('every RPC over every protocol ($name)', (engine) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(engine);
  });
  afterAll(() => server?.stop());

  it.each(protocols)(
    '$protocol over HTTP/$httpVersion on the $port',
    async ({ port, protocol, httpVersion }) => {
      const client = createHeraldClient({
        baseUrl: port === 'gRPC port' ? server.grpcUrl : server.url,
        apiKey: server.adminKey,
        protocol,
        httpVersion,
      });
      const user = `user-${protocol}-${httpVersion}-${port.split(' ')[0]}`;

      const sent = await client.send({
        userId: user,
        recipient: { email: 'Someone@Example.com', timezone: 'Europe/Vienna', locale: 'de-at' },
        type: 'order.shipped',
        title: 'Your order shipped',
        body: 'It arrives tomorrow.',
        data: { orderId: 'o-1', items: [1, 2], gift: false },
        channels: [Channel.IN_APP, Channel.EMAIL, Channel.SMS],
      });
      expect(sent.seq).toBe(1n);
      expect(sent.deliveries.map((d) => [d.channel, d.status, d.reason])).toEqual([
        [Channel.IN_APP, DeliveryStatus.QUEUED, ''],
        [Channel.EMAIL, DeliveryStatus.QUEUED, ''],
        [Channel.SMS, DeliveryStatus.SKIPPED, 'no_address: recipient has no phone number'],
      ]);

      const batch = await client.sendBatch({
        requests: [
          { userId: user, type: 'a', title: 'one' },
          { userId: user, type: 'b', title: 'two' },
        ],
      });
      expect(batch.results.map((r) => r.seq)).toEqual([2n, 3n]);

      const { notification } = await client.getNotification({ notificationId: sent.notificationId });
      expect(notification).toMatchObject({
        id: sent.notificationId,
        userId: user,
        seq: 1n,
        type: 'order.shipped',
        title: 'Your order shipped',
        body: 'It arrives tomorrow.',
        data: { orderId: 'o-1', items: [1, 2], gift: false },
      });
      expect(notification?.deliveries.map((d) => d.id)).toEqual(sent.deliveries.map((d) => d.deliveryId));
      // In-app and the skipped SMS are never attempted; the e-mail may already be in the outbox (one attempt).
      expect(
        notification?.deliveries.map((d) => [
          d.channel,
          d.attemptCount <= (d.channel === Channel.EMAIL ? 1 : 0),
        ]),
      ).toEqual([
        [Channel.IN_APP, true],
        [Channel.EMAIL, true],
        [Channel.SMS, true],
      ]);
      expect(notification?.deliveries.every((d) => d.nextAttemptAt)).toBe(true);

      const apnsToken =
        protocol.length.toString(16).padStart(2, '0') +
        (port === 'gRPC port' ? 'c' : 'd') +
        httpVersion.replace('.', 'a').padEnd(61, 'b');
      const registered = await client.registerToken({
        userId: user,
        platform: Platform.APNS,
        token: apnsToken,
        deviceId: 'iphone-1',
        appId: 'com.example.app',
      });
      expect(registered.token).toMatchObject({
        userId: user,
        platform: Platform.APNS,
        active: true,
        deviceId: 'iphone-1',
      });

      const prefs = await client.updatePreferences({
        userId: user,
        channels: [{ channel: Channel.SMS, enabled: false }],
        types: [{ type: 'order.shipped', channel: Channel.EMAIL, enabled: false }],
        quietHours: { start: '22:00', end: '07:00', timezone: 'Europe/Vienna' },
      });
      expect(prefs.preferences?.quietHours).toMatchObject({
        start: '22:00',
        end: '07:00',
        timezone: 'Europe/Vienna',
      });
      const got = await client.getPreferences({ userId: user });
      expect(got.preferences?.channels).toEqual([
        expect.objectContaining({ channel: Channel.SMS, enabled: false }),
      ]);
      expect(got.preferences?.types).toEqual([
        expect.objectContaining({ type: 'order.shipped', channel: Channel.EMAIL, enabled: false }),
      ]);

      await client.unregisterToken({ platform: Platform.APNS, token: apnsToken });
      const push = await client.send({ userId: user, type: 'x', title: 'push?', channels: [Channel.PUSH] });
      expect(push.deliveries[0]?.status).toBe(DeliveryStatus.SKIPPED);

      const inApp = await client.send({
        userId: user,
        type: 'x',
        title: 'inbox',
        channels: [Channel.IN_APP],
      });
      const listed = await client.listNotifications({ userId: user });
      expect(listed.notifications.map((n) => n.id)).toContain(inApp.notificationId);
      expect(listed.unreadCount).toBe(BigInt(listed.notifications.length));
      // Server streaming works over every protocol too: the replay, then the unread count.
      const seen: string[] = [];
      for await (const event of client.streamNotifications({ userId: user, afterSeq: inApp.seq - 1n })) {
        seen.push(event.event.case ?? '');
        if (event.event.case === 'unreadCount') break;
      }
      expect(seen).toEqual(['notification', 'unreadCount']);
    },
  );
});
