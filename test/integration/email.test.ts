// EMAIL over SMTP through the real nodemailer against a local smtp-server (STARTTLS with a test CA, AUTH,
// DKIM), configured by a providers file: the message as the server parsed it (subject, HTML, text, sender,
// one-click unsubscribe headers, DKIM signature); an address refused at RCPT suppressed (and the next Send
// skipped), a policy refusal failing only that message, a temporary refusal retried; a real e-mail provider
// without HERALD_PUBLIC_URL refused at start. Runs on every available engine.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel, DeliveryStatus } from '../../clients/node/index.js';
import { type SmtpEmulator, startSmtpEmulator, verifyDkim } from '../emulators/smtp.js';
import { engines } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

const PUBLIC_URL = 'https://herald.example.com';
const inFlight = new Set([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]);

describe.each(engines())('e-mail over SMTP on $name', (engine) => {
  let smtp: SmtpEmulator;
  let server: TestServer;
  let dir: string;
  let providersFile: string;
  const dkim = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });

  beforeAll(async () => {
    smtp = await startSmtpEmulator({ users: { herald: 'relay-password' } });
    dir = mkdtempSync(path.join(tmpdir(), 'herald-email-'));
    const secretFile = (name: string, value: string) => {
      writeFileSync(path.join(dir, name), value);
      return { file: path.join(dir, name) };
    };
    providersFile = path.join(dir, 'providers.json');
    writeFileSync(
      providersFile,
      JSON.stringify({
        channels: {
          email: [
            {
              type: 'smtp',
              name: 'relay',
              timeout_ms: 5_000,
              settings: {
                host: '127.0.0.1',
                port: smtp.port,
                username: 'herald',
                password: secretFile('smtp-password', 'relay-password\n'),
                ca: { file: smtp.caFile },
                dkim: {
                  domain: 'example.com',
                  selector: 'herald',
                  private_key: secretFile('dkim.pem', dkim.privateKey),
                },
                from: 'Example Shop <notifications@example.com>',
                reply_to: 'support@example.com',
              },
            },
          ],
        },
      }),
    );
    server = await startTestServer(engine, {
      overrides: {
        HERALD_PROVIDERS_FILE: providersFile,
        HERALD_PUBLIC_URL: PUBLIC_URL,
        HERALD_LINK_SECRET: 'a-link-secret-of-at-least-32-bytes!!',
        HERALD_DISPATCH_POLL_MS: '200',
        HERALD_RETRY_EMAIL: 'attempts=3,base_ms=50,max_delay_ms=100',
      },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await smtp?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function email(userId: string, address: string, title = 'Your order shipped') {
    const sent = await server.admin().send({
      userId,
      type: 'order.shipped',
      title,
      body: 'Order A-1 is on its way.\n\nThanks for shopping <with us>.',
      recipient: { email: address },
      channels: [Channel.EMAIL],
    });
    return until('the e-mail final', 8_000, async () => {
      const { notification } = await server.admin().getNotification({ notificationId: sent.notificationId });
      const d = notification!.deliveries[0]!;
      return inFlight.has(d.status) ? undefined : d;
    });
  }

  it('sends the message as the server receives it: sender, parts, unsubscribe headers, TLS, AUTH and DKIM', async () => {
    const d = await email('ada', 'ada@example.org');
    expect([d.status, d.provider, d.destination]).toEqual([DeliveryStatus.SENT, 'relay', 'a***@example.org']);
    const got = smtp.received.find((m) => m.envelope.to.includes('ada@example.org'))!;
    expect(got).toMatchObject({
      envelope: { from: 'notifications@example.com', to: ['ada@example.org'] },
      subject: 'Your order shipped',
      from: { name: 'Example Shop', address: 'notifications@example.com' },
      replyTo: { address: 'support@example.com' },
      messageId: `<${d.id}@herald>`,
      secure: true,
      user: 'herald',
    });
    expect(got.text).toMatch(
      /^Order A-1 is on its way\.\n\nThanks for shopping <with us>\.\n\n--\nUnsubscribe: https:\/\/herald\.example\.com\/unsubscribe\/v1\./,
    );
    expect(got.html).toMatch(/<p style="[^"]+">Thanks for shopping &lt;with us&gt;\.<\/p>/);
    expect(got.html).toMatch(/^<!doctype html>[\s\S]*max-width:600px/);
    expect(got.headers['list-unsubscribe']).toMatch(
      /^<https:\/\/herald\.example\.com\/unsubscribe\/v1\.[\w-]+\.[\w-]+>$/,
    );
    expect(got.headers['list-unsubscribe-post']).toBe('List-Unsubscribe=One-Click');
    expect(verifyDkim(got.raw, dkim.publicKey)).toMatchObject({
      valid: true,
      domain: 'example.com',
      selector: 'herald',
    });
    expect(d.attempts[0]).toMatchObject({
      provider: 'relay',
      outcome: 'sent',
      destination: 'a***@example.org',
      providerMessageId: d.providerMessageId,
    });
    expect(d.providerMessageId).toBe(`<${d.id}@herald>`);
  });

  it("sends a type's e-mail from its own sender when its routing rule names one", async () => {
    await server.adminService().putRoutingRule({
      rule: {
        type: 'billing.receipt',
        steps: [{ channels: [Channel.EMAIL] }],
        emailSender: { from: 'Example Billing <billing@example.com>', replyTo: 'billing-help@example.com' },
      },
    });
    const sent = await server.admin().send({
      userId: 'bea',
      type: 'billing.receipt',
      title: 'Your receipt',
      body: 'Thanks.',
      recipient: { email: 'bea@example.org' },
    });
    await until('the receipt sent', 8_000, async () => {
      const { notification } = await server.admin().getNotification({ notificationId: sent.notificationId });
      return notification!.deliveries[0]!.status === DeliveryStatus.SENT || undefined;
    });
    const got = smtp.received.find((m) => m.envelope.to.includes('bea@example.org'))!;
    expect(got).toMatchObject({
      envelope: { from: 'billing@example.com' },
      from: { name: 'Example Billing', address: 'billing@example.com' },
      replyTo: { address: 'billing-help@example.com' },
    });
    const { rule } = await server.adminService().getRoutingRule({ type: 'billing.receipt' });
    expect(rule!.emailSender).toMatchObject({
      from: 'Example Billing <billing@example.com>',
      replyTo: 'billing-help@example.com',
    });
  });

  it('suppresses an address the server says does not exist, and skips it on the next Send', async () => {
    smtp.script('gone@example.org', [{ stage: 'rcpt', code: 550, message: '5.1.1 user unknown' }]);
    const d = await email('gone', 'gone@example.org');
    expect([d.status, d.reason]).toEqual([
      DeliveryStatus.FAILED,
      'invalid_destination: SMTP RCPT TO 550 5.1.1 user unknown',
    ]);
    const { suppressions } = await server
      .adminService()
      .listSuppressions({ channel: Channel.EMAIL, address: 'gone@example.org' });
    expect(suppressions.map((s) => [s.address, s.deliveryId])).toEqual([['gone@example.org', d.id]]);
    const next = await email('gone', 'gone@example.org', 'Again');
    expect([next.status, next.reason]).toEqual([
      DeliveryStatus.SKIPPED,
      'suppressed: email address is on the suppression list',
    ]);
  });

  it('fails only the message on a policy refusal, and suppresses nothing', async () => {
    smtp.script('blocked@example.org', [{ stage: 'rcpt', code: 550, message: '5.7.1 relaying denied' }]);
    const d = await email('blocked', 'blocked@example.org');
    expect([d.status, d.reason]).toEqual([
      DeliveryStatus.FAILED,
      'failed: SMTP RCPT TO 550 5.7.1 relaying denied',
    ]);
    const { suppressions } = await server
      .adminService()
      .listSuppressions({ channel: Channel.EMAIL, address: 'blocked@example.org' });
    expect(suppressions).toEqual([]);
  });

  it('suppresses nothing when a relay refuses without an enhanced code, unless its words name the address', async () => {
    smtp.script('relayed@example.org', [{ stage: 'rcpt', code: 550, message: 'Relaying denied' }]);
    const refused = await email('relayed', 'relayed@example.org');
    expect([refused.status, refused.reason]).toEqual([
      DeliveryStatus.FAILED,
      'failed: SMTP RCPT TO 550 Relaying denied',
    ]);
    smtp.script('nobody@example.org', [{ stage: 'rcpt', code: 550, message: 'No such user here' }]);
    const gone = await email('nobody', 'nobody@example.org');
    expect(gone.reason).toBe('invalid_destination: SMTP RCPT TO 550 No such user here');
    const listed = async (address: string) =>
      (await server.adminService().listSuppressions({ channel: Channel.EMAIL, address })).suppressions.length;
    expect([await listed('relayed@example.org'), await listed('nobody@example.org')]).toEqual([0, 1]);
  });

  it('retries a temporary refusal and then sends', async () => {
    smtp.script('busy@example.org', [{ stage: 'data', code: 451, message: '4.3.0 try later' }]);
    const d = await email('busy', 'busy@example.org');
    expect([d.status, d.attempts.map((a) => a.outcome)]).toEqual([DeliveryStatus.SENT, ['retry', 'sent']]);
  });

  it('refuses to start a real e-mail provider without HERALD_PUBLIC_URL and HERALD_LINK_SECRET', async () => {
    const refused = await startTestServer(engine, {
      overrides: { HERALD_PROVIDERS_FILE: providersFile },
    }).then(
      async (started) => {
        await started.stop();
        return 'started';
      },
      (error: Error) => error.message,
    );
    expect(refused).toContain(
      'HERALD_PUBLIC_URL is required with a real e-mail or SMS provider (email: relay)',
    );
    expect(refused).toContain(
      'HERALD_LINK_SECRET is required with a real e-mail or SMS provider (email: relay)',
    );
  });
});
