// The SES emulator itself, driven by the real @aws-sdk/client-ses: SES adapter tests trust its signature check,
// its scripted errors and what it records.
import { createHash } from 'node:crypto';
import {
  SESClient,
  SESServiceException,
  SendEmailCommand,
  SendRawEmailCommand,
  type SendRawEmailCommandInput,
} from '@aws-sdk/client-ses';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type SesEmulator, type SesReply, startSesEmulator } from '../emulators/ses.js';

const REGION = 'eu-west-1';
const CREDENTIALS = { accessKeyId: 'AKIAHERALDTEST', secretAccessKey: 'herald-test-secret' };

let ses: SesEmulator;
let client: SESClient;
beforeEach(async () => {
  ses = await startSesEmulator({ ...CREDENTIALS, region: REGION });
  client = sesClient();
});
afterEach(async () => {
  client.destroy();
  await ses.close();
});

/** A client for the emulator, with one attempt per send (as the adapter configures) unless told otherwise. */
function sesClient(
  credentials: { accessKeyId?: string; secretAccessKey?: string } = {},
  attempts: 'one' | 'sdk-default' = 'one',
) {
  return new SESClient({
    region: REGION,
    endpoint: ses.url,
    credentials: { ...CREDENTIALS, ...credentials },
    ...(attempts === 'one' ? { maxAttempts: 1 } : {}),
  });
}

async function mime(to = 'reader@example.test'): Promise<Buffer> {
  return new MailComposer({
    from: 'Herald <noreply@herald.test>',
    to,
    replyTo: 'help@herald.test',
    subject: 'Your weekly digest',
    html: '<p>Hello <b>reader</b></p>',
    text: 'Hello reader',
    messageId: '<delivery-1@herald>',
    headers: {
      'List-Unsubscribe': '<https://x/u>',
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    },
  })
    .compile()
    .build();
}

async function rawSend(
  to = 'reader@example.test',
  extra: Partial<SendRawEmailCommandInput> = {},
  c = client,
) {
  return c.send(
    new SendRawEmailCommand({
      RawMessage: { Data: await mime(to) },
      Destinations: [to],
      ConfigurationSetName: 'herald-events',
      Tags: [
        { Name: 'type', Value: 'digest' },
        { Name: 'notification_id', Value: 'ntf_123' },
      ],
      ...extra,
    }),
  );
}

/** The rejection of a send, as the SDK throws it. */
async function failure(promise: Promise<unknown>): Promise<SESServiceException> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SESServiceException);
  return error as SESServiceException;
}

describe('SES emulator', () => {
  it('accepts a signed SendRawEmail, returns a MessageId and records the send', async () => {
    expect(ses.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const before = Date.now();
    const result = await rawSend('Reader@Example.test', { Source: 'bounces@herald.test' });
    expect(result.MessageId).toMatch(/^010f[0-9a-f]{12}-[0-9a-f-]{36}-000000$/);
    expect(result.$metadata.httpStatusCode).toBe(200);

    expect(ses.received).toHaveLength(1);
    const [sent] = ses.received;
    expect(sent).toMatchObject({
      action: 'SendRawEmail',
      source: 'bounces@herald.test',
      destinations: ['Reader@Example.test'],
      configurationSet: 'herald-events',
      tags: { type: 'digest', notification_id: 'ntf_123' },
      accessKeyId: CREDENTIALS.accessKeyId,
      signatureValid: true,
      status: 200,
      code: null,
      messageId: result.MessageId,
    });
    expect(sent?.receivedAt).toBeGreaterThanOrEqual(before);
    expect(sent?.raw).toContain('Subject: Your weekly digest');
    expect(sent?.parsed).toMatchObject({
      subject: 'Your weekly digest',
      from: { name: 'Herald', address: 'noreply@herald.test' },
      to: [{ name: '', address: 'Reader@example.test' }], // nodemailer lower-cases the domain
      replyTo: { name: '', address: 'help@herald.test' },
      html: '<p>Hello <b>reader</b></p>',
      text: 'Hello reader',
      messageId: '<delivery-1@herald>',
    });
    expect(sent?.parsed?.headers['list-unsubscribe']).toBe('<https://x/u>');
    expect(sent?.parsed?.headers['list-unsubscribe-post']).toBe('List-Unsubscribe=One-Click');
  });

  it('accepts SendEmail and records the message composed from its fields', async () => {
    const result = await client.send(
      new SendEmailCommand({
        Source: 'Herald <noreply@herald.test>',
        Destination: { ToAddresses: ['a@example.test'], CcAddresses: ['b@example.test'] },
        Message: {
          Subject: { Data: 'Hi' },
          Body: { Html: { Data: '<p>Hi</p>' }, Text: { Data: 'Hi' } },
        },
        ConfigurationSetName: 'herald-events',
        Tags: [{ Name: 'type', Value: 'welcome' }],
      }),
    );
    expect(result.MessageId).toMatch(/-000000$/);
    expect(ses.received[0]).toMatchObject({
      action: 'SendEmail',
      source: 'Herald <noreply@herald.test>',
      destinations: ['a@example.test', 'b@example.test'],
      configurationSet: 'herald-events',
      tags: { type: 'welcome' },
      signatureValid: true,
      messageId: result.MessageId,
      raw: expect.stringContaining('Subject: Hi'),
      parsed: {
        subject: 'Hi',
        from: { name: 'Herald', address: 'noreply@herald.test' },
        to: [{ name: '', address: 'a@example.test' }],
        html: '<p>Hi</p>',
        text: 'Hi',
      },
    });
  });

  it('answers scripted errors in order per recipient, then succeeds; the SDK throws them by code', async () => {
    ses.script('Reader@example.test', [
      { kind: 'error', status: 400, code: 'Throttling', message: 'Maximum sending rate exceeded.' },
      { kind: 'error', status: 400, code: 'Throttling', message: 'Daily message quota exceeded.' },
      { kind: 'error', status: 400, code: 'MessageRejected', message: 'Email address is not verified.' },
      { kind: 'error', status: 500, code: 'InternalFailure', message: 'Internal failure.', type: 'Receiver' },
    ]);
    // Another recipient is not affected by that script.
    await expect(rawSend('other@example.test')).resolves.toHaveProperty('MessageId');

    const rate = await failure(rawSend());
    expect(rate).toMatchObject({
      name: 'Throttling',
      message: 'Maximum sending rate exceeded.',
      $fault: 'client',
      $metadata: { httpStatusCode: 400, attempts: 1 },
      Type: 'Sender',
      Code: 'Throttling',
    });
    expect(rate.constructor).toBe(SESServiceException); // not modelled by SES v1: the generic class
    const daily = await failure(rawSend());
    expect([daily.name, daily.message]).toEqual(['Throttling', 'Daily message quota exceeded.']);

    const rejected = await failure(rawSend());
    expect(rejected).toMatchObject({
      name: 'MessageRejected',
      message: 'Email address is not verified.',
      $fault: 'client',
      $metadata: { httpStatusCode: 400 },
    });
    expect(rejected.constructor.name).toBe('MessageRejected'); // the modelled exception class

    const internal = await failure(rawSend());
    expect(internal).toMatchObject({
      name: 'InternalFailure',
      message: 'Internal failure.',
      $fault: 'server',
      $metadata: { httpStatusCode: 500 },
      Type: 'Receiver',
    });

    await expect(rawSend()).resolves.toHaveProperty('MessageId');
    expect(ses.received.map((r) => [r.status, r.code])).toEqual([
      [200, null],
      [400, 'Throttling'],
      [400, 'Throttling'],
      [400, 'MessageRejected'],
      [500, 'InternalFailure'],
      [200, null],
    ]);
    expect(ses.received.filter((r) => r.code !== null).every((r) => r.messageId === null)).toBe(true);
  });

  it('an empty 200 resolves without a MessageId', async () => {
    ses.script('reader@example.test', [{ kind: 'empty' }]);
    const result = await rawSend();
    expect(result.MessageId).toBeUndefined();
    expect(result.$metadata.httpStatusCode).toBe(200);
    expect(ses.received[0]).toMatchObject({ status: 200, code: null, messageId: null });
  });

  it('keys a raw send without Destinations on the MIME To address', async () => {
    ses.script('reader@example.test', [
      { kind: 'error', status: 400, code: 'MessageRejected', message: 'Email address is not verified.' },
    ]);
    const error = await failure(rawSend('reader@example.test', { Destinations: undefined }));
    expect(error.name).toBe('MessageRejected');
    expect(ses.received[0]?.destinations).toEqual([]);
  });

  it('delays a scripted reply, recording the request on arrival', async () => {
    ses.setDefault({ kind: 'ok', delayMs: 600 });
    const started = Date.now();
    const sending = rawSend();
    await ses.waitFor((received) => received.length === 1, 2_000);
    expect(Date.now() - started).toBeLessThan(600);
    await sending;
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    await expect(ses.waitFor((received) => received.length === 2, 50)).rejects.toThrow(
      /not met within 50 ms/,
    );
  });

  it('verifies the SigV4 signature: a wrong secret, an unknown key and a tampered body are refused', async () => {
    ses.script('reader@example.test', [{ kind: 'empty' }]);
    const wrongSecret = sesClient({ secretAccessKey: 'not-the-secret' });
    const bad = await failure(rawSend('reader@example.test', {}, wrongSecret));
    expect(bad).toMatchObject({
      name: 'SignatureDoesNotMatch',
      message: expect.stringMatching(/^The request signature we calculated does not match/),
      $fault: 'client',
      $metadata: { httpStatusCode: 403 },
    });
    const unknownKey = sesClient({ accessKeyId: 'AKIAUNKNOWN' });
    const unknown = await failure(rawSend('reader@example.test', {}, unknownKey));
    expect(unknown).toMatchObject({ name: 'InvalidClientTokenId', $metadata: { httpStatusCode: 403 } });

    // After signing, swap a tag value for another of the same length: with the payload hash header left as
    // signed, then with it recomputed, so the signature itself has to catch it.
    for (const rehash of [false, true]) {
      const tampering = sesClient();
      tampering.middlewareStack.add(
        (next) => async (args) => {
          const request = args.request as { body: string; headers: Record<string, string> };
          request.body = request.body.replace('ntf_123', 'ntf_999');
          if (rehash) {
            request.headers['x-amz-content-sha256'] = createHash('sha256').update(request.body).digest('hex');
          }
          return next(args);
        },
        { step: 'deserialize' },
      );
      const refused = await failure(rawSend('reader@example.test', {}, tampering));
      expect(refused.name).toBe('SignatureDoesNotMatch');
    }

    expect(ses.received.map((r) => [r.accessKeyId, r.signatureValid, r.status, r.code])).toEqual([
      [CREDENTIALS.accessKeyId, false, 403, 'SignatureDoesNotMatch'],
      ['AKIAUNKNOWN', false, 403, 'InvalidClientTokenId'],
      [CREDENTIALS.accessKeyId, false, 403, 'SignatureDoesNotMatch'],
      [CREDENTIALS.accessKeyId, false, 403, 'SignatureDoesNotMatch'],
    ]);
    expect(ses.received[3]?.tags.notification_id).toBe('ntf_999');
    // Refused requests do not consume the recipient's script.
    expect((await rawSend()).MessageId).toBeUndefined();
  });

  it('with the default maxAttempts (3) the SDK retries Throttling and 500s itself, not MessageRejected or a bad signature', async () => {
    const retrying = sesClient({}, 'sdk-default');
    const throttled: SesReply = {
      kind: 'error',
      status: 400,
      code: 'Throttling',
      message: 'Daily message quota exceeded.',
    };
    // Whatever the message (the daily quota too), the code Throttling is retried, with 500 ms-based backoff.
    ses.script('reader@example.test', [throttled, throttled, throttled]);
    const error = await failure(rawSend('reader@example.test', {}, retrying));
    expect(error.name).toBe('Throttling');
    expect(error.$metadata.attempts).toBe(3);
    expect(ses.received).toHaveLength(3);

    ses.script('reader@example.test', [
      { kind: 'error', status: 500, code: 'InternalFailure', message: 'Internal failure.', type: 'Receiver' },
      { kind: 'error', status: 500, code: 'InternalFailure', message: 'Internal failure.', type: 'Receiver' },
    ]);
    const recovered = await rawSend('reader@example.test', {}, retrying);
    expect(recovered.MessageId).toBeDefined();
    expect(recovered.$metadata.attempts).toBe(3);
    expect(ses.received).toHaveLength(6);

    ses.script('reader@example.test', [
      { kind: 'error', status: 400, code: 'MessageRejected', message: 'Email address is not verified.' },
    ]);
    const rejected = await failure(rawSend('reader@example.test', {}, retrying));
    expect(rejected.$metadata.attempts).toBe(1);
    expect(ses.received).toHaveLength(7);

    const wrongSecret = sesClient({ secretAccessKey: 'not-the-secret' }, 'sdk-default');
    const refused = await failure(rawSend('reader@example.test', {}, wrongSecret));
    expect([refused.name, refused.$metadata.attempts]).toEqual(['SignatureDoesNotMatch', 1]);
    expect(ses.received).toHaveLength(8);
    retrying.destroy();
    wrongSecret.destroy();
  });
});
