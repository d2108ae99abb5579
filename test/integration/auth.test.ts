// The authorization matrix: no credentials, API key scopes, user tokens acting for themselves and for
// others, and tokens that are expired, forged, unsigned or missing claims.
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Code, ConnectError } from '@connectrpc/connect';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Platform } from '../../clients/node/index.js';
import { revokeApiKey } from '../../src/store/index.js';
import { engines, pgliteEngine } from '../support/engines.js';
import { codeOf } from '../support/errors.js';
import { rowCounts } from '../support/rows.js';
import { JWT_SECRET, startTestServer, type TestServer } from '../support/server.js';

const apnsToken = (c: string) => c.repeat(64);

/** A correctly signed HS256 token with exactly these claims (and a valid exp), whatever their types. */
function hs256(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ exp: Math.floor(Date.now() / 1000) + 300, ...claims })}`;
  const signature = createHmac('sha256', JWT_SECRET).update(body).digest('base64url');
  return `${body}.${signature}`;
}

describe.each(engines())('authorization ($name)', (engine) => {
  let server: TestServer;
  let aliceNotification: string;
  beforeAll(async () => {
    server = await startTestServer(engine, { overrides: { HERALD_API_KEY_CACHE_TTL_MS: '0' } });
    aliceNotification = (await server.admin().send({ userId: 'alice', type: 'welcome', title: 'Hi' }))
      .notificationId;
    await server.admin().registerToken({ userId: 'alice', platform: Platform.APNS, token: apnsToken('a') });
  });
  afterAll(() => server?.stop());

  it('answers UNAUTHENTICATED to every RPC without credentials', async () => {
    const anonymous = server.client({});
    const calls = [
      anonymous.send({ userId: 'alice', type: 't', title: 'x' }),
      anonymous.sendBatch({ requests: [{ userId: 'alice', type: 't' }] }),
      anonymous.getNotification({ notificationId: aliceNotification }),
      anonymous.registerToken({ userId: 'alice', platform: Platform.FCM, token: 'x' }),
      anonymous.unregisterToken({ platform: Platform.APNS, token: apnsToken('a') }),
      anonymous.updatePreferences({ userId: 'alice' }),
      anonymous.getPreferences({ userId: 'alice' }),
      anonymous.listNotifications({ userId: 'alice' }),
    ];
    expect(await Promise.all(calls.map(codeOf))).toEqual(calls.map(() => Code.Unauthenticated));
  });

  it.each([
    ['a malformed API key', 'hk_short'],
    ['an unknown API key', `hk_${'A'.repeat(43)}`],
    ['a header carrying two credentials', null],
  ])('answers UNAUTHENTICATED to %s', async (_name, key) => {
    const client = key === null ? server.client({ token: 'Basic abc' }) : server.client({ apiKey: key });
    expect(await codeOf(client.send({ userId: 'alice', type: 't', title: 'x' }))).toBe(Code.Unauthenticated);
  });

  it('rejects a key once it is revoked', async () => {
    const key = await server.keyWith('send');
    const client = server.client({ apiKey: key });
    expect(await codeOf(client.send({ userId: 'alice', type: 't', title: 'x' }))).toBe('ok');
    await revokeApiKey(server.db.database.db, key.slice(0, 11));
    expect(await codeOf(client.send({ userId: 'alice', type: 't', title: 'x' }))).toBe(Code.Unauthenticated);
  });

  it('enforces API key scopes', async () => {
    const send = server.client({ apiKey: await server.keyWith('send') });
    const read = server.client({ apiKey: await server.keyWith('read') });
    const both = server.client({ apiKey: await server.keyWith('send', 'read') });

    expect(await codeOf(send.send({ userId: 'bob', type: 't', title: 'x' }))).toBe('ok');
    expect(await codeOf(send.getNotification({ notificationId: aliceNotification }))).toBe(
      Code.PermissionDenied,
    );
    expect(await codeOf(send.getPreferences({ userId: 'alice' }))).toBe(Code.PermissionDenied);
    expect(await codeOf(send.updatePreferences({ userId: 'bob' }))).toBe('ok');

    expect(await codeOf(read.send({ userId: 'bob', type: 't', title: 'x' }))).toBe(Code.PermissionDenied);
    expect(await codeOf(read.sendBatch({ requests: [{ userId: 'b', type: 't' }] }))).toBe(
      Code.PermissionDenied,
    );
    expect(await codeOf(read.registerToken({ userId: 'bob', platform: Platform.FCM, token: 'f' }))).toBe(
      Code.PermissionDenied,
    );
    expect(await codeOf(read.getNotification({ notificationId: aliceNotification }))).toBe('ok');
    expect(await codeOf(read.getPreferences({ userId: 'alice' }))).toBe('ok');

    expect(await codeOf(both.getNotification({ notificationId: aliceNotification }))).toBe('ok');
  });

  it('checks the scope before saying whether a notification exists', async () => {
    const send = server.client({ apiKey: await server.keyWith('send') });
    const missing = '01900000-0000-7000-8000-000000000000';
    expect(await codeOf(send.getNotification({ notificationId: missing }))).toBe(Code.PermissionDenied);
    expect(await codeOf(server.admin().getNotification({ notificationId: missing }))).toBe(Code.NotFound);
  });

  it('lets a user token read and change only its own user', async () => {
    const alice = server.client({ token: await server.userToken('alice') });
    expect(await codeOf(alice.getNotification({ notificationId: aliceNotification }))).toBe('ok');
    expect(await codeOf(alice.getPreferences({}))).toBe('ok');
    expect(await codeOf(alice.getPreferences({ userId: 'alice' }))).toBe('ok');
    expect(
      await codeOf(
        alice.updatePreferences({ quietHours: { start: '22:00', end: '06:00', timezone: 'UTC' } }),
      ),
    ).toBe('ok');
    const registered = await alice.registerToken({ platform: Platform.FCM, token: 'alice-fcm' });
    expect(registered.token?.userId).toBe('alice');
    expect(await codeOf(alice.unregisterToken({ platform: Platform.FCM, token: 'alice-fcm' }))).toBe('ok');
  });

  it('refuses a user token everything about another user, and writes nothing', async () => {
    const mallory = server.client({ token: await server.userToken('mallory') });
    const before = await rowCounts(server.db.database.db);
    const attempts = [
      mallory.getNotification({ notificationId: aliceNotification }),
      mallory.getPreferences({ userId: 'alice' }),
      mallory.updatePreferences({ userId: 'alice', clearQuietHours: true }),
      mallory.registerToken({ userId: 'alice', platform: Platform.FCM, token: 'mallory-fcm' }),
      mallory.unregisterToken({ platform: Platform.APNS, token: apnsToken('a') }),
    ];
    expect(await Promise.all(attempts.map(codeOf))).toEqual(attempts.map(() => Code.PermissionDenied));
    expect(await rowCounts(server.db.database.db)).toEqual(before);
    const { notification } = await server.admin().getNotification({ notificationId: aliceNotification });
    expect(notification?.userId).toBe('alice');
  });

  it('never lets a user token send', async () => {
    const alice = server.client({ token: await server.userToken('alice') });
    expect(await codeOf(alice.send({ userId: 'alice', type: 't', title: 'x' }))).toBe(Code.PermissionDenied);
    expect(await codeOf(alice.sendBatch({ requests: [{ userId: 'alice', type: 't' }] }))).toBe(
      Code.PermissionDenied,
    );
  });

  it('requires a service key to name the user', async () => {
    const error = await server
      .admin()
      .registerToken({ platform: Platform.FCM, token: 'x' })
      .catch((e) => ConnectError.from(e));
    expect(error).toMatchObject({ code: Code.InvalidArgument, rawMessage: 'user_id: is required' });
  });

  it.each([
    ['expired', () => server.userToken('alice', { expiresIn: '-1m' })],
    [
      'signed with another secret',
      () => server.userToken('alice', { secret: 'another-secret-of-at-least-32-bytes!!' }),
    ],
    ['unsigned (alg none)', async () => new UnsecuredJWT({ sub: 'alice' }).setExpirationTime('5m').encode()],
    [
      'without exp',
      async () =>
        new SignJWT({ sub: 'alice' })
          .setProtectedHeader({ alg: 'HS256' })
          .sign(new TextEncoder().encode('test-secret-that-is-at-least-32-bytes-long!')),
    ],
    [
      'without sub',
      async () =>
        new SignJWT({})
          .setProtectedHeader({ alg: 'HS256' })
          .setExpirationTime('5m')
          .sign(new TextEncoder().encode('test-secret-that-is-at-least-32-bytes-long!')),
    ],
    ['garbage', async () => 'not.a.jwt'],
    ['with sub as an array', async () => hs256({ sub: ['alice'] })],
    ['with sub as a number', async () => hs256({ sub: 42 })],
    ['with sub as a boolean', async () => hs256({ sub: true })],
    ['with sub as an object', async () => hs256({ sub: {} })],
  ])('answers UNAUTHENTICATED to a user token that is %s', async (_name, token) => {
    const client = server.client({ token: await token() });
    expect(await codeOf(client.getPreferences({}))).toBe(Code.Unauthenticated);
  });
});

describe('asymmetric user tokens', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-jwt-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('verifies ES256 tokens against a PEM public key file', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const file = path.join(dir, 'es256.pem');
    writeFileSync(file, await exportSPKI(publicKey));
    const server = await startTestServer(pgliteEngine, {
      overrides: { HERALD_JWT_SECRET: '', HERALD_JWT_PUBLIC_KEY_FILE: file },
    });
    try {
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256' })
        .setSubject('carol')
        .setExpirationTime('5m')
        .sign(privateKey);
      expect((await server.client({ token }).getPreferences({})).preferences?.userId).toBe('carol');
      const hmac = await server.userToken('carol');
      expect(await codeOf(server.client({ token: hmac }).getPreferences({}))).toBe(Code.Unauthenticated);
    } finally {
      await server.stop();
    }
  });

  it('verifies RS256 tokens against a JWKS file, choosing the key by kid, with issuer and audience', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    const file = path.join(dir, 'jwks.json');
    writeFileSync(file, JSON.stringify({ keys: [jwk] }));
    const server = await startTestServer(pgliteEngine, {
      overrides: {
        HERALD_JWT_SECRET: '',
        HERALD_JWT_JWKS_FILE: file,
        HERALD_JWT_ISSUER: 'https://auth.example.com',
        HERALD_JWT_AUDIENCE: 'herald',
      },
    });
    const sign = (claims: { iss: string; aud: string }) =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
        .setSubject('dave')
        .setIssuer(claims.iss)
        .setAudience(claims.aud)
        .setExpirationTime('5m')
        .sign(privateKey);
    try {
      const good = await sign({ iss: 'https://auth.example.com', aud: 'herald' });
      expect((await server.client({ token: good }).getPreferences({})).preferences?.userId).toBe('dave');
      const wrongIssuer = await sign({ iss: 'https://evil.example.com', aud: 'herald' });
      expect(await codeOf(server.client({ token: wrongIssuer }).getPreferences({}))).toBe(
        Code.Unauthenticated,
      );
      const wrongAudience = await sign({ iss: 'https://auth.example.com', aud: 'other' });
      expect(await codeOf(server.client({ token: wrongAudience }).getPreferences({}))).toBe(
        Code.Unauthenticated,
      );
    } finally {
      await server.stop();
    }
  });
});
