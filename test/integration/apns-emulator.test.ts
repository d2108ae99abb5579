// The APNs emulator itself, driven by the real @parse/node-apn Provider: push adapter tests trust what it
// checks, scripts and records. Also pins down node-apn's own retries, which the service must account for.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { connect } from 'node:http2';
import apn from '@parse/node-apn';
import { importPKCS8, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApnsEmulator, apnsSigningKey, startApnsEmulator } from '../emulators/apns.js';
import { type TestCertificate, testCertificate } from '../support/tls.js';

const KEY_ID = 'ABC123DEFG';
const TEAM_ID = 'TEAM456XYZ';
const TOPIC = 'com.example.herald';
const device = (hexDigit: string) => hexDigit.repeat(64);

const signingKey = apnsSigningKey();
let emulator: ApnsEmulator;
let provider: apn.Provider;
const providers: apn.Provider[] = [];

function tokenProvider(key = signingKey.privateKeyPem, extra: Partial<apn.ProviderOptions> = {}) {
  const created = new apn.Provider({
    token: { key, keyId: KEY_ID, teamId: TEAM_ID },
    address: '127.0.0.1',
    port: emulator.port,
    ca: [emulator.ca],
    ...extra,
  });
  providers.push(created);
  return created;
}

function alert(text = 'Hello'): apn.Notification {
  const note = new apn.Notification();
  note.topic = TOPIC;
  note.alert = text;
  note.pushType = 'alert';
  return note;
}

const requestsFor = (token: string) => emulator.received.filter((r) => r.token === token);

/** A provider JWT made independently of node-apn, `bearer ...`. */
async function providerJwt(iat = Math.floor(Date.now() / 1000)): Promise<string> {
  const key = await importPKCS8(signingKey.privateKeyPem, 'ES256');
  const jwt = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: KEY_ID })
    .setIssuer(TEAM_ID)
    .setIssuedAt(iat)
    .sign(key);
  return `bearer ${jwt}`;
}

interface RawAnswer {
  status: number;
  apnsId: unknown;
  retryAfter: unknown;
  body: string;
}

/** One POST over a fresh HTTP/2 session, for requests node-apn would not produce. */
function rawPost(
  target: ApnsEmulator,
  token: string,
  headers: Record<string, string | undefined>,
  body = '{"aps":{"alert":"hi"}}',
  path = `/3/device/${token}`,
): Promise<RawAnswer> {
  const session = connect(`https://127.0.0.1:${target.port}`, { ca: target.ca });
  session.on('error', () => {});
  const defined = Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== undefined));
  return new Promise<RawAnswer>((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': path, ...defined });
    let answer: RawAnswer = { status: 0, apnsId: undefined, retryAfter: undefined, body: '' };
    stream.on('response', (h) => {
      answer = { status: Number(h[':status']), apnsId: h['apns-id'], retryAfter: h['retry-after'], body: '' };
    });
    stream.on('data', (chunk: Buffer) => {
      answer.body += chunk.toString('utf8');
    });
    stream.on('end', () => (answer.status ? resolve(answer) : reject(new Error('ended without an answer'))));
    stream.on('close', () => reject(new Error(`stream closed before the end (code ${stream.rstCode})`)));
    stream.on('error', reject);
    stream.end(body);
  }).finally(() => session.close());
}

beforeAll(async () => {
  emulator = await startApnsEmulator({
    keyId: KEY_ID,
    teamId: TEAM_ID,
    publicKey: signingKey.publicKeyPem,
    topics: [TOPIC],
  });
  provider = tokenProvider();
});
afterAll(async () => {
  for (const p of providers) p.shutdown();
  await emulator.close();
});

describe('APNs emulator with token auth', () => {
  it('accepts a well-formed push and records its headers, payload and JWT claims', async () => {
    const note = alert('Your order shipped');
    const id = randomUUID();
    const expiry = Math.floor(Date.now() / 1000) + 3600;
    note.pushType = 'alert';
    note.priority = 10;
    note.expiry = expiry;
    note.collapseId = 'order-42';
    note.id = id;
    note.payload = { messageId: 'm_1' };
    const before = Date.now();

    const result = await provider.send(note, device('a'));

    expect(result.failed).toEqual([]);
    expect(result.sent).toEqual([{ device: device('a'), 'apns-id': id }]);
    const [request] = requestsFor(device('a'));
    expect(request?.headers).toMatchObject({
      'apns-topic': TOPIC,
      'apns-push-type': 'alert',
      'apns-priority': '10',
      'apns-expiration': String(expiry),
      'apns-collapse-id': 'order-42',
      'apns-id': id,
    });
    expect(request?.headers).not.toHaveProperty(':path');
    expect(request?.payload).toEqual({ messageId: 'm_1', aps: { alert: 'Your order shipped' } });
    expect(request?.body).toBe(JSON.stringify(request?.payload));
    expect(request?.jwt).toEqual({ kid: KEY_ID, iss: TEAM_ID, iat: expect.any(Number) });
    expect([request?.status, request?.reason]).toEqual([200, null]);
    expect(request?.receivedAt).toBeGreaterThanOrEqual(before);
  });

  it('generates an apns-id when the request carries none, and reuses one session per provider', async () => {
    const sessionsBefore = emulator.sessions();
    const first = await provider.send(alert(), device('b'));
    await provider.send(alert(), device('b'));
    expect(first.sent[0]).toMatchObject({ 'apns-id': expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(emulator.sessions()).toBe(sessionsBefore);
  });

  it('refuses a JWT signed with another key: 403 InvalidProviderToken', async () => {
    const wrongKey = tokenProvider(apnsSigningKey().privateKeyPem);
    const result = await wrongKey.send(alert(), device('c'));
    expect(result.sent).toEqual([]);
    expect(result.failed[0]).toMatchObject({ device: device('c'), status: 403 });
    expect(result.failed[0]?.response?.reason).toBe('InvalidProviderToken');
    expect(requestsFor(device('c')).map((r) => [r.status, r.reason, r.jwt?.kid])).toEqual([
      [403, 'InvalidProviderToken', KEY_ID],
    ]);
  });

  it('answers a scripted 410 Unregistered with its timestamp, then the default', async () => {
    const unregisteredAt = Date.now() - 60_000;
    emulator.script(device('d'), [{ status: 410, reason: 'Unregistered', timestamp: unregisteredAt }]);
    const result = await provider.send(alert(), device('d'));
    expect(result.failed[0]).toMatchObject({ device: device('d'), status: 410 });
    expect(result.failed[0]?.response).toEqual({ reason: 'Unregistered', timestamp: unregisteredAt });
    expect((await provider.send(alert(), device('d'))).sent).toHaveLength(1);
  });

  it('refuses a token that is not 64 hex digits: 400 BadDeviceToken', async () => {
    const result = await provider.send(alert(), 'not-a-device-token');
    expect(result.failed[0]).toMatchObject({ status: 400, response: { reason: 'BadDeviceToken' } });
    expect(emulator.received.at(-1)).toMatchObject({ token: 'not-a-device-token', status: 400 });
  });

  it('refuses a payload over 4096 bytes: 413 PayloadTooLarge', async () => {
    const note = alert();
    note.payload = { filler: 'x'.repeat(4100) };
    const result = await provider.send(note, device('e'));
    expect(result.failed[0]).toMatchObject({ status: 413, response: { reason: 'PayloadTooLarge' } });
  });

  it('refuses a background push at priority 10: 400 BadPriority', async () => {
    const note = new apn.Notification();
    note.topic = TOPIC;
    note.pushType = 'background';
    note.priority = 10;
    note.contentAvailable = true;
    const result = await provider.send(note, device('f'));
    expect(result.failed[0]).toMatchObject({ status: 400, response: { reason: 'BadPriority' } });

    const atFive = new apn.Notification({ topic: TOPIC, pushType: 'background', priority: 5 });
    atFive.contentAvailable = true;
    expect((await provider.send(atFive, device('f'))).sent).toHaveLength(1);
  });

  it('refuses a topic it was not configured with: 400 BadTopic', async () => {
    const note = alert();
    note.topic = 'com.example.other';
    const result = await provider.send(note, device('1'));
    expect(result.failed[0]).toMatchObject({ status: 400, response: { reason: 'BadTopic' } });
  });

  it('refuses missing and expired provider tokens', async () => {
    const missing = await rawPost(emulator, device('2'), { 'apns-topic': TOPIC });
    expect(missing).toMatchObject({ status: 403, body: '{"reason":"MissingProviderToken"}' });
    const staleJwt = await providerJwt(Math.floor(Date.now() / 1000) - 2 * 3600);
    const expired = await rawPost(emulator, device('2'), { 'apns-topic': TOPIC, authorization: staleJwt });
    expect(expired).toMatchObject({ status: 403, body: '{"reason":"ExpiredProviderToken"}' });
    expect(expired.apnsId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it.each([
    [{ 'apns-topic': undefined }, '{}', 400, 'MissingTopic'],
    [{ 'apns-push-type': 'banner' }, '{}', 400, 'InvalidPushType'],
    [{ 'apns-priority': '7' }, '{}', 400, 'BadPriority'],
    [{ 'apns-push-type': 'background' }, '{}', 400, 'BadPriority'],
    [{ 'apns-expiration': '-1' }, '{}', 400, 'BadExpirationDate'],
    [{ 'apns-collapse-id': 'c'.repeat(65) }, '{}', 400, 'BadCollapseId'],
    [{ 'apns-id': 'not-a-uuid' }, '{}', 400, 'BadMessageId'],
    [{}, '', 400, 'PayloadEmpty'],
    [{}, '[1]', 400, 'BadPayload'],
  ] as const)('checks headers and body like APNs: %o %s → %i %s', async (extra, body, status, reason) => {
    const headers = { 'apns-topic': TOPIC, authorization: await providerJwt(), ...extra };
    const answer = await rawPost(emulator, device('6'), headers, body);
    expect([answer.status, answer.body]).toEqual([status, JSON.stringify({ reason })]);
    expect(emulator.received.at(-1)).toMatchObject({ token: device('6'), status, reason });
  });

  it('answers a path other than /3/device/<token> with 404 BadPath', async () => {
    const answer = await rawPost(
      emulator,
      device('6'),
      { authorization: await providerJwt() },
      '{}',
      '/3/devices/x',
    );
    expect([answer.status, answer.body]).toEqual([404, '{"reason":"BadPath"}']);
  });

  it('sends retry-after and the apns-id asked for, records before a delayed answer, and uses setDefault', async () => {
    const id = randomUUID();
    const headers = { 'apns-topic': TOPIC, 'apns-id': id, authorization: await providerJwt() };
    emulator.script(device('7'), [
      { status: 429, reason: 'TooManyRequests', retryAfterSeconds: 9, delayMs: 300 },
    ]);
    const started = Date.now();
    let answered = false;
    const pending = rawPost(emulator, device('7'), headers).finally(() => {
      answered = true;
    });
    await emulator.waitFor((received) => received.some((r) => r.token === device('7')), 2000);
    expect(answered).toBe(false);
    const throttled = await pending;
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(throttled).toEqual({
      status: 429,
      apnsId: id,
      retryAfter: '9',
      body: '{"reason":"TooManyRequests"}',
    });
    emulator.setDefault({ status: 503, reason: 'ServiceUnavailable' });
    try {
      expect((await rawPost(emulator, device('7'), headers)).status).toBe(503);
    } finally {
      emulator.setDefault({ status: 200 });
    }
    expect((await rawPost(emulator, device('7'), headers)).status).toBe(200);
    await expect(emulator.waitFor((received) => received.length > 10_000, 50)).rejects.toThrow(/50 ms/);
  });

  it('closes with a delayed answer pending and removes its certificate folder', async () => {
    const own = await startApnsEmulator({
      keyId: KEY_ID,
      teamId: TEAM_ID,
      publicKey: signingKey.publicKeyPem,
    });
    own.setDefault({ status: 200, delayMs: 60_000 });
    const pending = rawPost(own, device('8'), { 'apns-topic': TOPIC, authorization: await providerJwt() });
    await own.waitFor((received) => received.length === 1, 2000);
    expect(existsSync(own.caFile)).toBe(true);
    await own.close();
    await expect(pending).rejects.toThrow(/without an answer|closed before the end/);
    expect(existsSync(own.caFile)).toBe(false);
  });
});

describe('node-apn built-in retries (what the service must account for)', () => {
  it('retries 429 three more times at once, ignoring retry-after', async () => {
    emulator.script(
      device('3'),
      Array(6).fill({ status: 429, reason: 'TooManyRequests', retryAfterSeconds: 5 }),
    );
    const started = Date.now();
    const result = await provider.send(alert(), device('3'));
    expect(Date.now() - started).toBeLessThan(4000);
    expect(result.failed[0]).toMatchObject({ status: 429, response: { reason: 'TooManyRequests' } });
    expect(requestsFor(device('3'))).toHaveLength(4);
  });

  it('retries 500 InternalServerError too, reports it without its reason, then drops the session', async () => {
    emulator.script(device('9'), Array(4).fill({ status: 500, reason: 'InternalServerError' }));
    const sessionsBefore = emulator.sessions();
    const result = await provider.send(alert(), device('9'));
    expect(result.failed[0]).toMatchObject({ status: 500 });
    expect(result.failed[0]?.response).toBeUndefined();
    expect(result.failed[0]?.error?.message).toBe('Error 500, stream ended unexpectedly');
    expect(requestsFor(device('9'))).toHaveLength(4);
    await provider.send(alert(), device('9'));
    expect(emulator.sessions()).toBe(sessionsBefore + 1);
  });

  it('retries 403 ExpiredProviderToken with a freshly signed JWT', async () => {
    emulator.script(device('0'), [{ status: 403, reason: 'ExpiredProviderToken' }]);
    const result = await provider.send(alert(), device('0'));
    expect(result.sent).toHaveLength(1);
    expect(requestsFor(device('0')).map((r) => r.status)).toEqual([403, 200]);
  });

  it('keeps retrying after the first retryable failure, even past a 400', async () => {
    emulator.script(device('4'), [
      { status: 503, reason: 'ServiceUnavailable' },
      { status: 400, reason: 'BadTopic' },
    ]);
    const result = await provider.send(alert(), device('4'));
    expect(result.sent).toHaveLength(1);
    expect(requestsFor(device('4')).map((r) => r.status)).toEqual([503, 400, 200]);
  });

  it('sends once with connectionRetryLimit: 0', async () => {
    const single = tokenProvider(signingKey.privateKeyPem, { connectionRetryLimit: 0 });
    emulator.script(device('5'), Array(4).fill({ status: 503, reason: 'ServiceUnavailable' }));
    const result = await single.send(alert(), device('5'));
    expect(result.failed[0]).toMatchObject({ status: 503, response: { reason: 'ServiceUnavailable' } });
    expect(requestsFor(device('5'))).toHaveLength(1);
  });
});

describe('APNs emulator with certificate auth', () => {
  let certEmulator: ApnsEmulator;
  let pushCertificate: TestCertificate;
  let plainCertificate: TestCertificate;
  const certProvider = (options: apn.ProviderOptions) => {
    const created = new apn.Provider({
      address: '127.0.0.1',
      port: certEmulator.port,
      ca: [certEmulator.ca],
      ...options,
    });
    providers.push(created);
    return created;
  };

  beforeAll(async () => {
    certEmulator = await startApnsEmulator({
      keyId: KEY_ID,
      teamId: TEAM_ID,
      publicKey: signingKey.publicKeyPem,
      requireClientCertificate: true,
    });
    pushCertificate = testCertificate('client', ['1.2.840.113635.100.6.3.1=ASN1:NULL']);
    plainCertificate = testCertificate('client');
  });
  afterAll(async () => {
    await certEmulator.close();
    pushCertificate.remove();
    plainCertificate.remove();
  });

  it('accepts a client certificate carrying the Apple push OID, without a bearer token', async () => {
    const result = await certProvider({ cert: pushCertificate.cert, key: pushCertificate.key }).send(
      alert(),
      device('a'),
    );
    expect(result.failed).toEqual([]);
    expect(result.sent).toEqual([{ device: device('a'), 'apns-id': expect.any(String) }]);
    expect(certEmulator.received.at(-1)).toMatchObject({ status: 200, jwt: null });
    expect(certEmulator.received.at(-1)?.headers).not.toHaveProperty('authorization');
  });

  it('refuses a client certificate without the OID: 403 BadCertificate', async () => {
    const result = await certProvider({ cert: plainCertificate.cert, key: plainCertificate.key }).send(
      alert(),
      device('b'),
    );
    expect(result.failed[0]).toMatchObject({ status: 403, response: { reason: 'BadCertificate' } });
  });

  it('refuses a connection without a client certificate (bearer token only): 403 BadCertificate', async () => {
    const result = await certProvider({
      token: { key: signingKey.privateKeyPem, keyId: KEY_ID, teamId: TEAM_ID },
    }).send(alert(), device('c'));
    expect(result.failed[0]).toMatchObject({ status: 403, response: { reason: 'BadCertificate' } });
  });
});
