// SES feedback through signed SNS messages to POST /webhooks/ses (the SNS emulator signs with its own RSA
// certificate, served over HTTPS from a host Herald is configured to trust): a subscription is confirmed; a
// permanent bounce suppresses the address and fails the delivery, a transient one changes nothing; a
// complaint suppresses and turns the user's e-mail off; a delivery marks DELIVERED; duplicates and late
// events move nothing backwards; a tampered body, a foreign signature, an untrusted certificate host and an
// unexpected topic are refused and change nothing. Runs on every available engine.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel, DeliveryStatus } from '../../clients/node/index.js';
import { type SesEmulator, startSesEmulator } from '../emulators/ses.js';
import {
  type SnsEmulator,
  type SnsMessage,
  sesBounce,
  sesComplaint,
  sesDelivery,
  startSnsEmulator,
  tamper,
} from '../emulators/sns.js';
import { engines } from '../support/engines.js';
import { rowCounts } from '../support/rows.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:herald-ses-events';
const KEY = { accessKeyId: 'AKIAHERALDTEST000002', secretAccessKey: 'another-test-secret-for-the-emulator' };

describe.each(engines())('SES feedback over SNS on $name', (engine) => {
  let ses: SesEmulator;
  let sns: SnsEmulator;
  let server: TestServer;
  let dir: string;

  beforeAll(async () => {
    ses = await startSesEmulator({ ...KEY, region: 'eu-west-1' });
    sns = await startSnsEmulator();
    dir = mkdtempSync(path.join(tmpdir(), 'herald-sns-'));
    const providersFile = path.join(dir, 'providers.json');
    writeFileSync(
      providersFile,
      JSON.stringify({
        channels: {
          email: [
            {
              type: 'ses',
              settings: {
                region: 'eu-west-1',
                endpoint: ses.url,
                access_key_id: KEY.accessKeyId,
                secret_access_key: KEY.secretAccessKey,
                from: 'notifications@example.com',
              },
            },
          ],
        },
      }),
    );
    server = await startTestServer(engine, {
      overrides: {
        HERALD_PROVIDERS_FILE: providersFile,
        HERALD_PUBLIC_URL: 'https://herald.example.com',
        HERALD_LINK_SECRET: 'a-link-secret-of-at-least-32-bytes!!',
        HERALD_DISPATCH_POLL_MS: '200',
        HERALD_SES_TOPIC_ARNS: TOPIC,
        HERALD_SNS_CERT_HOSTS: sns.host,
        HERALD_SNS_CA_FILE: sns.caFile,
        HERALD_WEBHOOK_ALLOW_NETWORKS: '127.0.0.1/32',
      },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await sns?.close();
    await ses?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const post = (body: SnsMessage | Record<string, unknown>) =>
    fetch(`${server.url}/webhooks/ses`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain; charset=UTF-8', 'x-amz-sns-message-type': String(body.Type) },
      body: JSON.stringify(body),
    });

  async function sentEmail(userId: string) {
    const address = `${userId}@example.org`;
    const sent = await server.admin().send({
      userId,
      type: 'newsletter',
      title: 'News',
      recipient: { email: address },
      channels: [Channel.EMAIL],
    });
    const d = await until('the e-mail sent', 5_000, async () => {
      const { notification } = await server.admin().getNotification({ notificationId: sent.notificationId });
      const delivery = notification!.deliveries[0]!;
      return delivery.status === DeliveryStatus.SENT ? delivery : undefined;
    });
    return { address, delivery: d, notificationId: sent.notificationId };
  }
  const deliveryOf = async (notificationId: string) =>
    (await server.admin().getNotification({ notificationId })).notification!.deliveries[0]!;
  const suppressed = async (address: string) =>
    (await server.adminService().listSuppressions({ channel: Channel.EMAIL, address })).suppressions;

  it('confirms a subscription by fetching its SubscribeURL', async () => {
    const confirmation = sns.subscriptionConfirmation({ topicArn: TOPIC, signatureVersion: '2' });
    expect((await post(confirmation)).status).toBe(200);
    expect(sns.confirmations()).toContain(confirmation.Token);
  });

  it('suppresses on a permanent bounce and fails the delivery; a duplicate and a late delivery event change nothing', async () => {
    const { address, delivery, notificationId } = await sentEmail('bouncer');
    const bounce = sns.notification({
      topicArn: TOPIC,
      message: sesBounce({
        messageId: delivery.providerMessageId,
        recipients: [address],
        bounceType: 'Permanent',
        bounceSubType: 'General',
      }),
    });
    expect((await post(bounce)).status).toBe(200);
    expect((await suppressed(address)).map((s) => [s.reason, s.deliveryId])).toEqual([
      ['bounced: Permanent General', delivery.id],
    ]);
    expect([(await deliveryOf(notificationId)).status, (await deliveryOf(notificationId)).reason]).toEqual([
      DeliveryStatus.FAILED,
      'bounced: Permanent General',
    ]);
    expect((await post(bounce)).status).toBe(200);
    const late = sns.notification({
      topicArn: TOPIC,
      message: sesDelivery({ messageId: delivery.providerMessageId, recipients: [address] }),
    });
    expect((await post(late)).status).toBe(200);
    expect((await deliveryOf(notificationId)).status).toBe(DeliveryStatus.FAILED);
    expect(await suppressed(address)).toHaveLength(1);
  });

  it('changes nothing on a transient bounce', async () => {
    const { address, delivery, notificationId } = await sentEmail('mailbox-full');
    const bounce = sns.notification({
      topicArn: TOPIC,
      signatureVersion: '2',
      message: sesBounce({
        messageId: delivery.providerMessageId,
        recipients: [address],
        bounceType: 'Transient',
        bounceSubType: 'MailboxFull',
      }),
    });
    expect((await post(bounce)).status).toBe(200);
    expect(await suppressed(address)).toEqual([]);
    expect((await deliveryOf(notificationId)).status).toBe(DeliveryStatus.SENT);
  });

  it("suppresses on a complaint and turns the user's e-mail off", async () => {
    const { address, delivery } = await sentEmail('complainer');
    const complaint = sns.notification({
      topicArn: TOPIC,
      message: sesComplaint({ messageId: delivery.providerMessageId, recipients: [address] }),
    });
    expect((await post(complaint)).status).toBe(200);
    expect((await suppressed(address)).map((s) => s.reason)).toEqual(['complaint']);
    const { preferences } = await server.admin().getPreferences({ userId: 'complainer' });
    expect(preferences!.channels.map((c) => [c.channel, c.enabled])).toEqual([[Channel.EMAIL, false]]);
  });

  it('marks a delivery DELIVERED, and tells the webhook endpoints that subscribe to it', async () => {
    const created = await server.adminService().createWebhookEndpoint({
      url: 'http://127.0.0.1:9/herald',
      eventTypes: ['notification.delivered', 'notification.failed'],
    });
    const { address, delivery, notificationId } = await sentEmail('reader');
    const event = sns.notification({
      topicArn: TOPIC,
      message: sesDelivery({ messageId: delivery.providerMessageId, recipients: [address] }),
    });
    expect((await post(event)).status).toBe(200);
    expect((await deliveryOf(notificationId)).status).toBe(DeliveryStatus.DELIVERED);
    // A duplicate changes nothing, and queues no second event.
    expect((await post(event)).status).toBe(200);
    const events = await server.db.database.sql.query<{ event: string; payload: { status: string } }>(
      `select event, payload from deliveries where notification_id = $1::uuid and channel = 'webhook'`,
      [notificationId],
    );
    expect(events.map((e) => [e.event, e.payload.status])).toEqual([['notification.delivered', 'delivered']]);
    await server.adminService().deleteWebhookEndpoint({ id: created.endpoint!.id });
  });

  it('refuses a tampered body, a foreign signature, an untrusted certificate host and another topic, changing nothing', async () => {
    const { address, delivery, notificationId } = await sentEmail('target');
    const message = sesBounce({
      messageId: delivery.providerMessageId,
      recipients: [address],
      bounceType: 'Permanent',
      bounceSubType: 'General',
    });
    const genuine = sns.notification({ topicArn: TOPIC, message });
    const before = await rowCounts(server.db.database.db);
    const refused = [
      tamper(
        genuine,
        'Message',
        JSON.stringify({
          ...message,
          bounce: { ...message.bounce, bouncedRecipients: [{ emailAddress: 'other@example.org' }] },
        }),
      ),
      sns.signWithForeignKey(genuine),
      tamper(genuine, 'SigningCertURL', 'https://sns.attacker.example/SimpleNotificationService-x.pem'),
      tamper(genuine, 'SigningCertURL', genuine.SigningCertURL.replace('https:', 'http:')),
      sns.notification({ topicArn: 'arn:aws:sns:eu-west-1:123456789012:someone-else', message }),
    ];
    for (const body of refused) expect((await post(body)).status).toBe(403);
    expect((await post({ Type: 'Notification' })).status).toBe(400);
    expect(await rowCounts(server.db.database.db)).toEqual(before);
    expect((await deliveryOf(notificationId)).status).toBe(DeliveryStatus.SENT);
    expect(await suppressed(address)).toEqual([]);
  });
});
