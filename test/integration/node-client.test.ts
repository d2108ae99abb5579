// The Node client package (clients/node) against a live server: Dates in and out, retries of UNAVAILABLE that
// never send twice, per-call and default deadlines, and a notification stream that resumes by itself after its
// connection is cut, with no notification lost or repeated.
import net from 'node:net';
import { isMessage } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Channel,
  Code,
  ConnectError,
  createHeraldAdminClient,
  createHeraldClient,
  type HeraldClientOptions,
  type Interceptor,
  MarkAction,
  SendRequestSchema,
  StreamNotificationsRequestSchema,
} from '../../clients/node/index.js';
import { pgliteEngine } from '../support/engines.js';
import { rejection } from '../support/errors.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';
import { TcpProxy } from './lifecycle-proxy.js';

const FAST_RETRIES = { maxAttempts: 5, baseDelayMs: 20, maxDelayMs: 200 };

/** Counts the attempts of each method reaching the transport, the streams cancelled and the after_seq each
 * stream was opened with, records Send's idempotency keys, and fails the first `failures` attempts of `method`
 * with UNAVAILABLE: before the server sees them, or after it answered (the answer lost). */
function flakyTransport(method: string, failures: number, when: 'before' | 'after' = 'before') {
  const attempts: Record<string, number> = {};
  const keys: string[] = [];
  const streams: { cancelled: number; afterSeqs: bigint[] } = { cancelled: 0, afterSeqs: [] };
  async function* tapped<T>(requests: AsyncIterable<T>): AsyncIterable<T> {
    for await (const request of requests) {
      if (isMessage(request, StreamNotificationsRequestSchema)) streams.afterSeqs.push(request.afterSeq);
      yield request;
    }
  }
  const interceptor: Interceptor = (next) => async (req) => {
    const n = (attempts[req.method.name] ?? 0) + 1;
    attempts[req.method.name] = n;
    if (!req.stream && isMessage(req.message, SendRequestSchema)) keys.push(req.message.idempotencyKey);
    const fail = req.method.name === method && n <= failures;
    if (fail && when === 'before') throw new ConnectError('connection refused (test)', Code.Unavailable);
    if (req.stream) req.signal.addEventListener('abort', () => streams.cancelled++);
    const response = await next(req.stream ? { ...req, message: tapped(req.message) } : req);
    if (fail) throw new ConnectError('answer lost (test)', Code.Unavailable);
    return response;
  };
  return { interceptor, attempts, keys, streams };
}

describe('Node client package', () => {
  let server: TestServer;
  let proxy: TcpProxy;
  let options: HeraldClientOptions;

  beforeAll(async () => {
    server = await startTestServer(pgliteEngine, {
      overrides: { HERALD_STREAM_HEARTBEAT_MS: '300', HERALD_WEBHOOK_ALLOW_NETWORKS: '127.0.0.1/32' },
    });
    proxy = new TcpProxy('127.0.0.1', server.herald.port);
    await proxy.start();
    options = { baseUrl: server.url, apiKey: server.adminKey, retry: FAST_RETRIES };
  });
  afterAll(async () => {
    await proxy?.stop();
    await server?.stop();
  });

  const inbox = async (userId: string) =>
    (await server.admin().listNotifications({ userId, limit: 100 })).notifications;

  describe('Dates', () => {
    it('takes a Date for a Timestamp field and returns Dates for every Timestamp in the answer', async () => {
      const herald = createHeraldClient(options);
      const sendAt = new Date(Date.now() + 60 * 60_000);
      const expiresAt = new Date(sendAt.getTime() + 60_000);
      const { notificationId } = await herald.send({
        userId: 'dates-1',
        type: 'reminder',
        title: 'Later',
        channels: [Channel.IN_APP],
        sendAt,
        expiresAt,
      });
      const { notification } = await herald.getNotification({ notificationId });
      expect(notification?.sendAt).toEqual(sendAt);
      expect(notification?.expiresAt).toEqual(expiresAt);
      expect(notification?.createdAt).toBeInstanceOf(Date);
      expect(Math.abs(notification!.createdAt!.getTime() - Date.now())).toBeLessThan(60_000);
      // the same notification as the generated client sees it: a Timestamp with the same instant
      const raw = (await server.admin().getNotification({ notificationId })).notification!;
      expect(Number(raw.sendAt!.seconds) * 1000 + raw.sendAt!.nanos / 1e6).toBe(sendAt.getTime());
      // repeated nested messages too
      const delivery = notification!.deliveries[0]!;
      expect(delivery.createdAt).toBeInstanceOf(Date);
    });

    it('converts Timestamps in every item of a batch and in the admin service', async () => {
      const herald = createHeraldClient(options);
      const sendAt = new Date(Date.now() + 30 * 60_000);
      const { results } = await herald.sendBatch({
        requests: [
          { userId: 'dates-2', type: 'reminder', title: 'a', channels: [Channel.IN_APP], sendAt },
          { userId: 'dates-2', type: 'reminder', title: 'b', channels: [Channel.IN_APP] },
        ],
      });
      const first = await herald.getNotification({ notificationId: results[0]!.notificationId });
      expect(first.notification?.sendAt).toEqual(sendAt);
      const admin = createHeraldAdminClient(options);
      const { endpoint } = await admin.createWebhookEndpoint({ url: 'http://127.0.0.1:9/hooks' });
      expect(endpoint?.createdAt).toBeInstanceOf(Date);
      await admin.deleteWebhookEndpoint({ id: endpoint!.id });
    });

    it('refuses an invalid Date with INVALID_ARGUMENT naming the field, before anything is sent', async () => {
      const flaky = flakyTransport('Send', 0);
      const herald = createHeraldClient({ ...options, interceptors: [flaky.interceptor] });
      const error = await rejection(
        herald.sendBatch({
          requests: [{ userId: 'dates-3', type: 't', title: 'x', sendAt: new Date(Number.NaN) }],
        }),
      );
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toBe('requests[0].send_at: must be a valid Date');
      expect(flaky.attempts).toEqual({});
    });
  });

  describe('retries', () => {
    it('retries a Send that failed with UNAVAILABLE, with the same idempotency key, and stores one notification', async () => {
      const flaky = flakyTransport('Send', 2);
      const herald = createHeraldClient({ ...options, interceptors: [flaky.interceptor] });
      const answer = await herald.send({
        userId: 'retry-1',
        type: 't',
        title: 'once',
        channels: [Channel.IN_APP],
      });
      expect(flaky.attempts.Send).toBe(3);
      expect(new Set(flaky.keys).size).toBe(1);
      expect(flaky.keys[0]).toMatch(/^[0-9a-f-]{36}$/);
      expect(answer.idempotentReplay).toBe(false);
      expect((await inbox('retry-1')).map((n) => n.id)).toEqual([answer.notificationId]);
    });

    it('a retry after a lost answer returns the first notification instead of a second', async () => {
      const flaky = flakyTransport('Send', 1, 'after');
      const herald = createHeraldClient({ ...options, interceptors: [flaky.interceptor] });
      const answer = await herald.send({
        userId: 'retry-2',
        type: 't',
        title: 'once',
        channels: [Channel.IN_APP],
      });
      expect(flaky.attempts.Send).toBe(2);
      expect(answer.idempotentReplay).toBe(true);
      expect((await inbox('retry-2')).map((n) => n.id)).toEqual([answer.notificationId]);
    });

    it('gives every batch item its own key, keeps a key the caller gave, and stores each item once', async () => {
      const flaky = flakyTransport('SendBatch', 1, 'after');
      const herald = createHeraldClient({ ...options, interceptors: [flaky.interceptor] });
      const { results } = await herald.sendBatch({
        requests: ['a', 'b', 'c'].map((title) => ({
          userId: 'retry-3',
          type: 't',
          title,
          channels: [Channel.IN_APP],
          ...(title === 'b' ? { idempotencyKey: 'caller-key-b' } : {}),
        })),
      });
      expect(flaky.attempts.SendBatch).toBe(2);
      expect(results.map((r) => r.idempotentReplay)).toEqual([true, true, true]);
      expect((await inbox('retry-3')).map((n) => n.title).sort()).toEqual(['a', 'b', 'c']);
      const again = await server.admin().send({
        userId: 'retry-3',
        type: 't',
        title: 'b',
        channels: [Channel.IN_APP],
        idempotencyKey: 'caller-key-b',
      });
      expect(again.notificationId).toBe(results[1]!.notificationId);
    });

    it('does not retry a call whose repetition would not be harmless, nor an error other than UNAVAILABLE', async () => {
      const flaky = flakyTransport('CancelNotification', 1);
      const herald = createHeraldClient({ ...options, interceptors: [flaky.interceptor] });
      const cancel = await rejection(herald.cancelNotification({ notificationId: crypto.randomUUID() }));
      expect(cancel.code).toBe(Code.Unavailable);
      expect(flaky.attempts.CancelNotification).toBe(1);
      const invalid = await rejection(herald.send({ userId: 'retry-4', type: 'bad type!', title: 'x' }));
      expect(invalid.code).toBe(Code.InvalidArgument);
      expect(flaky.attempts.Send).toBe(1);
    });

    it('gives up after maxAttempts, and retry: false tries once', async () => {
      const flaky = flakyTransport('GetPreferences', 100);
      const herald = createHeraldClient({ ...options, interceptors: [flaky.interceptor] });
      expect((await rejection(herald.getPreferences({ userId: 'retry-5' }))).code).toBe(Code.Unavailable);
      expect(flaky.attempts.GetPreferences).toBe(FAST_RETRIES.maxAttempts);
      const once = flakyTransport('GetPreferences', 100);
      const noRetry = createHeraldClient({ ...options, retry: false, interceptors: [once.interceptor] });
      expect((await rejection(noRetry.getPreferences({ userId: 'retry-5' }))).code).toBe(Code.Unavailable);
      expect(once.attempts.GetPreferences).toBe(1);
    });

    it('rides out a server that cannot be reached and comes back', async () => {
      await proxy.stop(); // connections refused from here on
      const observer = flakyTransport('none', 0);
      const herald = createHeraldClient({
        ...options,
        baseUrl: `http://127.0.0.1:${proxy.port}`,
        retry: { maxAttempts: 20, baseDelayMs: 50, maxDelayMs: 200 },
        interceptors: [observer.interceptor],
      });
      const sending = herald.send({
        userId: 'retry-6',
        type: 't',
        title: 'back',
        channels: [Channel.IN_APP],
      });
      const reading = herald.listNotifications({ userId: 'retry-6' });
      await until('refused attempts', 5_000, () =>
        (observer.attempts.Send ?? 0) >= 2 && (observer.attempts.ListNotifications ?? 0) >= 2
          ? true
          : undefined,
      );
      await proxy.start();
      const sent = await sending;
      expect((await reading).unreadCount).toBeGreaterThanOrEqual(0n);
      expect((await inbox('retry-6')).map((n) => n.id)).toEqual([sent.notificationId]);
    });
  });

  describe('deadlines', () => {
    const sockets = new Set<net.Socket>();
    let silent: net.Server;
    let silentUrl: string;
    beforeAll(async () => {
      // accepts connections and never answers
      silent = net.createServer((socket) => sockets.add(socket));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      silentUrl = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    });
    afterAll(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    });

    it('ends a call at its own timeoutMs, and at the default deadline when it sets none', async () => {
      const herald = createHeraldClient({ baseUrl: silentUrl, apiKey: 'hk_x', defaultTimeoutMs: 300 });
      let started = Date.now();
      const own = await rejection(herald.getPreferences({ userId: 'u' }, { timeoutMs: 150 }));
      expect(own.code).toBe(Code.DeadlineExceeded);
      expect(Date.now() - started).toBeGreaterThanOrEqual(140);
      expect(Date.now() - started).toBeLessThan(1_000);
      started = Date.now();
      const byDefault = await rejection(herald.getPreferences({ userId: 'u' }));
      expect(byDefault.code).toBe(Code.DeadlineExceeded);
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);
      expect(Date.now() - started).toBeLessThan(1_500);
    });

    it('covers all attempts: retries stop when the next one could not start before the deadline', async () => {
      const flaky = flakyTransport('GetPreferences', 100);
      const herald = createHeraldClient({
        ...options,
        retry: { maxAttempts: 100, baseDelayMs: 100, maxDelayMs: 100 },
        interceptors: [flaky.interceptor],
      });
      const started = Date.now();
      const error = await rejection(herald.getPreferences({ userId: 'u' }, { timeoutMs: 400 }));
      expect(error.code).toBe(Code.Unavailable);
      expect(Date.now() - started).toBeLessThan(500);
      expect(flaky.attempts.GetPreferences).toBeGreaterThan(1);
      expect(flaky.attempts.GetPreferences).toBeLessThan(100);
    });
  });

  describe('streamNotifications', () => {
    it.each(['grpc', 'connect', 'grpc-web'] as const)(
      'resumes after its connection is cut, with no notification lost or repeated (%s)',
      async (protocol) => {
        const opens = flakyTransport('none', 0);
        const herald = createHeraldClient({
          ...options,
          protocol,
          baseUrl: `http://127.0.0.1:${proxy.port}`,
          interceptors: [opens.interceptor],
        });
        const userId = `stream-1-${protocol}`;
        const send = (title: string) =>
          server.admin().send({ userId, type: 't', title, channels: [Channel.IN_APP] });
        const first = await send('one');
        const seen: string[] = [];
        const createdAt: unknown[] = [];
        const controller = new AbortController();
        const following = (async () => {
          for await (const event of herald.streamNotifications({ userId }, { signal: controller.signal })) {
            if (event.event.case === 'notification') {
              seen.push(event.event.value.title);
              createdAt.push(event.event.value.createdAt);
            }
          }
        })();
        const second = await send('two');
        await until('the first two', 5_000, () => (seen.length === 2 ? true : undefined));
        await proxy.stop(); // cuts the stream's connection
        await send('three');
        await send('four');
        await new Promise((resolve) => setTimeout(resolve, 300));
        await proxy.start();
        await until('the two sent while cut', 10_000, () => (seen.length >= 4 ? true : undefined));
        await send('five');
        await until('a live one after the resume', 5_000, () => (seen.length >= 5 ? true : undefined));
        controller.abort();
        await following; // ends quietly
        expect(seen).toEqual(['one', 'two', 'three', 'four', 'five']);
        // the first connection from the start, every later one after the last seq received
        expect(opens.streams.afterSeqs[0]).toBe(0n);
        expect(opens.streams.afterSeqs.slice(1).every((seq) => seq === second.seq)).toBe(true);
        expect(opens.streams.afterSeqs.length).toBeGreaterThanOrEqual(2);
        expect(second.seq).toBe(first.seq + 1n);
        expect(createdAt.every((d) => d instanceof Date)).toBe(true);
      },
    );

    it('converts Timestamps in state events, and lets its connection go when the caller stops iterating', async () => {
      const observer = flakyTransport('none', 0);
      const herald = createHeraldClient({ ...options, interceptors: [observer.interceptor] });
      const { notificationId } = await herald.send({
        userId: 'stream-2',
        type: 't',
        title: 'x',
        channels: [Channel.IN_APP],
      });
      let readAt: Date | undefined;
      for await (const event of herald.streamNotifications({ userId: 'stream-2' })) {
        if (event.event.case === 'notification') {
          await herald.markNotifications({
            userId: 'stream-2',
            notificationIds: [notificationId],
            action: MarkAction.READ,
          });
        }
        if (event.event.case === 'state') {
          readAt = event.event.value.readAt;
          break;
        }
      }
      expect(readAt).toBeInstanceOf(Date);
      expect(Math.abs(readAt!.getTime() - Date.now())).toBeLessThan(60_000);
      expect(observer.attempts.StreamNotifications).toBe(1);
      await until('the stream cancelled', 2_000, () => (observer.streams.cancelled === 1 ? true : undefined));
    });

    it('ends with the error when the server refuses the stream for good', async () => {
      const herald = createHeraldClient({ ...options, apiKey: 'hk_not-a-key' });
      const error = await rejection(
        (async () => {
          for await (const _ of herald.streamNotifications({ userId: 'stream-3' })) {
            // nothing arrives
          }
        })(),
      );
      expect(error.code).toBe(Code.Unauthenticated);
    });
  });
});
