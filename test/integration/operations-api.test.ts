// AdminService's operator views, against real deliveries to a local webhook receiver (one endpoint that
// answers 200, one that answers 400, so one delivery fails for good):
// - SearchNotifications: newest first across users; each filter (user, type, channel, status, time range)
//   narrows; cursor pages walk everything once; after_id tails what is newer, oldest first; bad input is
//   INVALID_ARGUMENT naming the field, a cursor naming no notification NOT_FOUND; a key without the admin
//   scope and a user token get nothing.
// - GetDeliveryStats: this minute's webhook figures (created, sent, failed) match what happened.
// - GetProviderHealth: the webhook provider's attempts, failures and latest error (status 400, its delivery),
//   and its circuit on this instance; with two instances sharing a (private) Redis, both report circuits and
//   a stopped one drops out.
// Runs on every available engine; the two-instance case needs PostgreSQL and Redis.
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AdminService,
  type AdminServiceClient,
  Channel,
  createClient,
  createHeraldTransport,
  DeliveryStatus,
} from '../../clients/node/index.js';
import { startWebhookReceiver, type WebhookReceiver } from '../emulators/webhook-receiver.js';
import { engines, postgresEngine, type TestDatabase } from '../support/engines.js';
import { type PrivateRedis, startPrivateRedis } from '../support/redis-server.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

const SETTINGS = {
  HERALD_WEBHOOK_ALLOW_NETWORKS: '127.0.0.1/32',
  HERALD_DISPATCH_POLL_MS: '100',
  HERALD_RETRY_WEBHOOK: 'attempts=1',
};

async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  if (!error) throw new Error('the call succeeded');
  return error;
}

describe.each(engines())('operator views on $name', (engine) => {
  let receiver: WebhookReceiver;
  let server: TestServer;
  let ops: AdminServiceClient;
  const ids: Record<string, string> = {};
  const endpoints: Record<string, string> = {};
  let failedDelivery = '';
  let started: Date;

  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    receiver.script('/bad', [{ status: 400, body: 'no such hook' }]);
    server = await startTestServer(engine, { overrides: SETTINGS });
    ops = server.adminService();
    for (const name of ['ok', 'bad']) {
      const { endpoint } = await ops.createWebhookEndpoint({
        url: `${receiver.url}/${name}`,
        eventTypes: [`ops.${name}`],
      });
      endpoints[name] = endpoint!.id;
    }
    started = new Date(Date.now() - 1_000);
    const send = async (name: string, userId: string, type: string, channels: Channel[]) => {
      ids[name] = (await server.admin().send({ userId, type, channels })).notificationId;
    };
    await send('first', 'ops-u1', 'ops.ok', [Channel.WEBHOOK]);
    await send('second', 'ops-u2', 'ops.ok', [Channel.WEBHOOK, Channel.IN_APP]);
    await send('third', 'ops-u1', 'ops.bad', [Channel.WEBHOOK]);
    await send('fourth', 'ops-u2', 'ops.inbox', [Channel.IN_APP]);
    failedDelivery = await until('the failing webhook given up', 10_000, async () => {
      const { notification } = await server.admin().getNotification({ notificationId: ids.third! });
      const d = notification!.deliveries[0]!;
      return d.status === DeliveryStatus.FAILED ? d.id : undefined;
    });
    await until('both webhooks sent', 10_000, async () => {
      for (const name of ['first', 'second']) {
        const { notification } = await server.admin().getNotification({ notificationId: ids[name]! });
        const webhook = notification!.deliveries.find((d) => d.channel === Channel.WEBHOOK)!;
        if (webhook.status !== DeliveryStatus.SENT) return undefined;
      }
      return true;
    });
  });
  afterAll(async () => {
    await server?.stop();
    await receiver?.close();
  });

  const search = async (filters: Parameters<AdminServiceClient['searchNotifications']>[0]) =>
    (await ops.searchNotifications(filters)).notifications.map((n) => n.id);

  it('lists every user newest first, each filter narrowing', async () => {
    expect(await search({})).toEqual([ids.fourth, ids.third, ids.second, ids.first]);
    expect(await search({ userId: 'ops-u1' })).toEqual([ids.third, ids.first]);
    expect(await search({ type: 'ops.ok' })).toEqual([ids.second, ids.first]);
    expect(await search({ channel: Channel.IN_APP })).toEqual([ids.fourth, ids.second]);
    expect(await search({ status: DeliveryStatus.FAILED })).toEqual([ids.third]);
    expect(await search({ channel: Channel.WEBHOOK, status: DeliveryStatus.SENT })).toEqual([
      ids.second,
      ids.first,
    ]);
    expect(await search({ channel: Channel.IN_APP, status: DeliveryStatus.FAILED })).toEqual([]);
    expect(await search({ userId: 'ops-u2', type: 'ops.inbox' })).toEqual([ids.fourth]);
    expect(await search({ endpointId: endpoints.bad! })).toEqual([ids.third]);
    expect(await search({ endpointId: endpoints.ok!.toUpperCase() })).toEqual([ids.second, ids.first]);
    expect(await search({ createdAfter: timestampFromDate(new Date(Date.now() + 60_000)) })).toEqual([]);
    expect(await search({ createdBefore: timestampFromDate(started) })).toEqual([]);
    expect(await search({ createdAfter: timestampFromDate(started) })).toHaveLength(4);

    // Deliveries come with the notification, without attempts; the failed one says why.
    const [third] = (await ops.searchNotifications({ userId: 'ops-u1', type: 'ops.bad' })).notifications;
    expect(third!.deliveries).toHaveLength(1);
    expect(third!.deliveries[0]!).toMatchObject({
      id: failedDelivery,
      status: DeliveryStatus.FAILED,
      event: 'notification',
    });
    expect(third!.deliveries[0]!.attempts).toEqual([]);
  });

  it('pages with a cursor and tails with after_id', async () => {
    const seen: string[] = [];
    let cursor = '';
    let pages = 0;
    do {
      const page = await ops.searchNotifications({ limit: 1, cursor });
      seen.push(...page.notifications.map((n) => n.id));
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== '' && pages < 10);
    expect(seen).toEqual([ids.fourth, ids.third, ids.second, ids.first]);

    const tail = await ops.searchNotifications({ afterId: ids.second! });
    expect(tail.notifications.map((n) => n.id)).toEqual([ids.third, ids.fourth]);
    expect(tail.nextCursor).toBe('');
    const fifth = await server
      .admin()
      .send({ userId: 'ops-u3', type: 'ops.inbox', channels: [Channel.IN_APP] });
    expect(await search({ afterId: ids.fourth! })).toEqual([fifth.notificationId]);
  });

  it('refuses bad input naming the field, and anyone but an admin', async () => {
    const cases: [Parameters<AdminServiceClient['searchNotifications']>[0], string][] = [
      [{ limit: 201 }, 'limit'],
      [{ limit: -1 }, 'limit'],
      [{ cursor: 'not-an-id' }, 'cursor'],
      [{ afterId: 'x' }, 'after_id'],
      [{ cursor: ids.first!, afterId: ids.second! }, 'after_id'],
      [{ userId: 'a b' }, 'user_id'],
      [{ endpointId: 'endpoint-1' }, 'endpoint_id'],
      [{ type: 'x'.repeat(200) }, 'type'],
      [{ channel: 99 as Channel }, 'channel'],
      [{ status: 42 as DeliveryStatus }, 'status'],
      [
        { createdAfter: timestampFromDate(new Date()), createdBefore: timestampFromDate(started) },
        'created_before',
      ],
    ];
    for (const [request, field] of cases) {
      const error = await refusal(ops.searchNotifications(request));
      expect(error.code, field).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toContain(field);
    }
    for (const [request, field] of [
      [{ windowMinutes: 61 }, 'window_minutes'],
      [{ windowMinutes: -1 }, 'window_minutes'],
    ] as const) {
      const error = await refusal(ops.getProviderHealth(request));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toContain(field);
    }
    expect((await refusal(ops.getDeliveryStats({ windowMinutes: 361 }))).code).toBe(Code.InvalidArgument);
    // A well-formed cursor that names no notification is not an empty page.
    const missing = '01900000-0000-7000-8000-000000000000';
    for (const request of [{ cursor: missing }, { afterId: missing }]) {
      const error = await refusal(ops.searchNotifications(request));
      expect(error.code).toBe(Code.NotFound);
      expect(error.rawMessage).toMatch(/^(cursor|after_id): names no notification/);
    }
    // A user token is refused, whoever the user.
    const asUser = createClient(
      AdminService,
      createHeraldTransport({ baseUrl: server.url, token: await server.userToken('ops-u1') }),
    );
    for (const call of [
      () => asUser.searchNotifications({ userId: 'ops-u1' }),
      () => asUser.getProviderHealth({}),
      () => asUser.getDeliveryStats({}),
    ]) {
      expect((await refusal(call())).code).toBe(Code.PermissionDenied);
    }

    const sender = server.adminService(await server.keyWith('send'));
    for (const call of [
      () => sender.searchNotifications({}),
      () => sender.getProviderHealth({}),
      () => sender.getDeliveryStats({}),
    ]) {
      expect((await refusal(call())).code).toBe(Code.PermissionDenied);
    }
  });

  it('counts this minute of deliveries and attempts per channel', async () => {
    const { points } = await ops.getDeliveryStats({ windowMinutes: 5 });
    const webhook = points.filter((p) => p.channel === Channel.WEBHOOK);
    const total = (field: 'created' | 'sent' | 'failed' | 'retried') =>
      webhook.reduce((sum, p) => sum + Number(p[field]), 0);
    expect(total('created')).toBe(3);
    expect(total('sent')).toBe(2);
    // A webhook endpoint's 400 is an attempt to retry; the policy (one attempt) fails the delivery.
    expect(total('failed')).toBe(1);
    expect(total('retried')).toBe(1);
    expect(webhook.every((p) => p.p95LatencyMs >= 0 && p.minute!.seconds % 60n === 0n)).toBe(true);
    // In-app deliveries are planned (created) but make no provider attempts.
    const inApp = points.filter((p) => p.channel === Channel.IN_APP);
    expect(inApp.reduce((sum, p) => sum + Number(p.created), 0)).toBeGreaterThanOrEqual(2);
    expect(inApp.every((p) => p.sent === 0n)).toBe(true);
    // Oldest minute first.
    const minutes = points.map((p) => Number(p.minute!.seconds));
    expect(minutes).toEqual([...minutes].sort((a, b) => a - b));
  });

  it("reports each provider's attempts, failures, latest errors and circuit", async () => {
    const health = await ops.getProviderHealth({});
    const webhook = health.providers.find((p) => p.channel === Channel.WEBHOOK && p.provider === 'webhook');
    expect(webhook).toBeDefined();
    expect(webhook!.attempts).toBe(3n);
    expect(webhook!.failures).toBe(1n);
    expect(webhook!.lastErrors).toHaveLength(1);
    expect(webhook!.lastErrors[0]!).toMatchObject({
      outcome: 'retry',
      statusCode: 400,
      deliveryId: failedDelivery,
    });
    // One dispatching instance without Redis: its own circuit, closed (a 400 is the endpoint's answer, not
    // the provider failing).
    expect(health.instances).toHaveLength(1);
    expect(webhook!.circuits.map((c) => [c.instance, c.state])).toEqual([[health.instances[0], 'closed']]);
    // Every configured provider is listed, even without attempts (the outbox stands in for e-mail here).
    expect(health.providers.some((p) => p.channel === Channel.EMAIL)).toBe(true);
  });
  it('examines a bounded window per call when a filter has no index, and says where to go on', async () => {
    // 5,010 newer notifications of another type, stored directly: the first page of a search for the
    // failed one examines 5,000 of them, finds nothing, and hands back where it stopped.
    await server.herald.database.sql.query(
      `insert into notifications (id, user_id, seq, type, priority, data, send_at)
       select gen_random_uuid(), 'ops-filler', g, 'ops.filler', 2, '{}'::jsonb, now()
       from generate_series(1, 5010) g`,
      [],
    );
    const first = await ops.searchNotifications({ status: DeliveryStatus.FAILED, limit: 10 });
    expect(first.notifications).toEqual([]);
    expect(first.nextCursor).not.toBe('');
    const second = await ops.searchNotifications({
      status: DeliveryStatus.FAILED,
      limit: 10,
      cursor: first.nextCursor,
    });
    expect(second.notifications.map((n) => n.id)).toEqual([ids.third]);
    expect(second.nextCursor).toBe('');
    // Tailing goes on the same way: from before the fillers, a type seen only after them.
    const later = await server
      .admin()
      .send({ userId: 'ops-u4', type: 'ops.late', channels: [Channel.IN_APP] });
    const tail = await ops.searchNotifications({ afterId: ids.fourth!, type: 'ops.late' });
    expect(tail.notifications).toEqual([]);
    const resumed = await ops.searchNotifications({ afterId: tail.nextCursor, type: 'ops.late' });
    expect(resumed.notifications.map((n) => n.id)).toEqual([later.notificationId]);
    // Filters the index serves are not windowed: a user's notifications come straight.
    expect(await search({ userId: 'ops-u1' })).toEqual([ids.third, ids.first]);
  });
});

const withRedis = Boolean(process.env.TEST_DATABASE_URL && process.env.REDIS_URL);

describe.runIf(withRedis)('provider health across instances (PostgreSQL + Redis)', () => {
  let redis: PrivateRedis;
  let db: TestDatabase;
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    db = await postgresEngine(process.env.TEST_DATABASE_URL!).open();
    const overrides = { ...SETTINGS, REDIS_URL: redis.url, HERALD_LOG_LEVEL: 'warn' };
    a = await startTestServer(postgresEngine(''), { db, overrides });
    b = await startTestServer(postgresEngine(''), { db, overrides });
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop().catch(() => {});
    await db?.destroy();
    await redis?.stop();
  });

  it('shows the circuits of every instance, and drops one that stopped', async () => {
    const both = await until('both instances reporting', 10_000, async () => {
      const { instances } = await a.adminService().getProviderHealth({});
      return instances.length === 2 ? instances : undefined;
    });
    const fromB = await b.adminService().getProviderHealth({});
    expect(fromB.instances).toEqual(both);
    const webhook = fromB.providers.find((p) => p.channel === Channel.WEBHOOK)!;
    expect(webhook.circuits.map((c) => c.instance)).toEqual(both);
    await b.stop();
    const { instances } = await a.adminService().getProviderHealth({});
    expect(instances).toHaveLength(1);
    expect(both).toContain(instances[0]);

    // Redis gone: the instance answers for itself within its read timeout, instead of hanging.
    await redis.kill();
    const started = performance.now();
    const alone = await a.adminService().getProviderHealth({}, { timeoutMs: 5_000 });
    expect(alone.instances).toEqual(instances);
    expect(performance.now() - started).toBeLessThan(5_000);
    await redis.start();
  });
});
