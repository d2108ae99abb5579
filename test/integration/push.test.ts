// PUSH through the real SDKs (@parse/node-apn, firebase-admin, web-push) against wire-level emulators, set up by a
// providers file as an operator would: one notification reaches every device of a user; each platform's
// payload is asserted as the provider received it; every dead-token signal deactivates exactly that token
// (with the reason and the time), a re-registered token survives a late 410; transient errors retry only
// the token's own delivery; credential errors open the provider's circuit and leave tokens alone; oversize
// Web Push payloads are shortened at a character boundary; bad push options are refused, writing nothing;
// stale tokens are swept. Runs on every available engine.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import webPush from 'web-push';
import { Channel, DeliveryStatus, Platform, Priority } from '../../clients/node/index.js';
import { type ApnsEmulator, apnsSigningKey, startApnsEmulator } from '../emulators/apns.js';
import { type FcmEmulator, fcmServiceAccount, startFcmEmulator } from '../emulators/fcm.js';
import { startWebPushEmulator, type TestSubscription, type WebPushEmulator } from '../emulators/webpush.js';
import { engines } from '../support/engines.js';
import { codeOf } from '../support/errors.js';
import { rowCounts } from '../support/rows.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

const KEY_ID = 'KEYID12345';
const TEAM_ID = 'TEAM123456';
const APP = 'com.example.app';
const ANDROID_APP = 'com.example.android';
const PROJECT = 'herald-test';
const inFlight = new Set([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]);

let counter = 0;
/** A fresh 64-hex-digit APNs device token. */
function apnsToken(): string {
  counter++;
  return counter.toString(16).padStart(8, '0').repeat(8);
}

describe.each(engines())('push on $name', (engine) => {
  let apns: ApnsEmulator;
  let browsers: WebPushEmulator;
  let fcm: FcmEmulator;
  let server: TestServer;
  let dir: string;
  const vapid = webPush.generateVAPIDKeys();

  beforeAll(async () => {
    const signing = apnsSigningKey();
    apns = await startApnsEmulator({
      keyId: KEY_ID,
      teamId: TEAM_ID,
      publicKey: signing.publicKeyPem,
      topics: [APP],
    });
    browsers = await startWebPushEmulator();
    const account = fcmServiceAccount(PROJECT);
    fcm = await startFcmEmulator({ accounts: [account] });
    dir = mkdtempSync(path.join(tmpdir(), 'herald-push-'));
    const secret = (name: string, value: string) => {
      writeFileSync(path.join(dir, name), `${value}\n`);
      return { file: path.join(dir, name) };
    };
    const providersFile = path.join(dir, 'providers.json');
    writeFileSync(
      providersFile,
      JSON.stringify({
        channels: {
          push: [
            {
              type: 'apns',
              timeout_ms: 3_000,
              settings: {
                auth: {
                  type: 'token',
                  key: secret('apns.p8', signing.privateKeyPem),
                  key_id: KEY_ID,
                  team_id: TEAM_ID,
                },
                apps: [{ app_id: APP, environment: 'production' }],
                endpoint: { address: '127.0.0.1', port: apns.port, ca: { file: apns.caFile } },
              },
            },
            {
              type: 'fcm',
              timeout_ms: 3_000,
              settings: {
                projects: [
                  {
                    service_account: secret('firebase.json', JSON.stringify(account.json)),
                    apps: [ANDROID_APP],
                  },
                ],
                endpoint: { address: '127.0.0.1', port: fcm.port },
              },
            },
            {
              type: 'webpush',
              timeout_ms: 3_000,
              settings: {
                vapid_public_key: vapid.publicKey,
                vapid_private_key: secret('vapid.key', vapid.privateKey),
                subject: 'mailto:ops@example.com',
                allow_networks: ['127.0.0.1/32'],
                ca: { file: browsers.caFile },
              },
            },
          ],
        },
      }),
    );
    server = await startTestServer(engine, {
      overrides: {
        HERALD_PROVIDERS_FILE: providersFile,
        HERALD_DISPATCH_POLL_MS: '200',
        HERALD_RETRY_PUSH: 'attempts=3,base_ms=50,max_delay_ms=100',
        HERALD_CIRCUIT_FAILURES: '2',
        HERALD_CIRCUIT_OPEN_MS: '60000',
      },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await apns?.close();
    await browsers?.close();
    await fcm?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function registerBrowser(userId: string): Promise<{ sub: TestSubscription; id: string }> {
    const sub = browsers.subscribe();
    const { token } = await server.admin().registerToken({
      userId,
      platform: Platform.WEB_PUSH,
      webPush: { endpoint: sub.endpoint, p256dh: sub.keys.p256dh, auth: sub.keys.auth },
    });
    return { sub, id: token!.id };
  }

  async function registerIphone(userId: string, token = apnsToken()): Promise<{ token: string; id: string }> {
    const { token: row } = await server
      .admin()
      .registerToken({ userId, platform: Platform.APNS, token, appId: APP });
    return { token, id: row!.id };
  }

  let fcmCounter = 0;
  async function registerAndroid(userId: string): Promise<{ token: string; id: string }> {
    const token = `fcm-token-${++fcmCounter}-${'x'.repeat(40)}`;
    const { token: row } = await server.admin().registerToken({
      userId,
      platform: Platform.FCM,
      token,
      appId: ANDROID_APP,
    });
    return { token, id: row!.id };
  }

  async function settled(notificationId: string) {
    return until(`${notificationId} settled`, 8_000, async () => {
      const { notification } = await server.admin().getNotification({ notificationId });
      return notification!.deliveries.some((d) => inFlight.has(d.status)) ? undefined : notification!;
    });
  }

  async function tokenRow(id: string) {
    const [row] = await server.db.database.sql.query<{
      active: boolean;
      invalid_reason: string | null;
      invalidated: boolean;
    }>(
      'select active, invalid_reason, invalidated_at is not null as invalidated from push_tokens where id = $1::uuid',
      [id],
    );
    return row;
  }

  it('reaches an iPhone, an Android phone and two browsers with one notification, each in its platform form', async () => {
    const iphone = await registerIphone('devices');
    const android = await registerAndroid('devices');
    const laptop = await registerBrowser('devices');
    const desktop = await registerBrowser('devices');
    const sent = await server.admin().send({
      userId: 'devices',
      type: 'order.shipped',
      title: 'Shipped',
      body: 'Order A-1 is on its way',
      data: { order: 'A-1', items: [1, 2] },
      priority: Priority.HIGH,
      channels: [Channel.PUSH],
      push: {
        clickUrl: 'https://shop.example.com/orders/A-1',
        sound: 'chime.caf',
        threadId: 'orders',
        collapseKey: 'order-A-1',
      },
    });
    expect(sent.deliveries.map((d) => d.channel)).toEqual([
      Channel.PUSH,
      Channel.PUSH,
      Channel.PUSH,
      Channel.PUSH,
    ]);
    const n = await settled(sent.notificationId);
    expect(n.deliveries.map((d) => [d.status, d.provider]).sort()).toEqual(
      [
        [DeliveryStatus.SENT, 'apns'],
        [DeliveryStatus.SENT, 'fcm'],
        [DeliveryStatus.SENT, 'webpush'],
        [DeliveryStatus.SENT, 'webpush'],
      ].sort(),
    );

    const onIphone = apns.received.filter((r) => r.token === iphone.token);
    expect(onIphone).toHaveLength(1);
    const apnsDelivery = n.deliveries.find((d) => d.provider === 'apns')!;
    expect(onIphone[0]).toMatchObject({
      status: 200,
      jwt: { kid: KEY_ID, iss: TEAM_ID },
      headers: {
        'apns-topic': APP,
        'apns-push-type': 'alert',
        'apns-priority': '10',
        'apns-collapse-id': 'order-A-1',
        'apns-id': apnsDelivery.id,
      },
      payload: {
        aps: {
          alert: { title: 'Shipped', body: 'Order A-1 is on its way' },
          sound: 'chime.caf',
          'thread-id': 'orders',
        },
        notification_id: sent.notificationId,
        type: 'order.shipped',
        click_url: 'https://shop.example.com/orders/A-1',
        data: { order: 'A-1', items: [1, 2] },
      },
    });
    // An hour when the notification has no expires_at.
    const expiration = Number(onIphone[0]!.headers['apns-expiration']);
    expect(Math.abs(expiration - (Date.now() / 1000 + 3600))).toBeLessThan(60);

    const onAndroid = fcm.sends().filter((r) => r.message?.token === android.token);
    expect(onAndroid).toHaveLength(1);
    expect(onAndroid[0]).toMatchObject({ project: PROJECT, status: 200 });
    expect(onAndroid[0]!.message).toEqual({
      token: android.token,
      notification: { title: 'Shipped', body: 'Order A-1 is on its way' },
      data: {
        order: 'A-1',
        items: '[1,2]',
        herald_notification_id: sent.notificationId,
        herald_seq: String(sent.seq),
        herald_type: 'order.shipped',
        herald_click_url: 'https://shop.example.com/orders/A-1',
        herald_thread_id: 'orders',
        herald_data: expect.any(String),
      },
      android: {
        priority: 'HIGH',
        collapse_key: 'order-A-1',
        notification: { sound: 'chime.caf' },
      },
      apns: {
        headers: {
          'apns-push-type': 'alert',
          'apns-priority': '10',
          'apns-expiration': expect.stringMatching(/^\d+$/),
          'apns-collapse-id': 'order-A-1',
        },
        payload: {
          aps: {
            alert: { title: 'Shipped', body: 'Order A-1 is on its way' },
            badge: 0,
            sound: 'chime.caf',
            'thread-id': 'orders',
          },
        },
      },
    });
    const heraldData = (onAndroid[0]!.message as { data: { herald_data: string } }).data.herald_data;
    expect(JSON.parse(heraldData)).toEqual({ order: 'A-1', items: [1, 2] });
    expect(fcm.received.some((r) => r.kind === 'token' && r.host === 'oauth2.googleapis.com')).toBe(true);

    for (const browser of [laptop, desktop]) {
      const got = browsers.received.filter((r) => r.subscriptionId === browser.sub.id);
      expect(got).toHaveLength(1);
      expect(got[0]).toMatchObject({ status: 201, urgency: 'high', topic: 'order-A-1', ttl: 86_400 });
      expect(got[0]!.vapid).toMatchObject({
        aud: browsers.origin,
        sub: 'mailto:ops@example.com',
        publicKey: vapid.publicKey,
      });
      expect(JSON.parse(got[0]!.plaintext!)).toEqual({
        notification_id: sent.notificationId,
        seq: Number(sent.seq),
        type: 'order.shipped',
        click_url: 'https://shop.example.com/orders/A-1',
        title: 'Shipped',
        body: 'Order A-1 is on its way',
        data: { order: 'A-1', items: [1, 2] },
      });
    }
  });

  it('deactivates exactly the token each dead-token signal names, with the reason and the time', async () => {
    const gone = await registerIphone('hygiene');
    const bad = await registerIphone('hygiene');
    const webGone = await registerBrowser('hygiene');
    const webMissing = await registerBrowser('hygiene');
    const healthy = await registerIphone('hygiene');
    const unregistered = await registerAndroid('hygiene');
    const mismatched = await registerAndroid('hygiene');
    const malformed = await registerAndroid('hygiene');
    fcm.script(unregistered.token, [{ status: 404, errorCode: 'UNREGISTERED' }]);
    fcm.script(mismatched.token, [
      { status: 403, errorCode: 'SENDER_ID_MISMATCH', message: 'SenderId mismatch' },
    ]);
    fcm.script(malformed.token, [
      {
        status: 400,
        errorCode: 'INVALID_ARGUMENT',
        message: 'The registration token is not a valid FCM registration token',
      },
    ]);
    apns.script(gone.token, [{ status: 410, reason: 'Unregistered', timestamp: Date.now() + 1_000 }]);
    apns.script(bad.token, [{ status: 400, reason: 'BadDeviceToken' }]);
    browsers.script(webGone.sub.id, [{ status: 410 }]);
    browsers.script(webMissing.sub.id, [{ status: 404 }]);
    const sent = await server
      .admin()
      .send({ userId: 'hygiene', type: 'ping', title: 'Hi', channels: [Channel.PUSH] });
    const n = await settled(sent.notificationId);
    expect(n.deliveries.map((d) => d.status).sort()).toEqual(
      [...Array(7).fill(DeliveryStatus.FAILED), DeliveryStatus.SENT].sort(),
    );
    for (const t of [unregistered, mismatched, malformed]) {
      expect(await tokenRow(t.id)).toMatchObject({ active: false, invalidated: true });
    }
    expect(await tokenRow(gone.id)).toEqual({
      active: false,
      invalid_reason: 'APNs answered 410 Unregistered',
      invalidated: true,
    });
    expect(await tokenRow(bad.id)).toEqual({
      active: false,
      invalid_reason: 'APNs answered 400 BadDeviceToken',
      invalidated: true,
    });
    expect(await tokenRow(webGone.id)).toMatchObject({ active: false, invalidated: true });
    expect(await tokenRow(webMissing.id)).toMatchObject({ active: false, invalidated: true });
    expect(await tokenRow(healthy.id)).toEqual({ active: true, invalid_reason: null, invalidated: false });

    // A deactivated token is never sent to again: the next Send reaches the healthy one only.
    const before = apns.received.length + browsers.received.length;
    const again = await server
      .admin()
      .send({ userId: 'hygiene', type: 'ping', title: 'Again', channels: [Channel.PUSH] });
    expect(again.deliveries).toHaveLength(1);
    await settled(again.notificationId);
    expect(apns.received.length + browsers.received.length - before).toBe(1);
    expect(apns.received.at(-1)?.token).toBe(healthy.token);
  });

  it('keeps a token that was registered again after the time APNs says it went', async () => {
    const phone = await registerIphone('returning');
    // APNs saw the token go an hour ago; the app registered it again just now.
    apns.script(phone.token, [{ status: 410, reason: 'Unregistered', timestamp: Date.now() - 3_600_000 }]);
    const sent = await server
      .admin()
      .send({ userId: 'returning', type: 'ping', title: 'Hi', channels: [Channel.PUSH] });
    const n = await settled(sent.notificationId);
    expect(n.deliveries[0]?.status).toBe(DeliveryStatus.FAILED);
    expect(await tokenRow(phone.id)).toEqual({ active: true, invalid_reason: null, invalidated: false });
  });

  it("retries a transient error on that token's delivery only", async () => {
    const flaky = await registerIphone('transient');
    const steady = await registerIphone('transient');
    apns.script(flaky.token, [{ status: 503, reason: 'ServiceUnavailable' }]);
    const sent = await server
      .admin()
      .send({ userId: 'transient', type: 'ping', title: 'Hi', channels: [Channel.PUSH] });
    const n = await settled(sent.notificationId);
    const byToken = (t: string) => apns.received.filter((r) => r.token === t).map((r) => r.status);
    expect(byToken(flaky.token)).toEqual([503, 200]);
    expect(byToken(steady.token)).toEqual([200]);
    expect(n.deliveries.map((d) => [d.status, d.attempts.length]).sort()).toEqual(
      [
        [DeliveryStatus.SENT, 1],
        [DeliveryStatus.SENT, 2],
      ].sort(),
    );
  });

  it("retries FCM's UNAVAILABLE itself (firebase-admin's own retries are off), and keeps the token on an auth error", async () => {
    const phone = await registerAndroid('fcm-errors');
    fcm.script(phone.token, [{ status: 503, errorCode: 'UNAVAILABLE' }]);
    const first = await server
      .admin()
      .send({ userId: 'fcm-errors', type: 'ping', title: 'Hi', channels: [Channel.PUSH] });
    const n = await settled(first.notificationId);
    expect([n.deliveries[0]?.status, n.deliveries[0]?.attempts.map((a) => a.outcome)]).toEqual([
      DeliveryStatus.SENT,
      ['retry', 'sent'],
    ]);
    expect(
      fcm
        .sends()
        .filter((r) => r.message?.token === phone.token)
        .map((r) => r.status),
    ).toEqual([503, 200]);

    fcm.script(phone.token, [{ status: 401, errorCode: 'THIRD_PARTY_AUTH_ERROR' }]);
    const second = await server
      .admin()
      .send({ userId: 'fcm-errors', type: 'ping', title: 'Hi', channels: [Channel.PUSH] });
    const refused = (await settled(second.notificationId)).deliveries[0]!;
    expect([refused.status, refused.reason]).toEqual([
      DeliveryStatus.FAILED,
      expect.stringMatching(/^failed: FCM: messaging\/third-party-auth-error: /),
    ]);
    expect(await tokenRow(phone.id)).toEqual({ active: true, invalid_reason: null, invalidated: false });
  });

  it('shortens an oversize body at a character boundary for every platform, keeping the payload whole', async () => {
    const browser = await registerBrowser('long');
    const phone = await registerIphone('long');
    const android = await registerAndroid('long');
    const body = `${'é'.repeat(1_000)}🎉${'"'.repeat(500)}${'x'.repeat(2_000)}`;
    const sent = await server.admin().send({
      userId: 'long',
      type: 'essay',
      title: 'Long',
      body,
      // FCM reserves "from": it travels in herald_data only.
      data: { from: 'alice', topic: 'essays' },
      channels: [Channel.PUSH],
    });
    const n = await settled(sent.notificationId);
    expect(n.deliveries.map((d) => d.status)).toEqual(Array(3).fill(DeliveryStatus.SENT));
    const shortened = (text: string) => {
      expect(body.startsWith(text)).toBe(true);
      expect(text.length).toBeLessThan(body.length);
      expect(text.length).toBeGreaterThan(500);
    };
    const web = browsers.received.find((r) => r.subscriptionId === browser.sub.id)!;
    expect(Buffer.byteLength(web.plaintext!)).toBeLessThanOrEqual(3_993);
    const payload = JSON.parse(web.plaintext!) as { body: string; title: string };
    expect(payload.title).toBe('Long');
    shortened(payload.body);
    const ios = apns.received.find((r) => r.token === phone.token)!;
    expect(Buffer.byteLength(ios.body)).toBeLessThanOrEqual(4_096);
    shortened((ios.payload as { aps: { alert: { body: string } } }).aps.alert.body);
    const fcmSent = fcm.sends().find((r) => r.message?.token === android.token)!;
    const message = fcmSent.message as { notification: { body: string }; data: Record<string, string> };
    shortened(message.notification.body);
    expect(message.data.from).toBeUndefined();
    expect(message.data.topic).toBe('essays');
    expect(JSON.parse(message.data.herald_data!)).toEqual({ from: 'alice', topic: 'essays' });
  });

  it('refuses bad push options naming the field, and writes nothing', async () => {
    const before = await rowCounts(server.db.database.db);
    const cases: [Record<string, unknown>, string][] = [
      [{ collapseKey: 'has space' }, 'push.collapse_key'],
      [{ sound: 'beep!' }, 'push.sound'],
      [{ badge: -1 }, 'push.badge'],
      [{ imageUrl: 'http://cdn.example.com/a.png' }, 'push.image_url'],
      [{ clickUrl: 'javascript:alert(1)' }, 'push.click_url'],
      [{ threadId: '' }, 'push.thread_id'],
      [{ category: 'a/b' }, 'push.category'],
    ];
    for (const [push, field] of cases) {
      const call = server
        .admin()
        .send({ userId: 'bad-options', type: 'ping', title: 'Hi', channels: [Channel.PUSH], push });
      await expect(call).rejects.toThrow(new RegExp(`${field.replace('.', '\\.')}: `));
      expect(await codeOf(call)).toBe(Code.InvalidArgument);
    }
    expect(await rowCounts(server.db.database.db)).toEqual(before);
  });

  it('deactivates tokens not seen for 270 days (stale), and counts every deactivation', async () => {
    const old = await registerIphone('sleeper');
    const fresh = await registerIphone('sleeper');
    await server.db.database.sql.query(
      `update push_tokens set last_seen_at = now() - interval '271 days' where id = $1::uuid`,
      [old.id],
    );
    expect(await server.herald.sweepStaleTokens()).toBe(1);
    expect(await tokenRow(old.id)).toEqual({ active: false, invalid_reason: 'stale', invalidated: true });
    expect(await tokenRow(fresh.id)).toMatchObject({ active: true });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/herald_push_tokens_deactivated_total\{platform="apns",reason="stale"\} 1\n/);
    expect(metrics).toMatch(
      /herald_push_tokens_deactivated_total\{platform="apns",reason="unregistered"\} 1\n/,
    );
    expect(metrics).toMatch(/herald_push_attempts_total\{platform="apns",outcome="sent"\} \d+\n/);
    expect(metrics).toMatch(/herald_push_tokens_active\{platform="webpush"\} \d+\n/);
  });

  // Last: it leaves the APNs circuit open.
  it('opens the circuit on credential errors and leaves the token alone', async () => {
    const phone = await registerIphone('creds');
    apns.script(phone.token, [
      { status: 403, reason: 'InvalidProviderToken' },
      { status: 403, reason: 'InvalidProviderToken' },
    ]);
    const send = () =>
      server.admin().send({ userId: 'creds', type: 'ping', title: 'Hi', channels: [Channel.PUSH] });
    for (let i = 0; i < 2; i++) {
      const n = await settled((await send()).notificationId);
      expect([n.deliveries[0]?.status, n.deliveries[0]?.reason]).toEqual([
        DeliveryStatus.FAILED,
        'failed: APNs answered 403 InvalidProviderToken',
      ]);
    }
    // Two credential failures in a row (HERALD_CIRCUIT_FAILURES=2): the next push waits, using no attempt.
    const third = await send();
    const waiting = await until('the third push waiting behind the open circuit', 5_000, async () => {
      const { notification } = await server.admin().getNotification({ notificationId: third.notificationId });
      const d = notification!.deliveries[0]!;
      return d.reason.startsWith('circuit_open:') ? d : undefined;
    });
    expect([waiting.status, waiting.attemptCount]).toEqual([DeliveryStatus.QUEUED, 0]);
    expect(apns.received.filter((r) => r.token === phone.token)).toHaveLength(2);
    expect(await tokenRow(phone.id)).toEqual({ active: true, invalid_reason: null, invalidated: false });
  });
});

describe.each(engines())('push with a providers file that lists one platform, on $name', (engine) => {
  let server: TestServer;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'herald-push-one-'));
    const vapid = webPush.generateVAPIDKeys();
    const file = path.join(dir, 'providers.json');
    writeFileSync(
      file,
      JSON.stringify({
        channels: {
          push: [
            {
              type: 'webpush',
              settings: {
                vapid_public_key: vapid.publicKey,
                vapid_private_key: vapid.privateKey,
                subject: 'https://example.com/contact',
              },
            },
          ],
        },
      }),
    );
    server = await startTestServer(engine, {
      overrides: { HERALD_PROVIDERS_FILE: file, HERALD_DISPATCH_POLL_MS: '200' },
    });
  });
  afterAll(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('skips a token of an unlisted platform as not_configured', async () => {
    await server
      .admin()
      .registerToken({ userId: 'ios-only', platform: Platform.APNS, token: 'ab'.repeat(32) });
    const sent = await server
      .admin()
      .send({ userId: 'ios-only', type: 'ping', title: 'Hi', channels: [Channel.PUSH] });
    const d = await until('the delivery final', 5_000, async () => {
      const { notification } = await server.admin().getNotification({ notificationId: sent.notificationId });
      const only = notification!.deliveries[0]!;
      return inFlight.has(only.status) ? undefined : only;
    });
    expect([d.status, d.reason, d.attemptCount]).toEqual([
      DeliveryStatus.SKIPPED,
      'not_configured: no push provider accepts this destination',
      0,
    ]);
  });
});
