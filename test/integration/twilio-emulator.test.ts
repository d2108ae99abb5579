// The Twilio emulator itself, driven by the real `twilio` SDK: SMS tests trust what it checks, scripts and
// signs, and these tests also pin down what the SDK sends and how it reports each answer.
import { createServer, type Server } from 'node:http';
import twilio from 'twilio';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  startTwilioEmulator,
  type TwilioEmulator,
  twilioClientFor,
  twilioSignature,
} from '../emulators/twilio.js';

const ACCOUNT_SID = `AC${'a1'.repeat(16)}`;
const AUTH_TOKEN = 'herald-test-auth-token';
const API_KEY = { sid: `SK${'b2'.repeat(16)}`, secret: 'herald-test-api-secret' };
const SERVICE_SID = `MG${'c3'.repeat(16)}`;
const TO = '+14155550123';
const FROM = '+14155550100';

let emulator: TwilioEmulator;
let client: twilio.Twilio;
/** Receivers started by the test, closed after it whatever happened. */
const receivers: Server[] = [];
beforeEach(async () => {
  emulator = await startTwilioEmulator({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, apiKey: API_KEY });
  client = twilioClientFor(emulator);
});
afterEach(async () => {
  await emulator.close();
  const closing = receivers.splice(0).map((server) => new Promise((resolve) => server.close(resolve)));
  await Promise.all(closing);
});

/** The rejection of a promise expected to fail. */
async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

/** The RestException the SDK rejects with. */
async function restException(promise: Promise<unknown>): Promise<twilio.RestException> {
  const error = await failure(promise);
  expect(error).toBeInstanceOf(twilio.RestException);
  return error as twilio.RestException;
}

/** A create the SDK refuses to send (it requires `to` itself), or a form it would never build. */
async function postRaw(
  form: Record<string, string>,
  auth = `${ACCOUNT_SID}:${AUTH_TOKEN}`,
  path = `/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${emulator.url}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(auth).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams(form),
  });
  return { status: res.status, body: await res.json() };
}

interface Received {
  /** The request target, query string included. */
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Herald's side of a webhook: records each POST and answers with the given status, type and body. */
async function startReceiver(reply = { status: 200, contentType: 'text/plain', body: 'ok' }) {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => {
      body += chunk.toString('utf8');
    });
    req.on('end', () => {
      received.push({ url: req.url ?? '', headers: req.headers, body });
      res.writeHead(reply.status, { 'content-type': reply.contentType }).end(reply.body);
    });
  });
  receivers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('receiver: not on a TCP port');
  return { url: `http://127.0.0.1:${address.port}`, received };
}

const params = (body: string) => Object.fromEntries(new URLSearchParams(body));
const header = (received: Received | undefined, name: string) => String(received?.headers[name] ?? '');

describe('Twilio emulator: creating messages', () => {
  it('creates a message through the SDK and records the form it sent', async () => {
    expect(emulator.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const message = await client.messages.create({
      to: TO,
      from: FROM,
      body: 'Your code is 123456',
      statusCallback: 'https://herald.test/twilio/status?delivery=d_1',
    });
    expect(message.sid).toMatch(/^SM[0-9a-f]{32}$/);
    expect(message).toMatchObject({
      status: 'queued',
      to: TO,
      from: FROM,
      body: 'Your code is 123456',
      numSegments: '1',
      numMedia: '0',
      accountSid: ACCOUNT_SID,
      messagingServiceSid: null,
      direction: 'outbound-api',
      apiVersion: '2010-04-01',
      errorCode: null,
      uri: `/2010-04-01/Accounts/${ACCOUNT_SID}/Messages/${message.sid}.json`,
    });
    expect(message.dateCreated).toBeInstanceOf(Date);
    expect(Math.abs(message.dateCreated.getTime() - Date.now())).toBeLessThan(5_000);

    expect(emulator.requests).toHaveLength(1);
    const [request] = emulator.requests;
    expect(request).toMatchObject({
      method: 'POST',
      path: `/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`,
      authUser: ACCOUNT_SID,
      status: 201,
      sid: message.sid,
      response: { sid: message.sid, status: 'queued', num_segments: '1', error_code: null },
    });
    // Only the fields given, in the SDK's own names; nothing else is added.
    expect(request?.form).toEqual({
      To: TO,
      From: FROM,
      Body: 'Your code is 123456',
      StatusCallback: 'https://herald.test/twilio/status?delivery=d_1',
    });
    expect(request?.headers).toMatchObject({
      authorization: `Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
      'accept-charset': 'utf-8',
      'user-agent': expect.stringMatching(/^twilio-node\/6\.3\.1 \(\w+ \w+\) node\/v\d+/),
    });
    expect(emulator.messages.map((m) => m.sid)).toEqual([message.sid]);
  });

  it('counts segments as carriers do: GSM-7 160/153 septets, UCS-2 70/67 units', async () => {
    const sizes = async (body: string) =>
      (await client.messages.create({ to: TO, from: FROM, body })).numSegments;
    expect(await sizes('a'.repeat(160))).toBe('1');
    expect(await sizes('a'.repeat(161))).toBe('2');
    expect(await sizes('€'.repeat(80))).toBe('1'); // extension characters take two septets
    expect(await sizes('€'.repeat(81))).toBe('2');
    expect(await sizes('é'.repeat(160))).toBe('1'); // in the GSM basic set
    expect(await sizes(`${'a'.repeat(69)}✓`)).toBe('1');
    expect(await sizes(`${'a'.repeat(70)}✓`)).toBe('2');
    expect(await sizes('✓'.repeat(135))).toBe('3');
  });

  it('sends through a Messaging Service: accepted, no sender yet', async () => {
    const message = await client.messages.create({ to: TO, messagingServiceSid: SERVICE_SID, body: 'Hi' });
    expect(message).toMatchObject({ status: 'accepted', from: null, messagingServiceSid: SERVICE_SID });
    expect(emulator.requests[0]?.form).toEqual({ To: TO, MessagingServiceSid: SERVICE_SID, Body: 'Hi' });
  });

  it('authenticates with an API key when the SDK is given the account sid', async () => {
    const keyed = twilioClientFor(emulator, { username: API_KEY.sid, password: API_KEY.secret });
    await expect(keyed.messages.create({ to: TO, from: FROM, body: 'Hi' })).resolves.toHaveProperty('sid');
    expect(emulator.requests[0]?.authUser).toBe(API_KEY.sid);
    // The SDK itself refuses an API key as the account sid.
    expect(() => twilio(API_KEY.sid, API_KEY.secret)).toThrow(/accountSid must start with AC/);
  });

  it('fetches a message, with the status the last callback set', async () => {
    const receiver = await startReceiver();
    const { sid } = await client.messages.create({
      to: TO,
      from: FROM,
      body: 'Hi',
      statusCallback: `${receiver.url}/s`,
    });
    await emulator.sendStatus(sid, 'delivered');
    const fetched = await client.messages(sid).fetch();
    expect(fetched).toMatchObject({ sid, status: 'delivered', errorCode: null });
    expect(emulator.requests.map((r) => [r.method, r.status])).toEqual([
      ['POST', 201],
      ['GET', 200],
    ]);
  });
});

describe('Twilio emulator: refusals', () => {
  it('refuses a wrong auth token with 401 20003, and the SDK throws it as a RestException', async () => {
    const wrong = twilioClientFor(emulator, { username: ACCOUNT_SID, password: 'not-the-token' });
    const error = await restException(wrong.messages.create({ to: TO, from: FROM, body: 'Hi' }));
    expect(error).toMatchObject({
      status: 401,
      code: 20003,
      message: 'Authenticate',
      moreInfo: 'https://www.twilio.com/docs/errors/20003',
    });
    const unknownKey = twilioClientFor(emulator, {
      username: `SK${'0'.repeat(32)}`,
      password: API_KEY.secret,
    });
    const refused = await restException(unknownKey.messages.create({ to: TO, from: FROM, body: 'Hi' }));
    expect([refused.status, refused.code]).toEqual([401, 20003]);
    expect(emulator.requests.map((r) => [r.authUser, r.status, r.sid])).toEqual([
      [ACCOUNT_SID, 401, null],
      [`SK${'0'.repeat(32)}`, 401, null],
    ]);
    expect(emulator.messages).toEqual([]);
  });

  it('answers 404 20404 for another account in the path', async () => {
    const other = `AC${'9'.repeat(32)}`;
    const error = await restException(
      client.api.v2010.accounts(other).messages.create({ to: TO, from: FROM, body: 'Hi' }),
    );
    expect([error.status, error.code]).toEqual([404, 20404]);
    expect(error.message).toBe(
      `The requested resource /2010-04-01/Accounts/${other}/Messages.json was not found`,
    );
  });

  it('validates the form as Twilio does', async () => {
    // The SDK refuses a create without `to` before sending anything.
    expect(() => client.messages.create({ from: FROM, body: 'Hi' } as never)).toThrow(/params\['to'\]/);

    const cases: Array<[Record<string, string>, number, string]> = [
      [{ From: FROM, Body: 'Hi' }, 21604, "A 'To' phone number is required."],
      [
        { To: '4155550123', From: FROM, Body: 'Hi' },
        21211,
        "The 'To' number 4155550123 is not a valid phone number.",
      ],
      [{ To: TO, Body: 'Hi' }, 21603, "A 'From' phone number is required."],
      [
        { To: TO, From: 'not a sender!', Body: 'Hi' },
        21212,
        expect.stringMatching(/^The 'From' number not a/),
      ],
      [{ To: TO, From: FROM }, 21602, 'Message body is required.'],
      [{ To: TO, From: FROM, Body: '' }, 21602, 'Message body is required.'],
      [
        { To: TO, From: FROM, Body: 'x'.repeat(1601) },
        21617,
        expect.stringContaining('1600 character limit'),
      ],
    ];
    for (const [form, code, message] of cases) {
      const { status, body } = await postRaw(form);
      expect({ status, body }).toEqual({
        status: 400,
        body: { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status: 400 },
      });
    }
    // At the limit, alphanumeric senders, short codes and media without a body are fine.
    expect((await postRaw({ To: TO, From: FROM, Body: '😀'.repeat(1600) })).status).toBe(201);
    expect((await postRaw({ To: TO, From: 'Herald', Body: 'Hi' })).status).toBe(201);
    expect((await postRaw({ To: TO, From: '12345', Body: 'Hi' })).status).toBe(201);
    expect((await postRaw({ To: TO, From: FROM, MediaUrl: 'https://herald.test/a.png' })).status).toBe(201);
  });

  it('reports a bad To through the SDK as RestException 21211', async () => {
    const error = await restException(client.messages.create({ to: '+1 415 555', from: FROM, body: 'Hi' }));
    expect(error).toMatchObject({
      status: 400,
      code: 21211,
      message: "The 'To' number +1 415 555 is not a valid phone number.",
    });
  });
});

describe('Twilio emulator: scripted replies', () => {
  it('answers scripted errors in order per To number, then succeeds; the SDK does not retry', async () => {
    emulator.script(TO, [
      { kind: 'error', status: 400, code: 21610, message: 'Attempt to send to unsubscribed recipient' },
      {
        kind: 'error',
        status: 400,
        code: 21211,
        message: `The 'To' number ${TO} is not a valid phone number.`,
      },
      { kind: 'error', status: 429, code: 20429, message: 'Too Many Requests' },
      { kind: 'error', status: 500, code: 20500, message: 'Internal Server Error' },
    ]);
    const send = (to = TO) => client.messages.create({ to, from: FROM, body: 'Hi' });
    // Another recipient is not affected by that script.
    await expect(send('+14155550999')).resolves.toHaveProperty('sid');

    const unsubscribed = await restException(send());
    expect(unsubscribed).toMatchObject({
      status: 400,
      code: 21610,
      message: 'Attempt to send to unsubscribed recipient',
      moreInfo: 'https://www.twilio.com/docs/errors/21610',
    });
    expect(await restException(send())).toMatchObject({ status: 400, code: 21211 });
    expect(await restException(send())).toMatchObject({
      status: 429,
      code: 20429,
      message: 'Too Many Requests',
    });
    expect(await restException(send())).toMatchObject({ status: 500, code: 20500 });
    await expect(send()).resolves.toHaveProperty('status', 'queued');

    expect(
      emulator.requests.map((r) => [r.status, r.response && 'code' in r.response ? r.response.code : null]),
    ).toEqual([
      [201, null],
      [400, 21610],
      [400, 21211],
      [429, 20429],
      [500, 20500],
      [201, null],
    ]);
    expect(emulator.messages).toHaveLength(2);
  });

  it('a 503 arrives as a RestException like the rest', async () => {
    emulator.script(TO, [{ kind: 'error', status: 503, code: 20503, message: 'Service Unavailable' }]);
    const error = await restException(client.messages.create({ to: TO, from: FROM, body: 'Hi' }));
    expect([error.status, error.code, error.message]).toEqual([503, 20503, 'Service Unavailable']);
  });

  it('refused requests do not consume the script', async () => {
    emulator.script(TO, [
      { kind: 'error', status: 400, code: 21610, message: 'Attempt to send to unsubscribed recipient' },
    ]);
    expect((await postRaw({ To: TO, From: FROM })).status).toBe(400);
    expect((await postRaw({ To: TO, From: FROM, Body: 'Hi' }, `${ACCOUNT_SID}:wrong`)).status).toBe(401);
    expect((await postRaw({ To: TO, From: FROM, Body: 'Hi' })).body).toMatchObject({ code: 21610 });
  });

  it('delays a scripted reply, recording the request on arrival', async () => {
    emulator.setDefault({ kind: 'ok', delayMs: 400 });
    const started = Date.now();
    const sending = client.messages.create({ to: TO, from: FROM, body: 'Hi' });
    await emulator.waitFor((requests) => requests.length === 1, 2_000);
    expect(Date.now() - started).toBeLessThan(400);
    const message = await sending;
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect(emulator.requests[0]?.sid).toBe(message.sid);
    await expect(emulator.waitFor((requests) => requests.length === 2, 50)).rejects.toThrow(
      /not met within 50 ms/,
    );
  });

  it('a dropped connection rejects with a socket error, not a RestException', async () => {
    emulator.script(TO, [{ kind: 'drop' }]);
    const error = await failure(client.messages.create({ to: TO, from: FROM, body: 'Hi' }));
    expect(error).not.toBeInstanceOf(twilio.RestException);
    expect(error).toMatchObject({ code: 'ECONNRESET', message: 'socket hang up' });
    expect(emulator.requests[0]).toMatchObject({ status: null, response: null, sid: null });
    expect(emulator.messages).toEqual([]);
  });
});

describe('Twilio emulator: webhooks to Herald', () => {
  it('signs status callbacks so that twilio.validateRequest accepts them', async () => {
    const receiver = await startReceiver({ status: 204, contentType: 'text/plain', body: '' });
    const callback = `${receiver.url}/twilio/status?delivery=d_1`;
    const message = await client.messages.create({
      to: TO,
      from: FROM,
      body: 'Hi',
      statusCallback: callback,
    });

    const result = await emulator.sendStatus(message.sid, 'sent');
    expect(result).toMatchObject({ status: 204, body: '', url: callback });
    const failed = await emulator.sendStatus(message.sid, 'undelivered', { errorCode: 30003 });

    expect(receiver.received.map((r) => r.url)).toEqual([
      '/twilio/status?delivery=d_1',
      '/twilio/status?delivery=d_1',
    ]);
    const [sent, undelivered] = receiver.received;
    expect(params(sent?.body ?? '')).toEqual({
      MessageSid: message.sid,
      SmsSid: message.sid,
      AccountSid: ACCOUNT_SID,
      From: FROM,
      To: TO,
      MessageStatus: 'sent',
      SmsStatus: 'sent',
      ApiVersion: '2010-04-01',
    });
    expect(params(undelivered?.body ?? '')).toMatchObject({
      MessageStatus: 'undelivered',
      ErrorCode: '30003',
    });
    expect(failed.fields.ErrorCode).toBe('30003');
    expect(header(sent, 'content-type')).toBe('application/x-www-form-urlencoded');
    expect(header(sent, 'user-agent')).toBe('TwilioProxy/1.1');

    for (const r of [sent, undelivered]) {
      const signature = header(r, 'x-twilio-signature');
      expect(signature).toBe(twilioSignature(AUTH_TOKEN, callback, params(r?.body ?? '')));
      expect(twilio.validateRequest(AUTH_TOKEN, signature, callback, params(r?.body ?? ''))).toBe(true);
      expect(twilio.validateRequest('another-token', signature, callback, params(r?.body ?? ''))).toBe(false);
      expect(
        twilio.validateRequest(AUTH_TOKEN, signature, `${receiver.url}/twilio/status`, params(r?.body ?? '')),
      ).toBe(false);
    }
    expect(emulator.messages[0]).toMatchObject({ status: 'undelivered', error_code: 30003 });
  });

  it('sends a tampered body, a forged, missing or differently scoped signature when told to', async () => {
    const receiver = await startReceiver({ status: 403, contentType: 'text/plain', body: 'bad signature' });
    const callback = `${receiver.url}/twilio/status`;
    const { sid } = await client.messages.create({
      to: TO,
      from: FROM,
      body: 'Hi',
      statusCallback: callback,
    });

    const tampered = await emulator.sendStatus(sid, 'delivered', {
      tamper: (fields) => ({ ...fields, MessageStatus: 'failed' }),
    });
    expect(tampered).toMatchObject({ status: 403, body: 'bad signature', contentType: 'text/plain' });
    const forged = await emulator.sendStatus(sid, 'delivered', { signature: 'Zm9yZ2Vk' });
    const unsigned = await emulator.sendStatus(sid, 'delivered', { signature: null });
    const proxied = await emulator.sendStatus(sid, 'delivered', {
      signedUrl: 'https://herald.test/twilio/status',
    });
    const elsewhere = await emulator.sendStatus(sid, 'delivered', { url: `${receiver.url}/other` });

    const verdicts = receiver.received.map((r) =>
      twilio.validateRequest(
        AUTH_TOKEN,
        header(r, 'x-twilio-signature'),
        `${receiver.url}${r.url}`,
        params(r.body),
      ),
    );
    expect(verdicts).toEqual([false, false, false, false, true]);
    expect(params(receiver.received[0]?.body ?? '').MessageStatus).toBe('failed');
    expect(tampered.fields.MessageStatus).toBe('failed');
    expect(receiver.received[2]?.headers['x-twilio-signature']).toBeUndefined();
    expect([forged.signature, unsigned.signature]).toEqual(['Zm9yZ2Vk', null]);
    // Signed for the public URL Herald is configured with: valid there, not at the local address.
    const publicUrl = 'https://herald.test/twilio/status';
    expect(twilio.validateRequest(AUTH_TOKEN, proxied.signature ?? '', publicUrl, proxied.fields)).toBe(true);
    expect(elsewhere.url).toBe(`${receiver.url}/other`);
  });

  it('refuses a status callback for a message without StatusCallback or unknown', async () => {
    const { sid } = await client.messages.create({ to: TO, from: FROM, body: 'Hi' });
    await expect(emulator.sendStatus(sid, 'delivered')).rejects.toThrow(/has no StatusCallback/);
    await expect(emulator.sendStatus(`SM${'0'.repeat(32)}`, 'delivered')).rejects.toThrow(/no message/);
  });

  it('a Messaging Service message reports its service and the sender it used', async () => {
    const receiver = await startReceiver();
    const { sid } = await client.messages.create({
      to: TO,
      messagingServiceSid: SERVICE_SID,
      body: 'Hi',
      statusCallback: `${receiver.url}/s`,
    });
    const result = await emulator.sendStatus(sid, 'sent');
    expect(result.fields).toMatchObject({
      MessagingServiceSid: SERVICE_SID,
      From: expect.stringMatching(/^\+\d+$/),
    });
    expect(emulator.messages[0]?.from).toBe(result.fields.From);
  });

  it('posts inbound messages signed like Twilio and returns what Herald answered', async () => {
    const twiml = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>';
    const receiver = await startReceiver({ status: 200, contentType: 'text/xml', body: twiml });
    const webhook = `${receiver.url}/twilio/inbound`;
    const result = await emulator.sendInbound(webhook, { from: TO, to: FROM, body: 'STOP' });
    expect(result).toMatchObject({ status: 200, contentType: 'text/xml', body: twiml });

    const [inbound] = receiver.received;
    const fields = params(inbound?.body ?? '');
    expect(fields).toEqual({
      MessageSid: expect.stringMatching(/^SM[0-9a-f]{32}$/),
      SmsMessageSid: fields.MessageSid,
      SmsSid: fields.MessageSid,
      AccountSid: ACCOUNT_SID,
      From: TO,
      To: FROM,
      Body: 'STOP',
      NumMedia: '0',
      NumSegments: '1',
      SmsStatus: 'received',
      ApiVersion: '2010-04-01',
    });
    const signature = header(inbound, 'x-twilio-signature');
    expect(twilio.validateRequest(AUTH_TOKEN, signature, webhook, fields)).toBe(true);

    await emulator.sendInbound(
      webhook,
      { from: TO, to: FROM, body: 'STOP' },
      { tamper: (f) => ({ ...f, Body: 'START' }) },
    );
    const tampered = receiver.received[1];
    expect(params(tampered?.body ?? '').Body).toBe('START');
    expect(
      twilio.validateRequest(
        AUTH_TOKEN,
        header(tampered, 'x-twilio-signature'),
        webhook,
        params(tampered?.body ?? ''),
      ),
    ).toBe(false);
  });
});
