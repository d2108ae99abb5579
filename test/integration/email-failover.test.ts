// EMAIL through SES (the real @aws-sdk/client-ses against an emulator of the SES Query API that verifies
// SigV4) with an SMTP relay behind it, in failover order, from a providers file: the raw MIME SES received
// (headers, tags, configuration set); throttling and an answer without a MessageId move the next attempt to
// the relay; MessageRejected fails the message; a daily quota holds SES, so later e-mails go straight to the
// relay without touching it. Runs on every available engine.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel, DeliveryStatus } from '../../clients/node/index.js';
import { type SesEmulator, startSesEmulator } from '../emulators/ses.js';
import { type SmtpEmulator, startSmtpEmulator } from '../emulators/smtp.js';
import { engines } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

const KEY = {
  accessKeyId: 'AKIAHERALDTEST000001',
  secretAccessKey: 'test-secret-access-key-for-the-emulator',
};
const inFlight = new Set([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]);

describe.each(engines())('e-mail failover from SES to SMTP on $name', (engine) => {
  let ses: SesEmulator;
  let smtp: SmtpEmulator;
  let server: TestServer;
  let dir: string;

  beforeAll(async () => {
    ses = await startSesEmulator({ ...KEY, region: 'eu-west-1' });
    smtp = await startSmtpEmulator();
    dir = mkdtempSync(path.join(tmpdir(), 'herald-ses-'));
    writeFileSync(path.join(dir, 'aws-secret'), KEY.secretAccessKey);
    const providersFile = path.join(dir, 'providers.json');
    writeFileSync(
      providersFile,
      JSON.stringify({
        channels: {
          email: [
            {
              type: 'ses',
              timeout_ms: 5_000,
              settings: {
                region: 'eu-west-1',
                endpoint: ses.url,
                access_key_id: KEY.accessKeyId,
                secret_access_key: { file: path.join(dir, 'aws-secret') },
                configuration_set: 'herald-events',
                from: 'Example Shop <notifications@example.com>',
              },
            },
            {
              type: 'smtp',
              name: 'relay',
              timeout_ms: 5_000,
              settings: {
                host: '127.0.0.1',
                port: smtp.port,
                ca: { file: smtp.caFile },
                from: 'Example Shop <notifications@example.com>',
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
        HERALD_RETRY_EMAIL: 'attempts=4,base_ms=50,max_delay_ms=100',
      },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await ses?.close();
    await smtp?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function email(address: string, type = 'order.shipped') {
    const sent = await server.admin().send({
      userId: address.split('@')[0]!,
      type,
      title: 'Your order shipped',
      body: 'On its way.',
      recipient: { email: address },
      channels: [Channel.EMAIL],
    });
    return until('the e-mail final', 8_000, async () => {
      const { notification } = await server.admin().getNotification({ notificationId: sent.notificationId });
      const d = notification!.deliveries[0]!;
      return inFlight.has(d.status) ? undefined : { ...d, notificationId: sent.notificationId };
    });
  }
  const sesFor = (address: string) => ses.received.filter((r) => r.destinations.includes(address));
  const smtpFor = (address: string) => smtp.received.filter((m) => m.envelope.to.includes(address));

  it('sends through SES: raw MIME with the unsubscribe headers, tags and configuration set, signed', async () => {
    const d = await email('ses@example.org');
    expect([d.status, d.provider]).toEqual([DeliveryStatus.SENT, 'ses']);
    const [request] = sesFor('ses@example.org');
    expect(request).toMatchObject({
      action: 'SendRawEmail',
      signatureValid: true,
      accessKeyId: KEY.accessKeyId,
      configurationSet: 'herald-events',
      tags: { type: 'order_shipped', notification_id: d.notificationId },
      messageId: d.providerMessageId,
    });
    expect(request!.parsed).toMatchObject({
      subject: 'Your order shipped',
      from: { address: 'notifications@example.com' },
      messageId: `<${d.id}@herald>`,
    });
    expect(request!.parsed!.headers['list-unsubscribe']).toMatch(
      /^<https:\/\/herald\.example\.com\/unsubscribe\/v1\./,
    );
    expect(request!.parsed!.headers['list-unsubscribe-post']).toBe('List-Unsubscribe=One-Click');
    expect(smtpFor('ses@example.org')).toEqual([]);
  });

  it.each([
    [
      'throttling',
      { kind: 'error', status: 400, code: 'Throttling', message: 'Maximum sending rate exceeded.' },
    ],
    ['an answer without a MessageId', { kind: 'empty' }],
    ['a 500', { kind: 'error', status: 500, code: 'InternalFailure', message: 'oops', type: 'Receiver' }],
  ] as const)('fails over to the relay after %s', async (_name, reply) => {
    const address = `over-${_name.replace(/\W+/g, '-').toLowerCase()}@example.org`;
    ses.script(address, [reply]);
    const d = await email(address);
    expect([d.status, d.provider, d.attempts.map((a) => [a.provider, a.outcome])]).toEqual([
      DeliveryStatus.SENT,
      'relay',
      [
        ['ses', 'retry'],
        ['relay', 'sent'],
      ],
    ]);
    expect(smtpFor(address)).toHaveLength(1);
  });

  it('fails the message on MessageRejected, without failing over or suppressing', async () => {
    ses.script('rejected@example.org', [
      { kind: 'error', status: 400, code: 'MessageRejected', message: 'Email address is not verified.' },
    ]);
    const d = await email('rejected@example.org');
    expect([d.status, d.reason]).toEqual([
      DeliveryStatus.FAILED,
      'failed: SES MessageRejected: Email address is not verified.',
    ]);
    expect(smtpFor('rejected@example.org')).toEqual([]);
    const { suppressions } = await server
      .adminService()
      .listSuppressions({ channel: Channel.EMAIL, address: 'rejected@example.org' });
    expect(suppressions).toEqual([]);
  });

  // Last: SES stays held for an hour afterwards.
  it('holds SES on a daily quota: later e-mails go straight to the relay', async () => {
    ses.script('quota@example.org', [
      { kind: 'error', status: 400, code: 'Throttling', message: 'Daily message quota exceeded.' },
    ]);
    const first = await email('quota@example.org');
    expect([first.status, first.provider]).toEqual([DeliveryStatus.SENT, 'relay']);
    const later = await email('later@example.org');
    expect([later.status, later.provider, later.attempts.length]).toEqual([DeliveryStatus.SENT, 'relay', 1]);
    expect(sesFor('later@example.org')).toEqual([]);
  });
});
