// The web push emulator itself, driven by the real `web-push` package: push tests trust what it checks,
// decrypts and scripts, and these tests also pin down what web-push does on each answer.
import { existsSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { Agent, request } from 'node:https';
import { importJWK, SignJWT } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import webpush, { type RequestOptions, type VapidKeys, WebPushError } from 'web-push';
import { startWebPushEmulator, type TestSubscription, type WebPushEmulator } from '../emulators/webpush.js';

let emulator: WebPushEmulator;
let agent: Agent;
let vapidKeys: VapidKeys;
beforeEach(async () => {
  emulator = await startWebPushEmulator();
  agent = new Agent({ ca: emulator.ca });
  vapidKeys = webpush.generateVAPIDKeys();
});
afterEach(async () => {
  agent.destroy();
  await emulator.close();
});

function options(extra: RequestOptions = {}): RequestOptions {
  return {
    vapidDetails: { subject: 'mailto:ops@example.com', ...vapidKeys },
    TTL: 60,
    agent,
    ...extra,
  };
}

/** The rejection of a promise expected to fail. */
async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

/** A POST through the trusting agent, for requests web-push refuses to make (it validates some headers itself). */
function sendRaw(
  endpoint: string,
  headers: Record<string, string | number>,
  body: Buffer | null,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(endpoint, { method: 'POST', headers, agent }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8');
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

/** Headers and encrypted body as web-push would send them, to be altered before sending. */
function prepared(subscription: TestSubscription, payload = '{"n":1}', extra: RequestOptions = {}) {
  const details = webpush.generateRequestDetails(subscription, payload, options(extra));
  const headers: Record<string, string | number> = { ...details.headers };
  return { headers, body: details.body };
}

/** A VAPID header signed with jose, for claims web-push refuses to produce. */
async function vapidHeader(claims: { aud: string; sub: string; exp: number }): Promise<string> {
  const point = Buffer.from(vapidKeys.publicKey, 'base64url');
  const key = await importJWK(
    {
      kty: 'EC',
      crv: 'P-256',
      x: point.subarray(1, 33).toString('base64url'),
      y: point.subarray(33, 65).toString('base64url'),
      d: vapidKeys.privateKey,
    },
    'ES256',
  );
  const jwt = await new SignJWT({ sub: claims.sub })
    .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
    .setAudience(claims.aud)
    .setExpirationTime(claims.exp)
    .sign(key);
  return `vapid t=${jwt}, k=${vapidKeys.publicKey}`;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

describe('web push emulator', () => {
  it('accepts a push from web-push and records it decrypted, with its headers and VAPID claims', async () => {
    const subscription = emulator.subscribe();
    expect(subscription.endpoint).toBe(`${emulator.origin}/push/${subscription.id}`);
    expect(emulator.origin).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const payload = JSON.stringify({ title: 'Order shipped', body: 'Order 42 is on its way' });

    const result = await webpush.sendNotification(
      subscription,
      payload,
      options({ TTL: 3600, urgency: 'high', topic: 'order-42' }),
    );

    expect([result.statusCode, result.body]).toEqual([201, '']);
    expect(emulator.received).toEqual([
      expect.objectContaining({
        subscriptionId: subscription.id,
        ttl: 3600,
        urgency: 'high',
        topic: 'order-42',
        contentEncoding: 'aes128gcm',
        vapid: {
          aud: emulator.origin,
          sub: 'mailto:ops@example.com',
          publicKey: vapidKeys.publicKey,
          exp: expect.any(Number),
        },
        plaintext: payload,
        status: 201,
        rejectedBecause: null,
      }),
    ]);
    const exp = emulator.received[0]?.vapid?.exp ?? 0;
    expect(exp).toBeGreaterThan(nowSeconds());
    expect(exp).toBeLessThanOrEqual(nowSeconds() + 24 * 3600);
  });

  it('accepts a push without a payload, with no plaintext', async () => {
    const subscription = emulator.subscribe();
    expect((await webpush.sendNotification(subscription, null, options())).statusCode).toBe(201);
    expect(emulator.received[0]).toMatchObject({
      plaintext: null,
      bodyBytes: 0,
      urgency: 'normal',
      status: 201,
    });
  });

  it('answers scripted 410 then 404, which web-push rejects as WebPushError with that statusCode', async () => {
    const subscription = emulator.subscribe();
    emulator.script(subscription.id, [{ status: 410, body: 'gone' }, { status: 404 }]);
    const gone = await failure(webpush.sendNotification(subscription, 'a', options()));
    expect(gone).toBeInstanceOf(WebPushError);
    expect(gone).toMatchObject({ statusCode: 410, body: 'gone', endpoint: subscription.endpoint });
    expect(await failure(webpush.sendNotification(subscription, 'b', options()))).toMatchObject({
      statusCode: 404,
    });
    expect((await webpush.sendNotification(subscription, 'c', options())).statusCode).toBe(201);
    expect(emulator.received.map((r) => [r.plaintext, r.status])).toEqual([
      ['a', 410],
      ['b', 404],
      ['c', 201],
    ]);
  });

  it('answers 404 for a subscription it never issued', async () => {
    const subscription = { ...emulator.subscribe(), endpoint: `${emulator.origin}/push/unknown` };
    expect(await failure(webpush.sendNotification(subscription, 'x', options()))).toMatchObject({
      statusCode: 404,
    });
  });

  it('surfaces retry-after of a 429 in error.headers, and web-push retries neither 429 nor 5xx', async () => {
    const subscription = emulator.subscribe();
    emulator.script(subscription.id, [{ status: 429, retryAfterSeconds: 30 }, { status: 503 }]);
    const throttled = await failure(webpush.sendNotification(subscription, 'x', options()));
    expect(throttled).toMatchObject({
      statusCode: 429,
      headers: expect.objectContaining({ 'retry-after': '30' }),
    });
    expect(await failure(webpush.sendNotification(subscription, 'y', options()))).toMatchObject({
      statusCode: 503,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(emulator.received.map((r) => r.status)).toEqual([429, 503]);
  });

  it('applies a changed default, holding the reply for its delayMs', async () => {
    const subscription = emulator.subscribe();
    emulator.setDefault({ status: 202, delayMs: 200 });
    const started = Date.now();
    expect((await webpush.sendNotification(subscription, 'x', options())).statusCode).toBe(202);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });

  describe('VAPID', () => {
    it('answers 403 when the JWT is signed with another key than k', async () => {
      const other = webpush.generateVAPIDKeys();
      const subscription = emulator.subscribe();
      const details = {
        subject: 'mailto:ops@example.com',
        publicKey: other.publicKey,
        privateKey: vapidKeys.privateKey,
      };
      const err = await failure(
        webpush.sendNotification(subscription, 'x', options({ vapidDetails: details })),
      );
      expect(err).toMatchObject({ statusCode: 403 });
      expect(emulator.received[0]).toMatchObject({ status: 403, vapid: null, plaintext: null });
    });

    it('answers 401 without an Authorization header', async () => {
      const subscription = emulator.subscribe();
      const err = await failure(
        webpush.sendNotification(subscription, 'x', options({ vapidDetails: undefined })),
      );
      expect(err).toMatchObject({ statusCode: 401 });
    });

    it('answers 403 for an audience other than its origin, an expired or too distant exp, or a bad sub', async () => {
      const subscription = emulator.subscribe();
      const { headers, body } = prepared(subscription);
      const wrongs = [
        await vapidHeader({
          aud: 'https://push.example.net',
          sub: 'mailto:ops@example.com',
          exp: nowSeconds() + 60,
        }),
        await vapidHeader({ aud: emulator.origin, sub: 'mailto:ops@example.com', exp: nowSeconds() - 60 }),
        await vapidHeader({
          aud: emulator.origin,
          sub: 'mailto:ops@example.com',
          exp: nowSeconds() + 25 * 3600,
        }),
        await vapidHeader({ aud: emulator.origin, sub: 'ops@example.com', exp: nowSeconds() + 60 }),
        'WebPush some.jwt.value',
      ];
      for (const authorization of wrongs) {
        expect(
          (await sendRaw(subscription.endpoint, { ...headers, Authorization: authorization }, body)).status,
        ).toBe(403);
      }
      const right = await vapidHeader({
        aud: emulator.origin,
        sub: 'https://example.com/ops',
        exp: nowSeconds() + 60,
      });
      expect((await sendRaw(subscription.endpoint, { ...headers, Authorization: right }, body)).status).toBe(
        201,
      );
      expect(emulator.received.at(-1)?.vapid?.sub).toBe('https://example.com/ops');
    });
  });

  it('answers 400 for a missing or negative TTL, an unknown Urgency or a malformed Topic', async () => {
    const subscription = emulator.subscribe();
    const { headers, body } = prepared(subscription);
    const { TTL: _ttl, ...withoutTtl } = headers;
    const wrongs = [
      withoutTtl,
      { ...headers, TTL: '-1' },
      { ...headers, TTL: '1.5' },
      { ...headers, Urgency: 'urgent' },
      { ...headers, Topic: 'has+plus' },
      { ...headers, Topic: 'a'.repeat(33) },
    ];
    for (const wrong of wrongs) {
      expect((await sendRaw(subscription.endpoint, wrong, body)).status).toBe(400);
    }
    expect((await sendRaw(subscription.endpoint, { ...headers, Topic: 'a'.repeat(32) }, body)).status).toBe(
      201,
    );
    expect(emulator.received.map((r) => r.status)).toEqual([400, 400, 400, 400, 400, 400, 201]);
  });

  it('takes 3993 bytes of plaintext (4096 on the wire) and answers 413 for 3994, which web-push sends', async () => {
    const subscription = emulator.subscribe();
    await webpush.sendNotification(subscription, 'x'.repeat(3993), options());
    const err = await failure(webpush.sendNotification(subscription, 'x'.repeat(3994), options()));
    expect(err).toBeInstanceOf(WebPushError);
    expect(err).toMatchObject({ statusCode: 413, message: 'Received unexpected response code' });
    expect(emulator.received.map((r) => [r.bodyBytes, r.status, r.plaintext?.length ?? null])).toEqual([
      [4096, 201, 3993],
      [4097, 413, null],
    ]);
  });

  it('answers 400 for the legacy aesgcm encoding and for a body encrypted to another subscription', async () => {
    const subscription = emulator.subscribe();
    // web-push signs aesgcm requests with the older `WebPush <jwt>` scheme: give it a current VAPID header.
    const legacy = prepared(subscription, 'x', { contentEncoding: 'aesgcm' });
    const { Authorization } = webpush.getVapidHeaders(
      emulator.origin,
      'mailto:ops@example.com',
      vapidKeys.publicKey,
      vapidKeys.privateKey,
      'aes128gcm',
    );
    expect(
      (await sendRaw(subscription.endpoint, { ...legacy.headers, Authorization }, legacy.body)).status,
    ).toBe(400);
    const foreign = prepared(emulator.subscribe(), 'x');
    expect((await sendRaw(subscription.endpoint, foreign.headers, foreign.body)).status).toBe(400);
    expect(emulator.received.map((r) => r.rejectedBecause)).toEqual([
      'Content-Encoding must be aes128gcm',
      expect.stringMatching(/^cannot decrypt/),
    ]);
  });

  it('is not reachable through an http:// endpoint: web-push always speaks TLS', async () => {
    const plain = createHttpServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    try {
      const address = plain.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      const subscription = { ...emulator.subscribe(), endpoint: `http://127.0.0.1:${port}/push/x` };
      const err = await failure(webpush.sendNotification(subscription, 'x', options()));
      expect(err).toMatchObject({ code: 'EPROTO' });
    } finally {
      plain.close();
    }
  });

  it('waitFor resolves once a matching push arrives and rejects after its timeout', async () => {
    const subscription = emulator.subscribe();
    const arrived = emulator.waitFor((received) => received.some((r) => r.plaintext === 'late'), 5_000);
    await webpush.sendNotification(subscription, 'late', options());
    await arrived;
    await expect(emulator.waitFor((received) => received.length > 5, 50)).rejects.toThrow(
      /not met within 50 ms/,
    );
  });

  it('removes its certificate folder on close', async () => {
    const other = await startWebPushEmulator();
    expect(existsSync(other.caFile)).toBe(true);
    await other.close();
    expect(existsSync(other.caFile)).toBe(false);
  });
});
