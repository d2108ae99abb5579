// The SNS SMS emulator itself, driven by the real @aws-sdk/client-sns: SMS adapter tests trust its signature
// check, its validation, its scripted errors (and the exception each becomes in the SDK), its opt-out list and
// what it records.
import { createHash } from 'node:crypto';
import {
  CheckIfPhoneNumberIsOptedOutCommand,
  PublishCommand,
  type PublishCommandInput,
  SNSClient,
  SNSServiceException,
} from '@aws-sdk/client-sns';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type SnsSmsEmulator, type SnsSmsReply, startSnsSmsEmulator } from '../emulators/sns-sms.js';

const REGION = 'eu-west-1';
const CREDENTIALS = { accessKeyId: 'AKIAHERALDTEST', secretAccessKey: 'herald-test-secret' };
const PHONE = '+447700900123';

let sns: SnsSmsEmulator;
let client: SNSClient;
beforeEach(async () => {
  sns = await startSnsSmsEmulator({ ...CREDENTIALS, region: REGION });
  client = snsClient();
});
afterEach(async () => {
  client.destroy();
  await sns.close();
});

/** A client for the emulator, with one attempt per send (as the adapter configures) unless told otherwise. */
function snsClient(
  credentials: { accessKeyId?: string; secretAccessKey?: string } = {},
  attempts: 'one' | 'sdk-default' = 'one',
) {
  return new SNSClient({
    region: REGION,
    endpoint: sns.url,
    credentials: { ...CREDENTIALS, ...credentials },
    ...(attempts === 'one' ? { maxAttempts: 1 } : {}),
  });
}

function text(phoneNumber = PHONE, extra: Partial<PublishCommandInput> = {}, c = client) {
  return c.send(
    new PublishCommand({
      PhoneNumber: phoneNumber,
      Message: 'Your Herald code is 123456',
      MessageAttributes: {
        'AWS.SNS.SMS.SMSType': { DataType: 'String', StringValue: 'Transactional' },
        'AWS.SNS.SMS.SenderID': { DataType: 'String', StringValue: 'Herald' },
        'AWS.MM.SMS.OriginationNumber': { DataType: 'String', StringValue: '+447700900001' },
      },
      ...extra,
    }),
  );
}

/** The rejection of a call, as the SDK throws it. */
async function failure(promise: Promise<unknown>): Promise<SNSServiceException> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SNSServiceException);
  if (!(error instanceof SNSServiceException)) throw new Error('not an SNS exception');
  return error;
}

type ScriptedError = Extract<SnsSmsReply, { kind: 'error' }>;
const snsError = (status: number, code: string, type: 'Sender' | 'Receiver' = 'Sender'): ScriptedError => ({
  kind: 'error',
  status,
  code,
  message: `${code} (scripted)`,
  type,
});

describe('SNS SMS emulator', () => {
  it('accepts a signed Publish to a phone number, returns a MessageId and records the fields and attributes', async () => {
    expect(sns.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const before = Date.now();
    const result = await text();
    expect(result.MessageId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(result.$metadata.httpStatusCode).toBe(200);

    expect(sns.received).toHaveLength(1);
    const [sent] = sns.received;
    expect(sent).toMatchObject({
      action: 'Publish',
      phoneNumber: PHONE,
      message: 'Your Herald code is 123456',
      attributes: {
        'AWS.SNS.SMS.SMSType': { dataType: 'String', value: 'Transactional' },
        'AWS.SNS.SMS.SenderID': { dataType: 'String', value: 'Herald' },
        'AWS.MM.SMS.OriginationNumber': { dataType: 'String', value: '+447700900001' },
      },
      accessKeyId: CREDENTIALS.accessKeyId,
      signatureValid: true,
      optedOut: false,
      status: 200,
      code: null,
      messageId: result.MessageId,
    });
    // The wire form, as the SDK serialises it.
    expect(sent?.fields).toMatchObject({
      Action: 'Publish',
      Version: '2010-03-31',
      PhoneNumber: PHONE,
      Message: 'Your Herald code is 123456',
      'MessageAttributes.entry.1.Name': 'AWS.SNS.SMS.SMSType',
      'MessageAttributes.entry.1.Value.DataType': 'String',
      'MessageAttributes.entry.1.Value.StringValue': 'Transactional',
    });
    expect(sent?.answer).toBe(
      '<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult>' +
        `<MessageId>${result.MessageId}</MessageId></PublishResult><ResponseMetadata><RequestId>` +
        `${result.$metadata.requestId}</RequestId></ResponseMetadata></PublishResponse>`,
    );
    expect(sent?.receivedAt).toBeGreaterThanOrEqual(before);
  });

  it('refuses an empty Message, a missing PhoneNumber and a number not in E.164 with InvalidParameter, as SNS does', async () => {
    sns.script(PHONE, [{ kind: 'empty' }]);
    const empty = await failure(text(PHONE, { Message: '' }));
    expect(empty).toMatchObject({
      name: 'InvalidParameterException',
      message: 'Invalid parameter: Empty message',
      Code: 'InvalidParameter',
      $fault: 'client',
      $metadata: { httpStatusCode: 400 },
    });
    const nowhere = await failure(text(PHONE, { PhoneNumber: undefined }));
    expect(nowhere.message).toBe(
      'Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter',
    );
    for (const phoneNumber of ['+4477009001234567', '07700900123', '+44 7700 900123', '+0447700900123']) {
      const invalid = await failure(text(phoneNumber));
      expect([invalid.name, invalid.message, invalid.$metadata.httpStatusCode]).toEqual([
        'InvalidParameterException',
        `Invalid parameter: PhoneNumber Reason: ${phoneNumber} is not valid to publish to`,
        400,
      ]);
    }
    expect(sns.received.map((r) => [r.status, r.code, r.messageId])).toEqual(
      Array(6).fill([400, 'InvalidParameter', null]),
    );
    // Requests SNS refuses do not consume the number's script.
    expect((await text()).MessageId).toBeUndefined();
  });

  it('answers scripted errors in order per number, then succeeds; each arrives as the SDK exception named here', async () => {
    // [code and status scripted, the exception's name and class, its $fault]. Codes SNS models (the Query
    // code, e.g. `Throttled`, or the shape name, e.g. `ThrottledException`) become their class; others stay
    // the generic SNSServiceException, named by the code as sent.
    const cases: [ScriptedError, string, string, 'client' | 'server'][] = [
      [snsError(400, 'Throttling'), 'Throttling', 'SNSServiceException', 'client'],
      [snsError(429, 'Throttled'), 'ThrottledException', 'ThrottledException', 'client'],
      [snsError(400, 'ThrottledException'), 'ThrottledException', 'ThrottledException', 'client'],
      [snsError(400, 'OptedOut'), 'OptedOutException', 'OptedOutException', 'client'],
      [
        snsError(500, 'InternalError', 'Receiver'),
        'InternalErrorException',
        'InternalErrorException',
        'server',
      ],
      [snsError(500, 'InternalFailure', 'Receiver'), 'InternalFailure', 'SNSServiceException', 'server'],
      [
        snsError(403, 'AuthorizationError'),
        'AuthorizationErrorException',
        'AuthorizationErrorException',
        'client',
      ],
      [snsError(400, 'KMSThrottling'), 'KMSThrottlingException', 'KMSThrottlingException', 'client'],
      [snsError(400, 'InvalidParameter'), 'InvalidParameterException', 'InvalidParameterException', 'client'],
    ];
    sns.script(
      PHONE,
      cases.map(([reply]) => reply),
    );
    // Another number is not affected by that script.
    await expect(text('+447700900456')).resolves.toHaveProperty('MessageId');

    for (const [reply, name, className, fault] of cases) {
      const thrown = await failure(text());
      expect(thrown).toMatchObject({
        name,
        message: `${reply.code} (scripted)`,
        $fault: fault,
        $metadata: { httpStatusCode: reply.status, attempts: 1 },
        Code: reply.code,
        Type: reply.type,
      });
      expect(thrown.constructor.name).toBe(className);
    }

    await expect(text()).resolves.toHaveProperty('MessageId');
    expect(sns.received.map((r) => r.code)).toEqual([null, ...cases.map(([reply]) => reply.code), null]);
    expect(sns.received.filter((r) => r.code !== null).every((r) => r.messageId === null)).toBe(true);
    expect(sns.received[1]?.answer).toMatch(
      /^<ErrorResponse xmlns="http:\/\/sns\.amazonaws\.com\/doc\/2010-03-31\/"><Error><Type>Sender<\/Type><Code>Throttling<\/Code>/,
    );
  });

  it('an empty 200 resolves without a MessageId', async () => {
    sns.script(PHONE, [{ kind: 'empty' }]);
    const result = await text();
    expect(result.MessageId).toBeUndefined();
    expect(result.$metadata.httpStatusCode).toBe(200);
    expect(sns.received[0]).toMatchObject({ status: 200, code: null, messageId: null, answer: '' });
  });

  it('a dropped connection reaches the caller as a network error (TimeoutError, ECONNRESET), not an SNS exception', async () => {
    sns.script(PHONE, [{ kind: 'drop' }]);
    const thrown = await text().then(
      () => null,
      (e: unknown) => e,
    );
    expect(thrown).toBeInstanceOf(Error);
    expect(thrown).not.toBeInstanceOf(SNSServiceException);
    // The SDK's HTTP handler renames ECONNRESET, EPIPE and ETIMEDOUT errors TimeoutError (so they retry).
    expect(thrown).toMatchObject({ name: 'TimeoutError', code: 'ECONNRESET', message: 'socket hang up' });
    expect(sns.received[0]).toMatchObject({ status: null, code: null, messageId: null, answer: null });
  });

  it('delays a scripted reply, recording the request on arrival', async () => {
    sns.setDefault({ kind: 'ok', delayMs: 600 });
    const started = Date.now();
    const sending = text();
    await sns.waitFor((received) => received.length === 1, 2_000);
    expect(Date.now() - started).toBeLessThan(600);
    await sending;
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    await expect(sns.waitFor((received) => received.length === 2, 50)).rejects.toThrow(
      /not met within 50 ms/,
    );
  });

  it('keeps an opt-out list: CheckIfPhoneNumberIsOptedOut reads it, and a Publish to such a number is accepted but marked', async () => {
    const check = async (phoneNumber: string) =>
      (await client.send(new CheckIfPhoneNumberIsOptedOutCommand({ phoneNumber }))).isOptedOut;
    expect(await check(PHONE)).toBe(false);
    sns.optOut(PHONE);
    expect(await check(PHONE)).toBe(true);

    // SNS's Publish has no opted-out error: it answers with a MessageId and never texts the number.
    const result = await text();
    expect(result.MessageId).toBeDefined();
    expect(sns.received[2]).toMatchObject({ action: 'Publish', optedOut: true, status: 200 });

    sns.optIn(PHONE);
    expect(await check(PHONE)).toBe(false);
    const malformed = await failure(check('07700900123'));
    expect([malformed.name, malformed.message]).toEqual([
      'InvalidParameterException',
      'Invalid parameter: PhoneNumber Reason: input incorrectly formatted',
    ]);
    expect(sns.received.map((r) => [r.action, r.phoneNumber, r.optedOut])).toEqual([
      ['CheckIfPhoneNumberIsOptedOut', PHONE, false],
      ['CheckIfPhoneNumberIsOptedOut', PHONE, true],
      ['Publish', PHONE, true],
      ['CheckIfPhoneNumberIsOptedOut', PHONE, false],
      ['CheckIfPhoneNumberIsOptedOut', '07700900123', false],
    ]);
  });

  it('verifies the SigV4 signature (signing name sns): a wrong secret, an unknown key and a tampered body are refused', async () => {
    sns.script(PHONE, [{ kind: 'empty' }]);
    const wrongSecret = snsClient({ secretAccessKey: 'not-the-secret' });
    const bad = await failure(text(PHONE, {}, wrongSecret));
    expect(bad).toMatchObject({
      name: 'SignatureDoesNotMatch',
      message: expect.stringMatching(/^The request signature we calculated does not match/),
      $fault: 'client',
      $metadata: { httpStatusCode: 403 },
    });
    const unknownKey = snsClient({ accessKeyId: 'AKIAUNKNOWN' });
    const unknown = await failure(text(PHONE, {}, unknownKey));
    expect(unknown).toMatchObject({ name: 'InvalidClientTokenId', $metadata: { httpStatusCode: 403 } });

    // After signing, change one digit of the message: with the payload hash header left as signed, then with
    // it recomputed, so the signature itself has to catch it.
    for (const rehash of [false, true]) {
      const tampering = snsClient();
      tampering.middlewareStack.add(
        (next) => async (args) => {
          const request = args.request as { body: string; headers: Record<string, string> };
          request.body = request.body.replace('123456', '999999');
          if (rehash) {
            request.headers['x-amz-content-sha256'] = createHash('sha256').update(request.body).digest('hex');
          }
          return next(args);
        },
        { step: 'deserialize' },
      );
      const refused = await failure(text(PHONE, {}, tampering));
      expect(refused.name).toBe('SignatureDoesNotMatch');
      tampering.destroy();
    }

    expect(sns.received.map((r) => [r.accessKeyId, r.signatureValid, r.status, r.code])).toEqual([
      [CREDENTIALS.accessKeyId, false, 403, 'SignatureDoesNotMatch'],
      ['AKIAUNKNOWN', false, 403, 'InvalidClientTokenId'],
      [CREDENTIALS.accessKeyId, false, 403, 'SignatureDoesNotMatch'],
      [CREDENTIALS.accessKeyId, false, 403, 'SignatureDoesNotMatch'],
    ]);
    expect(sns.received[3]?.message).toBe('Your Herald code is 999999');
    // Refused requests do not consume the number's script.
    expect((await text()).MessageId).toBeUndefined();
    wrongSecret.destroy();
    unknownKey.destroy();
  });

  it('with the default maxAttempts (3) the SDK retries Throttled, 500s and a dropped connection, not KMSThrottling or OptedOut', async () => {
    const retrying = snsClient({}, 'sdk-default');
    const recoverable: SnsSmsReply[][] = [
      [snsError(429, 'Throttled'), snsError(400, 'Throttling')],
      [snsError(500, 'InternalError', 'Receiver'), { kind: 'drop' }],
    ];
    for (const failures of recoverable) {
      sns.script(PHONE, failures);
      const recovered = await text(PHONE, {}, retrying);
      expect([recovered.$metadata.attempts, typeof recovered.MessageId]).toEqual([3, 'string']);
    }
    expect(sns.received).toHaveLength(6);

    // KMSThrottling is a throttle by name only: 400, and not in the SDK's list of throttling codes.
    for (const code of ['KMSThrottling', 'OptedOut']) {
      sns.script(PHONE, [snsError(400, code)]);
      const thrown = await failure(text(PHONE, {}, retrying));
      expect([thrown.name, thrown.$metadata.attempts]).toEqual([`${code}Exception`, 1]);
    }
    expect(sns.received).toHaveLength(8);
    retrying.destroy();
  });
});
