// SMS through Twilio (the real `twilio` SDK against the Twilio emulator) with Amazon SNS behind it (the real
// @aws-sdk/client-sns against the SNS emulator, SigV4 verified), in failover order, from a providers file:
// the form Twilio received (E.164 To, From, Body, StatusCallback under HERALD_PUBLIC_URL); the message SID on
// the delivery and its attempt; a text shortened to its type's segment budget; segments and estimated cost
// in the metrics; 5xx and a region Twilio does not reach fail over to SNS; 21610 suppresses the number; an
// open Twilio circuit sends straight to SNS; signed status callbacks move the delivery (never backwards) and
// forged, tampered or foreign ones are refused; STOP and START replies suppress and lift the number; CRITICAL
// overrides a preference, never a STOP. Runs on every available engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel, type Delivery, DeliveryStatus, Priority } from '../../clients/node/index.js';
import { type SnsSmsEmulator, startSnsSmsEmulator } from '../emulators/sns-sms.js';
import { startTwilioEmulator, type TwilioEmulator, twilioSignature } from '../emulators/twilio.js';
import { engines } from '../support/engines.js';
import { PUBLIC_URL, startWithProviders } from '../support/providers.js';
import type { TestServer } from '../support/server.js';
import { until } from '../support/until.js';

const ACCOUNT_SID = `AC${'a1'.repeat(16)}`;
const AUTH_TOKEN = 'twilio-auth-token-for-the-emulator';
const FROM = '+15005550006';
const STATUS_URL = `${PUBLIC_URL}/webhooks/twilio/status`;
const INBOUND_URL = `${PUBLIC_URL}/webhooks/twilio/inbound`;
const AWS = {
  accessKeyId: 'AKIAHERALDTEST000002',
  secretAccessKey: 'sns-secret-access-key-for-the-emulator',
};
const inFlight = new Set([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]);

describe.each(engines())('SMS through Twilio and SNS on $name', (engine) => {
  let twilio: TwilioEmulator;
  let sns: SnsSmsEmulator;
  let server: TestServer;
  let numbers = 100;
  /** A fresh valid number per test, so scripts and suppressions never meet. */
  const nextNumber = () => `+1415555${String(numbers++).padStart(4, '0')}`;

  beforeAll(async () => {
    twilio = await startTwilioEmulator({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
    sns = await startSnsSmsEmulator({ ...AWS, region: 'us-east-1' });
    server = await startWithProviders(
      engine,
      (secret) => ({
        sms: [
          {
            type: 'twilio',
            timeout_ms: 5_000,
            settings: {
              account_sid: ACCOUNT_SID,
              auth_token: secret('twilio-token', `${AUTH_TOKEN}\n`),
              from: FROM,
              api_base: twilio.url,
              price: { currency: 'USD', per_segment: 0.0079, by_prefix: { '+49': 0.0832 } },
            },
          },
          {
            type: 'sns',
            timeout_ms: 5_000,
            settings: {
              region: 'us-east-1',
              endpoint: sns.url,
              access_key_id: AWS.accessKeyId,
              secret_access_key: secret('aws-secret', AWS.secretAccessKey),
              sender_id: 'ExampleShop',
              price: { currency: 'USD', per_segment: 0.00645 },
            },
          },
        ],
      }),
      { HERALD_RETRY_SMS: 'attempts=4,base_ms=50,max_delay_ms=100', HERALD_CIRCUIT_FAILURES: '3' },
    );
  });
  afterAll(async () => {
    await server?.stop();
    await twilio?.close();
    await sns?.close();
  });

  async function sms(
    phone: string,
    options: { userId?: string; type?: string; body?: string; priority?: Priority } = {},
  ): Promise<Delivery> {
    const sent = await server.admin().send({
      userId: options.userId ?? `user-${phone.replace(/\D/g, '')}`,
      type: options.type ?? 'order.shipped',
      body: options.body ?? 'Order A-1 shipped.',
      priority: options.priority ?? Priority.NORMAL,
      recipient: { phone },
      channels: [Channel.SMS],
    });
    return until('the SMS final', 8_000, async () => {
      const { notification } = await server.admin().getNotification({ notificationId: sent.notificationId });
      const d = notification!.deliveries[0]!;
      return inFlight.has(d.status) ? undefined : d;
    });
  }
  const twilioFor = (to: string) => twilio.requests.filter((r) => r.form.To === to);
  const snsFor = (to: string) => sns.received.filter((r) => r.phoneNumber === to);
  const statusOf = async (id: string) =>
    until('the delivery', 2_000, async () => {
      const { notification } = await server.admin().getNotification({ notificationId: id });
      return notification!.deliveries[0];
    });
  /** Where a message's receipts go: signed for its StatusCallback, delivered to this server (a proxy between). */
  const target = (sid: string) => {
    const signedUrl = twilio.requests.find((r) => r.sid === sid)!.form.StatusCallback!;
    return { url: signedUrl.replace(PUBLIC_URL, server.url), signedUrl };
  };
  const callback = (sid: string, status: 'delivered' | 'undelivered' | 'failed', errorCode?: number) =>
    twilio.sendStatus(sid, status, { ...target(sid), ...(errorCode ? { errorCode } : {}) });

  it('sends through Twilio: E.164 To, From, Body and a StatusCallback under HERALD_PUBLIC_URL', async () => {
    const d = await sms('+49 (0)151 1234-5601', { body: 'Order A-1 shipped. Track it: https://t.example/1' });
    expect([d.status, d.provider, d.destination, d.smsSegments]).toEqual([
      DeliveryStatus.SENT,
      'twilio',
      '+49********601',
      1,
    ]);
    const [request] = twilioFor('+4915112345601');
    expect(request).toMatchObject({
      status: 201,
      authUser: ACCOUNT_SID,
      form: {
        To: '+4915112345601',
        From: FROM,
        Body: 'Order A-1 shipped. Track it: https://t.example/1',
        StatusCallback: `${STATUS_URL}?delivery=${d.id}`,
      },
    });
    expect(d.providerMessageId).toBe(request!.sid);
    expect(d.attempts.map((a) => [a.provider, a.outcome, a.providerMessageId])).toEqual([
      ['twilio', 'sent', request!.sid],
    ]);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/herald_sms_segments_total\{provider="twilio",type="order.shipped"\} [1-9]/);
    expect(metrics).toMatch(
      /herald_sms_cost_total\{provider="twilio",type="order.shipped",currency="USD"\} 0\.08/,
    );
  });

  it("shortens a text to its type's segment budget at a character boundary, and counts the segments", async () => {
    await server.adminService().putRoutingRule({
      rule: { type: 'digest.sms', steps: [{ channels: [Channel.SMS] }] },
    });
    await server.adminService().putRoutingRule({
      rule: { type: 'alert.sms', steps: [{ channels: [Channel.SMS] }], critical: true, smsMaxSegments: 3 },
    });
    const long = `🎉 Weekly digest: ${'news and more '.repeat(30)}end`;
    const one = await sms(nextNumber(), { type: 'digest.sms', body: long });
    const text = twilioFor(twilio.requests.at(-1)!.form.To!)[0]!.form.Body!;
    expect(one.smsSegments).toBe(1);
    expect(text).toMatch(/^🎉 Weekly digest: news and more .*…$/);
    expect(text.length).toBeLessThanOrEqual(70);
    const three = await sms(nextNumber(), { type: 'alert.sms', body: long });
    expect(three.smsSegments).toBe(3);
    expect(twilio.requests.at(-1)!.form.Body).toMatch(/…$/);
  });

  it('fails over to SNS on a Twilio 5xx, with the sender ID and transactional type', async () => {
    const to = nextNumber();
    twilio.script(to, [{ kind: 'error', status: 500, code: 20500, message: 'Internal Server Error' }]);
    const d = await sms(to);
    expect([d.status, d.provider]).toEqual([DeliveryStatus.SENT, 'sns']);
    expect(d.attempts.map((a) => [a.provider, a.outcome, a.statusCode])).toEqual([
      ['twilio', 'retry', 500],
      ['sns', 'sent', 200],
    ]);
    const [published] = snsFor(to);
    expect(published).toMatchObject({
      action: 'Publish',
      signatureValid: true,
      message: 'Order A-1 shipped.',
      attributes: {
        'AWS.SNS.SMS.SMSType': { dataType: 'String', value: 'Transactional' },
        'AWS.SNS.SMS.SenderID': { dataType: 'String', value: 'ExampleShop' },
      },
    });
    expect(d.providerMessageId).toBe(published!.messageId);
  });

  it("moves a region Twilio does not reach to SNS, without counting against Twilio's circuit", async () => {
    // As many refusals as it takes to open Twilio's circuit (HERALD_CIRCUIT_FAILURES), were they failures.
    for (let i = 0; i < 3; i++) {
      const to = nextNumber();
      twilio.script(to, [
        {
          kind: 'error',
          status: 400,
          code: 21408,
          message:
            "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
        },
      ]);
      const d = await sms(to);
      expect([d.status, d.provider, d.attemptCount]).toEqual([DeliveryStatus.SENT, 'sns', 2]);
      expect(d.attempts.map((a) => [a.provider, a.outcome])).toEqual([
        ['twilio', 'retry'],
        ['sns', 'sent'],
      ]);
    }
    const to = nextNumber();
    expect((await sms(to)).provider).toBe('twilio');
  });

  it('suppresses a number Twilio says opted out (21610) and skips it next time, CRITICAL included', async () => {
    const to = nextNumber();
    twilio.script(to, [
      { kind: 'error', status: 400, code: 21610, message: 'Attempt to send to unsubscribed recipient' },
    ]);
    const d = await sms(to);
    expect([d.status, d.reason]).toEqual([
      DeliveryStatus.FAILED,
      'invalid_destination: opted_out: Twilio 21610: Attempt to send to unsubscribed recipient',
    ]);
    expect(snsFor(to)).toEqual([]);
    const { suppressions } = await server
      .adminService()
      .listSuppressions({ channel: Channel.SMS, address: to });
    expect(suppressions.map((s) => [s.address, s.deliveryId])).toEqual([[to, d.id]]);
    const again = await sms(to, { priority: Priority.CRITICAL });
    expect([again.status, again.reason.split(':')[0]]).toEqual([DeliveryStatus.SKIPPED, 'suppressed']);
    expect(twilioFor(to)).toHaveLength(1);
  });

  it('fails an invalid number for good (21211) without trying SNS', async () => {
    const to = nextNumber();
    twilio.script(to, [
      {
        kind: 'error',
        status: 400,
        code: 21211,
        message: `The 'To' number ${to} is not a valid phone number.`,
      },
    ]);
    const d = await sms(to);
    expect([d.status, d.reason.split(':')[0]]).toEqual([DeliveryStatus.FAILED, 'invalid_destination']);
    expect(snsFor(to)).toEqual([]);
    // Twilio's message quotes the number; what Herald keeps of it is masked like every destination.
    const masked = `${to.slice(0, 3)}******${to.slice(-3)}`;
    expect(d.reason).toContain(`The 'To' number ${masked} is not a valid phone number.`);
    expect(d.attempts[0]!.error).not.toContain(to);
  });

  it('applies signed status callbacks, first final report wins; forged, tampered and foreign ones change nothing', async () => {
    const delivered = await sms(nextNumber());
    const sid = delivered.providerMessageId;
    const { notification } = await server
      .admin()
      .getNotification({ notificationId: (await firstNotificationOf(sid))! });
    const notificationId = notification!.id;
    expect((await callback(sid, 'delivered')).status).toBe(204);
    expect((await statusOf(notificationId))!.status).toBe(DeliveryStatus.DELIVERED);
    // A late report of another final state, and a duplicate, change nothing.
    expect((await callback(sid, 'undelivered', 30003)).status).toBe(204);
    expect((await callback(sid, 'delivered')).status).toBe(204);
    expect((await statusOf(notificationId))!.status).toBe(DeliveryStatus.DELIVERED);

    const failing = await sms(nextNumber());
    const failingId = (await firstNotificationOf(failing.providerMessageId))!;
    const base = target(failing.providerMessageId);
    const refused = [
      await twilio.sendStatus(failing.providerMessageId, 'undelivered', { ...base, signature: null }),
      await twilio.sendStatus(failing.providerMessageId, 'undelivered', { ...base, signature: 'AAAA' }),
      await twilio.sendStatus(failing.providerMessageId, 'undelivered', {
        ...base,
        tamper: (fields) => ({ ...fields, MessageStatus: 'delivered', SmsStatus: 'delivered' }),
      }),
      // Signed for another URL than Herald's public one, or for another delivery's callback.
      await twilio.sendStatus(failing.providerMessageId, 'undelivered', { url: base.url }),
      await twilio.sendStatus(failing.providerMessageId, 'undelivered', {
        url: base.url,
        signedUrl: `${STATUS_URL}?delivery=${delivered.id}`,
      }),
      await twilio.sendStatus(failing.providerMessageId, 'undelivered', {
        ...base,
        tamper: (fields) => ({ ...fields, AccountSid: `AC${'b2'.repeat(16)}` }),
      }),
    ];
    expect(refused.map((r) => r.status)).toEqual([403, 403, 403, 403, 403, 403]);
    expect((await statusOf(failingId))!.status).toBe(DeliveryStatus.SENT);
    expect((await callback(failing.providerMessageId, 'undelivered', 30003)).status).toBe(204);
    const failed = (await statusOf(failingId))!;
    expect([failed.status, failed.reason]).toEqual([
      DeliveryStatus.FAILED,
      'undelivered: Twilio error 30003',
    ]);
  });

  it('answers a signed receipt for a message it does not know with 204, changing nothing', async () => {
    const fields = {
      MessageSid: `SM${'0'.repeat(32)}`,
      AccountSid: ACCOUNT_SID,
      MessageStatus: 'delivered',
      To: nextNumber(),
      From: FROM,
    };
    const res = await fetch(`${server.url}/webhooks/twilio/status`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-twilio-signature': twilioSignature(AUTH_TOKEN, STATUS_URL, fields),
      },
      body: new URLSearchParams(fields).toString(),
    });
    expect(res.status).toBe(204);
  });

  it('suppresses the number of a receipt that says the recipient had opted out (21610)', async () => {
    const to = nextNumber();
    const d = await sms(to);
    expect((await callback(d.providerMessageId, 'failed', 21610)).status).toBe(204);
    const { suppressions } = await server
      .adminService()
      .listSuppressions({ channel: Channel.SMS, address: to });
    expect(suppressions.map((s) => [s.reason, s.deliveryId])).toEqual([['opted_out: Twilio 21610', d.id]]);
    expect((await sms(to)).status).toBe(DeliveryStatus.SKIPPED);
  });

  it('suppresses a number that replies STOP, and lifts it on START', async () => {
    const to = nextNumber();
    const inbound = (body: string) =>
      twilio.sendInbound(
        `${server.url}/webhooks/twilio/inbound`,
        { from: to, to: FROM, body },
        { signedUrl: INBOUND_URL },
      );
    const stop = await inbound(' stop ');
    expect([stop.status, stop.contentType, stop.body]).toEqual([
      200,
      'text/xml; charset=utf-8',
      '<?xml version="1.0" encoding="UTF-8"?><Response></Response>',
    ]);
    const listed = async () =>
      (await server.adminService().listSuppressions({ channel: Channel.SMS, address: to })).suppressions.map(
        (s) => s.reason,
      );
    expect(await listed()).toEqual(['opted_out: replied STOP']);
    const critical = await sms(to, { priority: Priority.CRITICAL });
    expect(critical.status).toBe(DeliveryStatus.SKIPPED);
    expect(twilioFor(to)).toEqual([]);
    expect((await inbound('Thanks!')).status).toBe(200);
    expect(await listed()).toEqual(['opted_out: replied STOP']);
    const forged = await twilio.sendInbound(
      `${server.url}/webhooks/twilio/inbound`,
      { from: to, to: FROM, body: 'START' },
      { signedUrl: INBOUND_URL, signature: 'forged' },
    );
    expect(forged.status).toBe(403);
    expect(await listed()).toEqual(['opted_out: replied STOP']);
    expect((await inbound('START')).status).toBe(200);
    expect(await listed()).toEqual([]);
    expect((await sms(to)).status).toBe(DeliveryStatus.SENT);
  });

  it("lifts on START only an opt-out, never an operator's suppression; an operator cannot write one", async () => {
    const to = nextNumber();
    const admin = server.adminService();
    await admin.addSuppression({ channel: Channel.SMS, address: to, reason: 'fraud report #12' });
    const start = await twilio.sendInbound(
      `${server.url}/webhooks/twilio/inbound`,
      { from: to, to: FROM, body: 'START' },
      { signedUrl: INBOUND_URL },
    );
    expect(start.status).toBe(200);
    const { suppressions } = await admin.listSuppressions({ channel: Channel.SMS, address: to });
    expect(suppressions.map((s) => s.reason)).toEqual(['fraud report #12']);
    const refused = await admin
      .addSuppression({ channel: Channel.SMS, address: nextNumber(), reason: 'opted_out: by hand' })
      .catch((error: Error) => error.message);
    expect(refused).toMatch(/reason: must not start with "opted_out"/);
  });

  it('sends a CRITICAL SMS to a user who turned SMS off, and not a normal one', async () => {
    const to = nextNumber();
    await server
      .admin()
      .updatePreferences({ userId: 'quiet-user', channels: [{ channel: Channel.SMS, enabled: false }] });
    const normal = await sms(to, { userId: 'quiet-user' });
    expect([normal.status, normal.reason.split(':')[0]]).toEqual([DeliveryStatus.SKIPPED, 'preference']);
    const critical = await sms(to, { userId: 'quiet-user', priority: Priority.CRITICAL });
    expect([critical.status, critical.provider]).toEqual([DeliveryStatus.SENT, 'twilio']);
  });

  it('sends straight to SNS while the Twilio circuit is open', async () => {
    const failing = Array.from({ length: 3 }, nextNumber);
    for (const to of failing) {
      twilio.script(to, [{ kind: 'error', status: 503, code: 20503, message: 'Service Unavailable' }]);
      expect((await sms(to)).provider).toBe('sns');
    }
    const to = nextNumber();
    const d = await sms(to);
    expect([d.status, d.provider]).toEqual([DeliveryStatus.SENT, 'sns']);
    expect(d.attempts.map((a) => a.provider)).toEqual(['sns']);
    expect(twilioFor(to)).toEqual([]);
  });

  /** The notification whose delivery has this provider message id (the SMS helper answers deliveries). */
  async function firstNotificationOf(messageId: string): Promise<string | undefined> {
    const [row] = await server.db.database.sql.query<{ notification_id: string }>(
      'select notification_id::text as notification_id from deliveries where provider_message_id = $1',
      [messageId],
    );
    return row?.notification_id;
  }
});

describe.each(engines())('SMS through Twilio alone on $name', (engine) => {
  let twilio: TwilioEmulator;
  let server: TestServer;

  beforeAll(async () => {
    twilio = await startTwilioEmulator({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
    server = await startWithProviders(engine, (secret) => ({
      sms: [
        {
          type: 'twilio',
          settings: {
            account_sid: ACCOUNT_SID,
            auth_token: secret('twilio-token', AUTH_TOKEN),
            messaging_service_sid: `MG${'c3'.repeat(16)}`,
            api_base: twilio.url,
          },
        },
      ],
    }));
  });
  afterAll(async () => {
    await server?.stop();
    await twilio?.close();
  });

  it('sends through a Messaging Service, and fails at once a carrier no provider reaches', async () => {
    const sent = await server.admin().send({
      userId: 'alone',
      type: 'order.shipped',
      body: 'Shipped.',
      recipient: { phone: '+14155559001' },
      channels: [Channel.SMS],
    });
    twilio.script('+14155559002', [
      {
        kind: 'error',
        status: 400,
        code: 21612,
        message: "The 'To' phone number is not currently reachable via SMS",
      },
    ]);
    const unreachable = await server.admin().send({
      userId: 'alone',
      type: 'order.shipped',
      body: 'Shipped.',
      recipient: { phone: '+14155559002' },
      channels: [Channel.SMS],
    });
    const final = (id: string) =>
      until('the SMS final', 8_000, async () => {
        const { notification } = await server.admin().getNotification({ notificationId: id });
        const d = notification!.deliveries[0]!;
        return inFlight.has(d.status) ? undefined : d;
      });
    const sentDelivery = await final(sent.notificationId);
    expect(sentDelivery.status).toBe(DeliveryStatus.SENT);
    expect(twilio.requests.find((r) => r.form.To === '+14155559001')!.form).toMatchObject({
      MessagingServiceSid: `MG${'c3'.repeat(16)}`,
      StatusCallback: `${STATUS_URL}?delivery=${sentDelivery.id}`,
    });
    const d = await final(unreachable.notificationId);
    expect([d.status, d.attempts.map((a) => a.outcome)]).toEqual([DeliveryStatus.FAILED, ['retry']]);
    expect(d.reason).toMatch(/^failed: no provider reaches the destination; last: Twilio 21612: /);
  });
});
