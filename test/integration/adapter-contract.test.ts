// The adapter contract, run against every adapter that exists: a table of what the provider answers and the
// Outcome the adapter makes of it, and which tasks it accepts. The webhook adapter talks to a real HTTP
// receiver; the outbox adapter to a real database (closed, for the failure row). A providers file's `match`
// narrows what an adapter accepts. Runs on the embedded engine and, when available, PostgreSQL.
import { mkdtempSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import webPush from 'web-push';
import { createOutboxAdapter } from '../../src/channels/outbox/adapter.js';
import { type ApnsAdapterOptions, createApnsAdapter } from '../../src/channels/push/apns.js';
import { createWebPushAdapter } from '../../src/channels/push/webpush.js';
import { createWebhookAdapter } from '../../src/channels/webhook/adapter.js';
import { createAddressGuard } from '../../src/channels/webhook/address-guard.js';
import { loadConfig } from '../../src/config.js';
import { newId } from '../../src/core/ids.js';
import type { Content, DeliveryTask, Destination, ProviderAdapter } from '../../src/delivery/provider.js';
import { loadProviders } from '../../src/server/providers.js';
import { getOutboxMessage } from '../../src/store/index.js';
import { type ApnsEmulator, type ApnsReply, apnsSigningKey, startApnsEmulator } from '../emulators/apns.js';
import {
  type ScriptedReply,
  startWebhookReceiver,
  type WebhookReceiver,
} from '../emulators/webhook-receiver.js';
import { startWebPushEmulator, type WebPushEmulator } from '../emulators/webpush.js';
import { engines, type TestDatabase } from '../support/engines.js';
import { type TestCertificate, testCertificate } from '../support/tls.js';
import { until } from '../support/until.js';

const SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;

const destinations = {
  email: { channel: 'email', address: 'ada@example.com' },
  sms: { channel: 'sms', number: '+4915112345678' },
  push: {
    channel: 'push',
    tokenId: newId(),
    platform: 'apns',
    appId: 'com.example',
    token: 'ab'.repeat(32),
    subscription: null,
  },
} satisfies Record<string, Destination>;

const contents = {
  email: { channel: 'email', subject: 'Hi', html: '<p>Hi</p>', text: 'Hi', headers: {} },
  sms: { channel: 'sms', text: 'Hi', encoding: 'GSM-7', segments: 1 },
  push: {
    channel: 'push',
    title: 'Hi',
    body: null,
    data: {},
    urgent: false,
    collapseKey: 'order.shipped',
    sound: null,
    badge: null,
    imageUrl: null,
    clickUrl: null,
    threadId: null,
    category: null,
    dataOnly: false,
  },
  webhook: { channel: 'webhook', type: 'order.shipped', data: { order: 'A-1' } },
} satisfies Record<string, Content>;

function task(destination: Destination, content: Content): DeliveryTask {
  const at = new Date();
  return {
    deliveryId: newId(),
    notificationId: newId(),
    userId: 'contract',
    seq: 1,
    type: 'order.shipped',
    priority: 2,
    data: {},
    createdAt: at,
    sendAt: at,
    expiresAt: null,
    destination,
    content,
  };
}

describe('the webhook adapter', () => {
  let receiver: WebhookReceiver;
  let adapter: ProviderAdapter;
  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    adapter = createWebhookAdapter({
      guard: createAddressGuard(['127.0.0.1/32']),
      timeoutMs: 500,
      connections: 4,
    });
  });
  afterAll(async () => {
    await adapter?.close();
    await receiver?.close();
  });
  const hook = (p: string): Destination => ({
    channel: 'webhook',
    endpointId: newId(),
    url: `${receiver.url}${p}`,
    secrets: [SECRET],
  });

  it.each<[string, ScriptedReply, Record<string, unknown>]>([
    ['2xx', { status: 204 }, { kind: 'sent', statusCode: 204 }],
    ['410 Gone', { status: 410 }, { kind: 'invalid_destination', statusCode: 410 }],
    [
      '429 with Retry-After',
      { status: 429, headers: { 'retry-after': '7' } },
      { kind: 'retry', statusCode: 429, retryAfterMs: 7_000 },
    ],
    ['503', { status: 503 }, { kind: 'retry', statusCode: 503 }],
    ['400', { status: 400 }, { kind: 'retry', statusCode: 400 }],
    ['a redirect', { status: 301, headers: { location: '/x' } }, { kind: 'failed', statusCode: 301 }],
    [
      'webhook-delivery: abort-message',
      { status: 400, headers: { 'webhook-delivery': 'abort-message' } },
      { kind: 'failed', statusCode: 400 },
    ],
    ['a connection reset', { reset: true }, { kind: 'retry' }],
    ['no answer within the timeout', { hang: true }, { kind: 'retry' }],
  ])('%s', async (name, reply, expected) => {
    const p = `/contract/${name.replace(/\W+/g, '-')}`;
    receiver.script(p, [reply]);
    const outcome = await adapter.send(task(hook(p), contents.webhook), new AbortController().signal);
    expect(outcome).toMatchObject(expected);
  });

  it('accepts webhook tasks only', () => {
    expect(adapter.accepts(task(hook('/a'), contents.webhook))).toBe(true);
    expect(adapter.accepts(task(destinations.email, contents.email))).toBe(false);
  });
});

describe.each(engines())('the outbox adapter on $name', (engine) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await engine.open();
  });
  afterAll(async () => {
    await db?.destroy();
  });

  it.each(['email', 'sms', 'push'] as const)(
    'records a %s message and answers sent with its id',
    async (channel) => {
      const adapter = createOutboxAdapter({ channel, sql: db.database.sql, maxMessages: 100 });
      const t = task(destinations[channel], contents[channel]);
      const outcome = await adapter.send(t, new AbortController().signal);
      expect(outcome.kind).toBe('sent');
      const id = outcome.kind === 'sent' ? outcome.providerMessageId!.replace(/^outbox-/, '') : '';
      const row = await getOutboxMessage(db.database.db, id);
      expect(row).toMatchObject({ deliveryId: t.deliveryId, channel, provider: 'outbox' });
    },
  );

  it('accepts its own channel only', () => {
    const adapter = createOutboxAdapter({ channel: 'sms', sql: db.database.sql, maxMessages: 100 });
    expect(adapter.accepts(task(destinations.sms, contents.sms))).toBe(true);
    expect(adapter.accepts(task(destinations.email, contents.email))).toBe(false);
  });

  it('keeps the newest HERALD_OUTBOX_MAX_MESSAGES messages', async () => {
    const adapter = createOutboxAdapter({
      channel: 'email',
      name: 'bounded',
      sql: db.database.sql,
      maxMessages: 3,
    });
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const outcome = await adapter.send(
        task(destinations.email, contents.email),
        new AbortController().signal,
      );
      if (outcome.kind === 'sent') ids.push(outcome.providerMessageId!.replace(/^outbox-/, ''));
    }
    const rows = await db.database.sql.query<{ id: string }>(
      'select id::text as id from outbox_messages order by id desc',
      [],
    );
    expect(rows.map((r) => r.id)).toEqual(ids.slice(-3).reverse());
  });

  it('answers retry, not sent, when the message cannot be stored', async () => {
    const broken = await engine.open();
    await broken.destroy();
    const adapter = createOutboxAdapter({ channel: 'email', sql: broken.database.sql, maxMessages: 10 });
    const outcome = await adapter.send(
      task(destinations.email, contents.email),
      new AbortController().signal,
    );
    expect(outcome.kind).toBe('retry');
  });
});

describe('a providers file narrows what its adapters accept', () => {
  it('takes only the destinations its match names', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'herald-providers-'));
    const file = path.join(dir, 'providers.json');
    writeFileSync(
      file,
      JSON.stringify({
        channels: {
          sms: [
            {
              type: 'outbox',
              name: 'germany',
              match: { number_prefixes: ['+49'] },
              rate_limit: { per_second: 2, burst: 5 },
              retry: { attempts: 3 },
            },
          ],
          push: [{ type: 'outbox', name: 'fcm-only', match: { platforms: ['fcm'] } }],
        },
      }),
    );
    const config = loadConfig({ HERALD_PROVIDERS_FILE: file, HERALD_RETRY_SMS: 'base_ms=100' });
    const loaded = loadProviders({
      delivery: config.delivery,
      // Never queried: only accepts() is asked here.
      sql: { query: async () => [] } as never,
      webhookGuard: createAddressGuard([]),
    });
    if (!loaded.ok) throw new Error(loaded.problems.join('; '));
    const [germany] = loaded.providers.sms!;
    const [fcmOnly] = loaded.providers.push!;
    expect(germany!.accepts(task(destinations.sms, contents.sms))).toBe(true);
    expect(germany!.accepts(task({ channel: 'sms', number: '+15551234567' }, contents.sms))).toBe(false);
    expect(fcmOnly!.accepts(task(destinations.push, contents.push))).toBe(false);
    expect(fcmOnly!.accepts(task({ ...destinations.push, platform: 'fcm', token: 'x' }, contents.push))).toBe(
      true,
    );
    expect(loaded.providers.email).toBeUndefined();
    // The file's rate limit and retry keys win; the channel's policy (HERALD_RETRY_SMS) fills the rest.
    expect(germany!.rateLimit).toEqual({ perSecond: 2, burst: 5 });
    expect(germany!.retry).toEqual({ ...config.delivery.retry.sms, maxAttempts: 3 });
    expect(fcmOnly!.retry).toBeUndefined();
  });
});

describe('the push adapters', () => {
  let apns: ApnsEmulator;
  let certified: ApnsEmulator;
  let browsers: WebPushEmulator;
  let client: TestCertificate;
  const signing = apnsSigningKey();
  const adapters: ProviderAdapter[] = [];
  beforeAll(async () => {
    apns = await startApnsEmulator({
      keyId: 'KEYID12345',
      teamId: 'TEAM123456',
      publicKey: signing.publicKeyPem,
    });
    certified = await startApnsEmulator({
      keyId: 'KEYID12345',
      teamId: 'TEAM123456',
      publicKey: signing.publicKeyPem,
      requireClientCertificate: true,
    });
    browsers = await startWebPushEmulator();
    client = testCertificate('com.example.app', ['1.2.840.113635.100.6.3.1=ASN1:NULL']);
  });
  afterAll(async () => {
    await Promise.all(adapters.map((a) => a.close()));
    await apns?.close();
    await certified?.close();
    await browsers?.close();
    client?.remove();
  });
  const apnsAdapter = (emulator: ApnsEmulator, auth: ApnsAdapterOptions['auth']) => {
    const adapter = createApnsAdapter({
      timeoutMs: 2_000,
      auth,
      apps: [
        { appId: 'com.example.app', topic: 'com.example.app', environment: 'production' },
        { appId: 'com.example.beta', topic: 'com.example.beta', environment: 'sandbox' },
      ],
      endpoint: { address: '127.0.0.1', port: emulator.port, ca: emulator.ca },
    });
    adapters.push(adapter);
    return adapter;
  };
  const tokenAuth = (): ApnsAdapterOptions['auth'] => ({
    type: 'token',
    key: signing.privateKeyPem,
    keyId: 'KEYID12345',
    teamId: 'TEAM123456',
  });
  const push = (fields: Partial<Extract<Destination, { channel: 'push' }>>): Destination => ({
    ...destinations.push,
    appId: 'com.example.app',
    tokenId: newId(),
    ...fields,
  });

  it('apns takes APNs tokens of its own apps only', () => {
    const adapter = apnsAdapter(apns, tokenAuth());
    expect(adapter.accepts(task(push({ appId: 'com.example.app' }), contents.push))).toBe(true);
    expect(adapter.accepts(task(push({ appId: 'com.example.beta' }), contents.push))).toBe(true);
    expect(adapter.accepts(task(push({ appId: 'com.other' }), contents.push))).toBe(false);
    expect(adapter.accepts(task(push({ platform: 'fcm', token: 'x' }), contents.push))).toBe(false);
    expect(adapter.circuitKey(task(push({ appId: 'com.example.beta' }), contents.push))).toBe('apns:sandbox');
  });

  it.each<[string, ApnsReply, Record<string, unknown>]>([
    ['200', { status: 200 }, { kind: 'sent', statusCode: 200 }],
    [
      '410 Unregistered',
      { status: 410, reason: 'Unregistered', timestamp: 1_700_000_000_000 },
      { kind: 'invalid_destination', code: 'Unregistered', since: new Date(1_700_000_000_000) },
    ],
    ['400 BadDeviceToken', { status: 400, reason: 'BadDeviceToken' }, { kind: 'invalid_destination' }],
    [
      '400 DeviceTokenNotForTopic',
      { status: 400, reason: 'DeviceTokenNotForTopic' },
      { kind: 'invalid_destination' },
    ],
    ['400 BadCollapseId', { status: 400, reason: 'BadCollapseId' }, { kind: 'failed', statusCode: 400 }],
    [
      '403 ExpiredProviderToken',
      { status: 403, reason: 'ExpiredProviderToken' },
      { kind: 'failed', credentials: true },
    ],
    ['413 PayloadTooLarge', { status: 413, reason: 'PayloadTooLarge' }, { kind: 'failed', statusCode: 413 }],
    ['429 TooManyRequests', { status: 429, reason: 'TooManyRequests' }, { kind: 'retry', statusCode: 429 }],
    [
      '503 ServiceUnavailable',
      { status: 503, reason: 'ServiceUnavailable' },
      { kind: 'retry', statusCode: 503 },
    ],
  ])('apns: %s', async (_name, reply, expected) => {
    const adapter = apnsAdapter(apns, tokenAuth());
    const token = newId().replaceAll('-', '').repeat(2);
    apns.script(token, [reply]);
    const outcome = await adapter.send(task(push({ token }), contents.push), new AbortController().signal);
    expect(outcome).toMatchObject(expected);
    // One request: node-apn's own retries are off, the dispatcher decides.
    expect(apns.received.filter((r) => r.token === token)).toHaveLength(1);
  });

  it('apns certificate auth reaches a service that requires the Apple push certificate', async () => {
    const adapter = apnsAdapter(certified, { type: 'certificate', cert: client.cert, key: client.key });
    const outcome = await adapter.send(task(push({}), contents.push), new AbortController().signal);
    expect(outcome).toMatchObject({ kind: 'sent' });
    expect(certified.received.at(-1)?.status).toBe(200);
  });

  it('webpush takes Web Push subscriptions only, and refuses a push service on a private address', async () => {
    const adapter = createWebPushAdapter({
      timeoutMs: 2_000,
      vapid: { subject: 'mailto:ops@example.com', ...webPush.generateVAPIDKeys() },
      guard: createAddressGuard([]),
      ca: browsers.ca,
      connections: 4,
    });
    adapters.push(adapter);
    const sub = browsers.subscribe();
    const web = push({
      platform: 'webpush',
      token: sub.endpoint,
      subscription: { endpoint: sub.endpoint, keys: sub.keys },
    });
    expect(adapter.accepts(task(web, contents.push))).toBe(true);
    expect(adapter.accepts(task(push({}), contents.push))).toBe(false);
    // The emulator listens on 127.0.0.1, which no guard without an allow-list lets through.
    const outcome = await adapter.send(task(web, contents.push), new AbortController().signal);
    expect(outcome).toMatchObject({
      kind: 'failed',
      reason: expect.stringMatching(/^push service refused: /),
    });
    expect(browsers.received.filter((r) => r.subscriptionId === sub.id)).toHaveLength(0);
  });

  it('webpush reads no more of an answer than it keeps, and ends an attempt that talks forever at its budget', async () => {
    const tls = testCertificate();
    let open = 0;
    let written = 0;
    const talker = https.createServer({ cert: tls.cert, key: tls.key }, (_req, res) => {
      open++;
      res.writeHead(201);
      const timer = setInterval(() => {
        written += 64 * 1024;
        res.write(Buffer.alloc(64 * 1024, 'a'));
      }, 10);
      res.on('close', () => {
        clearInterval(timer);
        open--;
      });
    });
    await new Promise<void>((resolve) => talker.listen(0, '127.0.0.1', resolve));
    const { port } = talker.address() as AddressInfo;
    const adapter = createWebPushAdapter({
      timeoutMs: 1_000,
      vapid: { subject: 'mailto:ops@example.com', ...webPush.generateVAPIDKeys() },
      guard: createAddressGuard(['127.0.0.1/32']),
      ca: tls.cert,
      connections: 4,
    });
    try {
      const sub = browsers.subscribe();
      const endpoint = `https://127.0.0.1:${port}/push/endless`;
      const web = push({ platform: 'webpush', token: endpoint, subscription: { endpoint, keys: sub.keys } });
      const outcome = await adapter.send(task(web, contents.push), new AbortController().signal);
      expect(outcome).toMatchObject({ kind: 'sent', statusCode: 201 });
      expect(outcome.response?.length ?? 0).toBeLessThanOrEqual(1024);
      await until('the endless answer cut off', 2_000, () => (open === 0 ? true : undefined));
      expect(written).toBeLessThan(10 * 64 * 1024);
    } finally {
      await adapter.close();
      await new Promise<void>((resolve) => talker.close(() => resolve()));
      tls.remove();
    }
  });
});
