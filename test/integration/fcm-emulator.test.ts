// The FCM emulator driven by the real firebase-admin, configured as production configures it (a service
// account through cert(), an httpAgent) with only the network redirected. These tests also pin down what the
// FCM adapter relies on: the error codes firebase-admin surfaces for each FCM error, and the retries it makes
// on its own before the adapter sees anything.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type App, type AppOptions, cert, deleteApp, initializeApp } from 'firebase-admin/app';
import { getMessaging, type Messaging, type TokenMessage } from 'firebase-admin/messaging';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type FcmEmulator,
  type FcmErrorCode,
  type FcmScriptedReply,
  type FcmServiceAccount,
  fcmServiceAccount,
  fcmTestAgent,
  startFcmEmulator,
  writeFcmServiceAccount,
} from '../emulators/fcm.js';

const PROJECT = 'p';
const keyDir = mkdtempSync(join(tmpdir(), 'herald-fcm-'));
const apps: App[] = [];
let emulator: FcmEmulator;
let agent: Agent;
let account: FcmServiceAccount;
let appCount = 0;

beforeEach(async () => {
  // A fresh account per test: cert() caches credentials (and their agent) by the account's JSON.
  account = fcmServiceAccount(PROJECT);
  emulator = await startFcmEmulator({ accounts: [account] });
  agent = fcmTestAgent(emulator.port);
});
afterEach(async () => {
  agent.destroy();
  await emulator.close();
});
afterAll(async () => {
  await Promise.all(apps.map((app) => deleteApp(app)));
  rmSync(keyDir, { recursive: true, force: true });
});

function appFor(options: AppOptions): App {
  appCount += 1;
  const app = initializeApp(options, `fcm-emulator-test-${appCount}`);
  apps.push(app);
  return app;
}

/** The production recipe, with the test agent and the account's key file. */
function messagingFor(serviceAccount: FcmServiceAccount = account, projectId = PROJECT): Messaging {
  const keyFile = writeFcmServiceAccount(serviceAccount, keyDir);
  const messaging = getMessaging(appFor({ credential: cert(keyFile, agent), httpAgent: agent, projectId }));
  messaging.enableLegacyHttpTransport();
  return messaging;
}

/** firebase-admin's private retry policy for send(); there is no public option (see the retry tests). */
function setSendRetry(messaging: Messaging, retry: object | null): void {
  const handler: unknown = Reflect.get(messaging, 'messagingRequestHandler');
  const client: unknown = typeof handler === 'object' && handler ? Reflect.get(handler, 'httpClient') : null;
  if (typeof client !== 'object' || client === null || !('retry' in client)) {
    throw new Error('firebase-admin internals changed: messagingRequestHandler.httpClient.retry not found');
  }
  Reflect.set(client, 'retry', retry);
}

/** The `code` and message of the error a send fails with, whether it throws at once or rejects. */
async function errorOf(send: () => Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await send();
  } catch (error) {
    if (error instanceof Error && 'code' in error && typeof error.code === 'string') {
      return { code: error.code, message: error.message };
    }
    throw error;
  }
  throw new Error('expected the send to fail');
}
const errorCodeOf = async (send: () => Promise<unknown>) => (await errorOf(send)).code;
const repeat = (reply: FcmScriptedReply, times = 6): FcmScriptedReply[] => Array(times).fill(reply);

/** A send that bypasses firebase-admin's own checks, with a bearer token the emulator issued to it. */
async function rawSend(messaging: Messaging, message: unknown): Promise<{ status: number; body: unknown }> {
  const { access_token } = await messaging.app.options.credential!.getAccessToken();
  const response = await fetch(`http://127.0.0.1:${emulator.port}/v1/projects/${PROJECT}/messages:send`, {
    method: 'POST',
    headers: { authorization: `Bearer ${access_token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ message }),
  });
  return { status: response.status, body: await response.json() };
}

const sendsTo = (token: string) => emulator.sends().filter((r) => r.message?.token === token);
const gapsMs = (token: string) =>
  sendsTo(token).flatMap((r, i, all) => (i === 0 ? [] : [r.receivedAt - (all[i - 1]?.receivedAt ?? 0)]));

describe('FCM emulator with the real firebase-admin', () => {
  it('fetches an OAuth token with the service account, then delivers the message as FCM receives it', async () => {
    const messaging = messagingFor();
    const message: TokenMessage = {
      token: 'device-1',
      notification: { title: 'Shipped', body: 'Your order is on its way' },
      data: { orderId: '42', kind: 'shipped' },
      android: { priority: 'high', ttl: 3_600_000, collapseKey: 'orders' },
      apns: { headers: { 'apns-priority': '10' }, payload: { aps: { badge: 3, sound: 'default' } } },
    };
    const name = await messaging.send(message);
    expect(name).toMatch(/^projects\/p\/messages\/.+/);
    await messaging.send({ ...message, token: 'device-2' });

    const [tokenRequest, ...rest] = emulator.received;
    expect(tokenRequest).toMatchObject({
      kind: 'token',
      project: PROJECT,
      host: 'oauth2.googleapis.com',
      status: 200,
      body: { grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: expect.any(String) },
      claims: { iss: account.clientEmail, aud: 'https://oauth2.googleapis.com/token' },
    });
    expect(String(tokenRequest?.claims?.scope)).toContain(
      'https://www.googleapis.com/auth/firebase.messaging',
    );
    // The token is cached: both sends follow the single token request.
    expect(rest.map((r) => r.kind)).toEqual(['send', 'send']);
    const [send] = emulator.sends();
    expect(send).toMatchObject({ project: PROJECT, host: 'fcm.googleapis.com', status: 200 });
    expect(send?.headers.authorization).toMatch(/^Bearer ya29\./);
    expect(send?.body).toEqual({
      message: {
        token: 'device-1',
        notification: { title: 'Shipped', body: 'Your order is on its way' },
        data: { orderId: '42', kind: 'shipped' },
        android: { priority: 'high', ttl: '3600s', collapse_key: 'orders' },
        apns: { headers: { 'apns-priority': '10' }, payload: { aps: { badge: 3, sound: 'default' } } },
      },
    });
  });

  it('is not reached for the OAuth token when cert() is given the account as an object (firebase-admin-node#2960)', async () => {
    // A stand-in proxy shows where the token request really goes; it refuses every tunnel.
    const tunnels: string[] = [];
    const proxy = createServer().on('connect', (req, socket) => {
      tunnels.push(req.url ?? '');
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n');
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const address = proxy.address();
    const saved = { HTTPS_PROXY: process.env.HTTPS_PROXY, NO_PROXY: process.env.NO_PROXY };
    process.env.HTTPS_PROXY = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    process.env.NO_PROXY = '';
    try {
      const app = appFor({ credential: cert(account.json, agent), httpAgent: agent, projectId: PROJECT });
      expect(await errorCodeOf(() => getMessaging(app).send({ token: 'device-1' }))).toBe(
        'app/invalid-credential',
      );
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy.close(resolve));
    }
    expect(tunnels).toContain('oauth2.googleapis.com:443');
    expect(emulator.received).toEqual([]);
  });

  it('answers a dry run with a fake message name and records validate_only', async () => {
    const name = await messagingFor().send({ token: 'device-1' }, true);
    expect(name).toBe('projects/p/messages/fake_message_id');
    expect(emulator.sends()[0]?.body).toEqual({ message: { token: 'device-1' }, validate_only: true });
  });

  it('refuses an assertion from an account it does not know, which firebase-admin reports as app/invalid-credential', async () => {
    const stranger = fcmServiceAccount(PROJECT);
    expect(await errorCodeOf(() => messagingFor(stranger).send({ token: 'device-1' }))).toBe(
      'app/invalid-credential',
    );
    expect(emulator.received.map((r) => [r.kind, r.status, r.claims])).toEqual([['token', 400, undefined]]);
  });

  it.each<[FcmErrorCode, number, string]>([
    ['UNREGISTERED', 404, 'messaging/registration-token-not-registered'],
    ['INVALID_ARGUMENT', 400, 'messaging/invalid-argument'],
    ['SENDER_ID_MISMATCH', 403, 'messaging/mismatched-credential'],
    ['QUOTA_EXCEEDED', 429, 'messaging/message-rate-exceeded'],
    ['UNAVAILABLE', 503, 'messaging/server-unavailable'],
    ['INTERNAL', 500, 'messaging/internal-error'],
    ['THIRD_PARTY_AUTH_ERROR', 401, 'messaging/third-party-auth-error'],
  ])(
    "surfaces a scripted %s (%i) as %s, with FCM's message as the error message",
    async (errorCode, status, code) => {
      const messaging = messagingFor();
      setSendRetry(messaging, null);
      emulator.script('device-1', [{ status, errorCode, message: `FCM says ${errorCode}` }]);
      expect(await errorOf(() => messaging.send({ token: 'device-1' }))).toEqual({
        code,
        message: `FCM says ${errorCode}`,
      });
      expect(emulator.sends().map((r) => r.status)).toEqual([status]);
    },
  );

  it('answers a bearer token it never issued with 401 UNAUTHENTICATED (messaging/third-party-auth-error)', async () => {
    const app = appFor({
      credential: { getAccessToken: async () => ({ access_token: 'ya29.forged', expires_in: 3600 }) },
      httpAgent: agent,
      projectId: PROJECT,
    });
    expect(await errorCodeOf(() => getMessaging(app).send({ token: 'device-1' }))).toBe(
      'messaging/third-party-auth-error',
    );
    expect(emulator.sends()[0]?.status).toBe(401);
  });

  it('answers a send to another project with 403 PERMISSION_DENIED (messaging/mismatched-credential)', async () => {
    const messaging = messagingFor(account, 'other-project');
    expect(await errorCodeOf(() => messaging.send({ token: 'device-1' }))).toBe(
      'messaging/mismatched-credential',
    );
    expect(emulator.sends()[0]).toMatchObject({ project: 'other-project', status: 403 });
  });

  it('refuses a non-string data value with INVALID_ARGUMENT naming the field', async () => {
    const messaging = messagingFor();
    // firebase-admin refuses it before sending, so the emulator is reached directly with a token it issued.
    const unchecked: unknown = { token: 'device-1', data: { a: 'x', n: 1 } };
    const local = await errorCodeOf(() => messaging.send(unchecked as TokenMessage));
    expect(local).toBe('messaging/invalid-payload');
    expect(emulator.received).toEqual([]);

    expect(await rawSend(messaging, unchecked)).toEqual({
      status: 400,
      body: {
        error: {
          code: 400,
          message: "Invalid value at 'message.data[1].value' (TYPE_STRING), 1",
          status: 'INVALID_ARGUMENT',
          details: [
            {
              '@type': 'type.googleapis.com/google.rpc.BadRequest',
              fieldViolations: [
                {
                  field: 'message.data[1].value',
                  description: "Invalid value at 'message.data[1].value' (TYPE_STRING), 1",
                },
              ],
            },
          ],
        },
      },
    });
  });

  it.each([
    ['no target', { data: { a: 'x' } }, 'Recipient of the message is not set.'],
    [
      'two targets',
      { token: 'device-1', topic: 'news' },
      "oneof field 'target' is already set. Cannot set 'topic'",
    ],
    [
      'an unknown Android priority',
      { token: 'device-1', android: { priority: 'urgent' } },
      "'message.android.priority'",
    ],
    [
      'an Android ttl not in seconds',
      { token: 'device-1', android: { ttl: '3600' } },
      "'message.android.ttl'",
    ],
  ])('refuses a message with %s as INVALID_ARGUMENT', async (_, message, text) => {
    expect(await rawSend(messagingFor(), message)).toMatchObject({
      status: 400,
      body: { error: { code: 400, status: 'INVALID_ARGUMENT', message: expect.stringContaining(text) } },
    });
  });

  it('refuses a message over 4096 bytes as "Message is too big" (messaging/invalid-argument)', async () => {
    const messaging = messagingFor();
    const sending = () => messaging.send({ token: 'device-1', data: { blob: 'x'.repeat(4100) } });
    expect(await errorCodeOf(sending)).toBe('messaging/invalid-argument');
    expect(emulator.sends()[0]?.status).toBe(400);
  });

  it('shows firebase-admin retrying only 503, at 0, 1, 2 and 4 s or at Retry-After when it is at most 60 s', async () => {
    const messaging = messagingFor();
    const unavailable: FcmScriptedReply = { status: 503, errorCode: 'UNAVAILABLE' };
    emulator.script('unavailable', repeat(unavailable));
    emulator.script('unavailable-retry-after-1', repeat({ ...unavailable, retryAfterSeconds: 1 }));
    emulator.script('unavailable-retry-after-61', repeat({ ...unavailable, retryAfterSeconds: 61 }));
    emulator.script('unavailable-twice', repeat(unavailable, 2));
    emulator.script('internal', repeat({ status: 500, errorCode: 'INTERNAL' }));
    emulator.script('quota', repeat({ status: 429, errorCode: 'QUOTA_EXCEEDED', retryAfterSeconds: 1 }));
    const send = (token: string) => messaging.send({ token });

    const codes = await Promise.all([
      errorCodeOf(() => send('unavailable')),
      errorCodeOf(() => send('unavailable-retry-after-1')),
      errorCodeOf(() => send('unavailable-retry-after-61')),
      send('unavailable-twice'),
      errorCodeOf(() => send('internal')),
      errorCodeOf(() => send('quota')),
    ]);
    expect(codes).toEqual([
      'messaging/server-unavailable',
      'messaging/server-unavailable',
      'messaging/server-unavailable',
      expect.stringMatching(/^projects\/p\/messages\//),
      'messaging/internal-error',
      'messaging/message-rate-exceeded',
    ]);
    const expectGaps = (token: string, expected: number[]) => {
      const gaps = gapsMs(token);
      expect(gaps, token).toHaveLength(expected.length);
      gaps.forEach((gap, i) => {
        expect(gap, `${token} gap ${i}`).toBeGreaterThanOrEqual((expected[i] ?? 0) - 5);
        expect(gap, `${token} gap ${i}`).toBeLessThan((expected[i] ?? 0) + 750);
      });
    };
    expectGaps('unavailable', [0, 1000, 2000, 4000]);
    expectGaps('unavailable-retry-after-1', [1000, 1000, 1000, 1000]);
    expectGaps('unavailable-retry-after-61', []);
    expectGaps('unavailable-twice', [0, 1000]);
    expectGaps('internal', []);
    expectGaps('quota', []);
  });

  it('retries can be shortened or turned off only through firebase-admin internals', async () => {
    const unavailable: FcmScriptedReply = { status: 503, errorCode: 'UNAVAILABLE' };
    emulator.script('short', repeat(unavailable));
    emulator.script('off', repeat(unavailable));
    const shortened = messagingFor();
    setSendRetry(shortened, {
      maxRetries: 2,
      statusCodes: [503],
      ioErrorCodes: ['ECONNRESET', 'ETIMEDOUT'],
      backOffFactor: 0.05,
      maxDelayInMillis: 1000,
    });
    expect(await errorCodeOf(() => shortened.send({ token: 'short' }))).toBe('messaging/server-unavailable');
    const off = messagingFor();
    setSendRetry(off, null);
    expect(await errorCodeOf(() => off.send({ token: 'off' }))).toBe('messaging/server-unavailable');

    // backOffFactor 0.05: the first retry at once, then 2^1 * 0.05 s.
    const gaps = gapsMs('short');
    expect(gaps).toHaveLength(2);
    expect(gaps[1]).toBeGreaterThanOrEqual(95);
    expect(gaps[1]).toBeLessThan(600);
    expect(sendsTo('off')).toHaveLength(1);
  });
});
