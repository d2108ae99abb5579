// Send and SendBatch: validation before any write, one transaction per call, idempotency and per-user seq
// under concurrency. Runs on every available engine.
import type { JsonObject, MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NotificationServiceClient, SendRequestSchema } from '../../clients/node/index.js';
import { Channel, DeliveryStatus, Priority } from '../../clients/node/index.js';
import { idempotencyKeys, notifications } from '../../src/store/schema.js';
import { engines } from '../support/engines.js';
import { rejection } from '../support/errors.js';
import { rowCounts } from '../support/rows.js';
import { startTestServer, type TestServer } from '../support/server.js';

type SendInit = MessageInitShape<typeof SendRequestSchema>;

const now = Date.now();
const at = (offsetMs: number) => timestampFromDate(new Date(now + offsetMs));
const DAY = 24 * 3600 * 1000;

/** `{ a: { a: ... { a: 1 } } }` with `levels` objects. */
function nested(levels: number): JsonObject {
  let value: JsonObject = { a: 1 };
  for (let i = 1; i < levels; i++) value = { a: value };
  return value;
}

const invalidSends: [string, SendInit, string][] = [
  ['empty user_id', { userId: '' }, 'user_id: is required'],
  ['user_id with a space', { userId: 'a b' }, 'user_id: must be 1..128 characters'],
  ['user_id over 128 characters', { userId: 'u'.repeat(129) }, 'user_id: must be 1..128'],
  ['empty type', { type: '' }, 'type: is required'],
  ['type with a slash', { type: 'order/shipped' }, 'type: must be'],
  ['empty title', { title: '' }, 'title: must be 1..256 characters'],
  ['title over 256 characters', { title: 't'.repeat(257) }, 'title: must be 1..256'],
  ['body over 4096 characters', { body: 'b'.repeat(4097) }, 'body: must be at most 4096'],
  ['data over 64 KiB', { data: { blob: 'x'.repeat(70_000) } }, 'data: must be at most 65536 bytes'],
  ['NUL in title', { title: 'a\u0000b' }, 'title: must not contain NUL characters'],
  ['NUL in body', { body: 'a\u0000b' }, 'body: must not contain NUL characters'],
  [
    'NUL deep in data',
    { data: { list: [{ note: 'x\u0000' }] } },
    'data.list[0].note: must not contain NUL characters',
  ],
  ['NUL in a data key', { data: { 'k\u0000': 1 } }, 'data["k\\u0000"]: key must not contain NUL characters'],
  ['data nested 33 levels deep', { data: nested(33) }, 'data: must be nested at most 32 levels deep'],
  ['Infinity in data', { data: { x: Number.POSITIVE_INFINITY } }, 'data.x: must be a finite number'],
  ['NaN deep in data', { data: { list: [1, Number.NaN] } }, 'data.list[1]: must be a finite number'],
  ['bad e-mail', { recipient: { email: 'not-an-email' } }, 'recipient.email: must be a valid e-mail'],
  ['e-mail without domain dot', { recipient: { email: 'a@localhost' } }, 'recipient.email:'],
  [
    'phone not E.164',
    { recipient: { phone: '0151 1234' } },
    'recipient.phone: must be a valid phone number in international form',
  ],
  ['phone with leading zero', { recipient: { phone: '+0151123' } }, 'recipient.phone:'],
  ['unknown time zone', { recipient: { timezone: 'Mars/Olympus' } }, 'recipient.timezone: must be an IANA'],
  ['bad locale', { recipient: { locale: 'not a locale!' } }, 'recipient.locale: must be a BCP 47'],
  ['unspecified channel', { channels: [Channel.UNSPECIFIED] }, 'channels[0]: must be IN_APP'],
  ['unknown channel number', { channels: [Channel.IN_APP, 99 as Channel] }, 'channels[1]: must be'],
  ['duplicate channel', { channels: [Channel.EMAIL, Channel.EMAIL] }, 'channels[1]: names a channel twice'],
  ['unknown priority', { priority: 9 as Priority }, 'priority: must be LOW, NORMAL, HIGH or CRITICAL'],
  ['bad idempotency key', { idempotencyKey: 'has space' }, 'idempotency_key: must be'],
  ['send_at too far ahead', { sendAt: at(400 * DAY) }, 'send_at: must be within 366 days'],
  ['send_at long past', { sendAt: at(-2 * DAY) }, 'send_at: must not be more than 24 hours in the past'],
  ['expires_at in the past', { expiresAt: at(-1000) }, 'expires_at: must be in the future'],
  [
    'expires_at before send_at',
    { sendAt: at(DAY), expiresAt: at(DAY / 2) },
    'expires_at: must be after send_at',
  ],
  [
    'timestamp nanos out of range',
    { sendAt: { seconds: BigInt(Math.floor(now / 1000)), nanos: 2e9 } },
    'send_at:',
  ],
];

describe.each(engines())('Send ($name)', (engine) => {
  let server: TestServer;
  let herald: NotificationServiceClient;
  beforeAll(async () => {
    server = await startTestServer(engine);
    herald = server.admin();
  });
  afterAll(() => server?.stop());

  const valid = (overrides: SendInit = {}) => ({
    userId: 'val-user',
    type: 'order.shipped',
    title: 'Shipped',
    ...overrides,
  });

  describe('rejects bad input with INVALID_ARGUMENT naming the field, and writes nothing', () => {
    it.each(invalidSends)('%s', async (_name, overrides, message) => {
      const before = await rowCounts(server.db.database.db);
      const error = await rejection(herald.send(valid(overrides)));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toContain(message);
      expect(await rowCounts(server.db.database.db)).toEqual(before);
    });

    it('names the index of the bad item in a batch and writes none of the good ones', async () => {
      const before = await rowCounts(server.db.database.db);
      const error = await rejection(
        herald.sendBatch({
          requests: [valid({ userId: 'b1' }), valid({ userId: 'b2' }), valid({ recipient: { phone: '12' } })],
        }),
      );
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toBe(
        'requests[2].recipient.phone: must be a valid phone number in international form, such as +4915112345678',
      );
      expect(await rowCounts(server.db.database.db)).toEqual(before);
    });

    it('refuses an empty batch, a batch over 1,000 and a key repeated within a batch', async () => {
      expect((await rejection(herald.sendBatch({ requests: [] }))).rawMessage).toBe(
        'requests: must hold 1..1000 items',
      );
      const tooMany = Array.from({ length: 1001 }, (_, i) => valid({ userId: `u${i}` }));
      expect((await rejection(herald.sendBatch({ requests: tooMany }))).code).toBe(Code.InvalidArgument);
      const repeated = await rejection(
        herald.sendBatch({ requests: [valid({ idempotencyKey: 'k' }), valid({ idempotencyKey: 'k' })] }),
      );
      expect(repeated.rawMessage).toBe('requests[1].idempotency_key: repeats requests[0].idempotency_key');
    });
  });

  // Lone UTF-16 surrogates reach the server only through JSON (binary protobuf carries UTF-8, which cannot
  // encode them), so these requests are Connect JSON written by hand, as a careless client would send them.
  describe('refuses strings PostgreSQL cannot store, sent as Connect JSON', () => {
    const postJson = (body: string) =>
      fetch(`${server.url}/herald.v1.NotificationService/Send`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${server.adminKey}` },
        body,
      });
    const request = (fields: string) => `{"userId":"json-user","type":"order.shipped",${fields}}`;

    // String fields are refused by the protobuf JSON decoder itself, which names the field its own way;
    // inside a Struct (data) strings are not checked by the decoder, and Herald's validation names the path.
    it.each([
      ['a lone high surrogate in the title', '"title":"a\\ud800b"', 'SendRequest.title from JSON'],
      ['a lone low surrogate in the body', '"body":"\\udc00"', 'SendRequest.body from JSON'],
      [
        'a lone surrogate deep in data',
        '"data":{"items":[{"note":"x\\ud83d"}]}',
        'data.items[0].note: must be well-formed Unicode',
      ],
      [
        'a lone surrogate in a data key',
        '"data":{"k\\ud800":1}',
        'data["k\\ud800"]: key must be well-formed',
      ],
    ])('%s: INVALID_ARGUMENT naming the field, nothing written', async (_name, fields, message) => {
      const before = await rowCounts(server.db.database.db);
      const res = await postJson(request(fields));
      expect(res.status).toBe(400);
      const answer = (await res.json()) as { code: string; message: string };
      expect(answer.code).toBe('invalid_argument');
      expect(answer.message).toContain(message);
      expect(await rowCounts(server.db.database.db)).toEqual(before);
    });

    it('keeps a surrogate pair (an emoji written as escapes)', async () => {
      const res = await postJson(request('"body":"\\ud83c\\udf89"'));
      expect(res.status).toBe(200);
      const { notificationId } = (await res.json()) as { notificationId: string };
      const { notification } = await herald.getNotification({ notificationId });
      expect(notification?.body).toBe('🎉');
    });

    it('never fails an innocent Send because another caller sent bad text at the same time', async () => {
      const before = await rowCounts(server.db.database.db);
      const poisoned = Array.from({ length: 40 }, (_, i) =>
        postJson(`{"userId":"poison-${i}","type":"order.shipped","data":{"v":"\\ud800"}}`),
      );
      const innocent = Array.from({ length: 200 }, (_, i) =>
        herald.send(valid({ userId: `innocent-${i % 20}`, data: { n: i } })),
      );
      const [bad, good] = await Promise.all([Promise.all(poisoned), Promise.allSettled(innocent)]);
      expect(bad.map((r) => r.status)).toEqual(Array(40).fill(400));
      expect(good.filter((r) => r.status === 'rejected')).toEqual([]);
      const after = await rowCounts(server.db.database.db);
      expect(after.notifications - before.notifications).toBe(200);
    });
  });

  it('accepts the edges of every limit', async () => {
    const response = await herald.send(
      valid({
        userId: `u${'x'.repeat(127)}`,
        title: '🎉'.repeat(256),
        body: 'b'.repeat(4096),
        data: { blob: 'x'.repeat(60_000), deep: nested(31) },
        recipient: { email: 'First.Last+tag@Sub.Example.co.uk', phone: '+4915112345678', locale: 'de-AT' },
        priority: Priority.CRITICAL,
        sendAt: at(DAY),
        expiresAt: at(2 * DAY),
      }),
    );
    const { notification } = await herald.getNotification({ notificationId: response.notificationId });
    expect(notification?.priority).toBe(Priority.CRITICAL);
    expect(notification?.sendAt?.seconds).toBe(at(DAY).seconds);
    expect(notification?.deliveries[0]?.nextAttemptAt?.seconds).toBe(at(DAY).seconds);
  });

  it('stores the recipient profile and uses it for planning', async () => {
    await herald.send(valid({ userId: 'profile-user', recipient: { email: 'P@Example.com' } }));
    const planned = await herald.send(
      valid({
        userId: 'profile-user',
        recipient: { phone: '+1 (415) 555-0100' },
        channels: [Channel.EMAIL, Channel.SMS],
      }),
    );
    // The e-mail from the first Send is kept; the phone from the second is added, in E.164.
    expect(planned.deliveries.map((d) => d.status)).toEqual([DeliveryStatus.QUEUED, DeliveryStatus.QUEUED]);
    const { notification } = await herald.getNotification({ notificationId: planned.notificationId });
    expect(notification!.deliveries.map((d) => d.destination)).toEqual(['p***@example.com', '+14******100']);
    // Control: a recipient with neither address gets both deliveries skipped, each saying why.
    const unreachable = await herald.send(
      valid({ userId: 'profile-none', channels: [Channel.EMAIL, Channel.SMS] }),
    );
    expect(unreachable.deliveries.map((d) => [d.status, d.reason])).toEqual([
      [DeliveryStatus.SKIPPED, 'no_address: recipient has no e-mail address'],
      [DeliveryStatus.SKIPPED, 'no_address: recipient has no phone number'],
    ]);
  });

  describe('idempotency', () => {
    it('returns the original notification for a retried request and writes nothing more', async () => {
      const request = valid({
        userId: 'idem-user',
        idempotencyKey: 'order-42-shipped',
        data: { a: 1, b: [true] },
      });
      const first = await herald.send(request);
      const before = await rowCounts(server.db.database.db);
      const second = await herald.send({ ...request, data: { b: [true], a: 1 } });
      expect(second.notificationId).toBe(first.notificationId);
      expect(second.seq).toBe(first.seq);
      expect(second.idempotentReplay).toBe(true);
      expect(second.deliveries).toEqual(first.deliveries);
      expect(await rowCounts(server.db.database.db)).toEqual(before);
    });

    it("answers a replay with each delivery's status and only the kind of its reason", async () => {
      const request = valid({
        userId: 'idem-reasons',
        idempotencyKey: 'reasons-1',
        channels: [Channel.EMAIL],
      });
      const first = await herald.send(request);
      const reason = first.deliveries[0]!.reason;
      expect(reason).toMatch(/^[a-z_]+: ./); // e.g. no e-mail address on file
      const second = await herald.send(request);
      expect(second.idempotentReplay).toBe(true);
      expect(second.deliveries.map((d) => [d.deliveryId, d.status, d.reason])).toEqual([
        [first.deliveries[0]!.deliveryId, first.deliveries[0]!.status, reason.split(':')[0]],
      ]);
    });

    it('answers ALREADY_EXISTS when the same key comes with a different request', async () => {
      await herald.send(valid({ userId: 'idem-user-2', idempotencyKey: 'k-2' }));
      const error = await rejection(
        herald.send(valid({ userId: 'idem-user-2', idempotencyKey: 'k-2', title: 'Other' })),
      );
      expect(error.code).toBe(Code.AlreadyExists);
      expect(error.rawMessage).toContain('idempotency_key:');
    });

    it('scopes keys to the API key that sent them', async () => {
      const otherKey = await server.keyWith('send');
      const other = server.client({ apiKey: otherKey });
      const a = await herald.send(valid({ userId: 'idem-user-3', idempotencyKey: 'shared' }));
      const b = await other.send(valid({ userId: 'idem-user-3', idempotencyKey: 'shared' }));
      expect(b.notificationId).not.toBe(a.notificationId);
      expect(b.idempotentReplay).toBe(false);
    });

    it('forgets a key after 24 hours', async () => {
      const first = await herald.send(valid({ userId: 'idem-user-4', idempotencyKey: 'old' }));
      await server.db.database.db
        .update(idempotencyKeys)
        .set({ createdAt: sql`now() - interval '25 hours'` })
        .where(eq(idempotencyKeys.notificationId, first.notificationId));
      const second = await herald.send(valid({ userId: 'idem-user-4', idempotencyKey: 'old', title: 'New' }));
      expect(second.notificationId).not.toBe(first.notificationId);
      expect(second.idempotentReplay).toBe(false);
    });

    it('replays keyed items inside a batch and stores only the new ones', async () => {
      const original = await herald.send(valid({ userId: 'idem-batch', idempotencyKey: 'b-1' }));
      const batch = await herald.sendBatch({
        requests: [
          valid({ userId: 'idem-batch', idempotencyKey: 'b-1' }),
          valid({ userId: 'idem-batch', idempotencyKey: 'b-2' }),
        ],
      });
      expect(batch.results[0]).toMatchObject({
        notificationId: original.notificationId,
        idempotentReplay: true,
      });
      expect(batch.results[1]).toMatchObject({ idempotentReplay: false, seq: original.seq + 1n });
    });

    it('turns 50 concurrent identical Sends into exactly one notification', async () => {
      const request = valid({ userId: 'idem-race', idempotencyKey: 'race-1' });
      const responses = await Promise.all(Array.from({ length: 50 }, () => herald.send(request)));
      expect(new Set(responses.map((r) => r.notificationId)).size).toBe(1);
      expect(responses.filter((r) => !r.idempotentReplay)).toHaveLength(1);
      const rows = await server.db.database.db
        .select()
        .from(notifications)
        .where(eq(notifications.userId, 'idem-race'));
      expect(rows).toHaveLength(1);
    });
  });

  describe('per-user seq', () => {
    it('gives 200 concurrent Sends and batches for one user the seqs 1..250, each once', async () => {
      const responses = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          i % 4 === 0
            ? herald.sendBatch({ requests: [valid({ userId: 'seq-user' }), valid({ userId: 'seq-user' })] })
            : herald.send(valid({ userId: 'seq-user' })),
        ),
      );
      const seqs = responses
        .flatMap((r) => ('results' in r ? r.results.map((x) => x.seq) : [r.seq]))
        .map(Number)
        .sort((a, b) => a - b);
      expect(seqs).toEqual(Array.from({ length: 250 }, (_, i) => i + 1));
    });

    it('never hands out a smaller seq to a Send that starts after a larger one committed', async () => {
      // Four workers, each sending sequentially: every Send a worker makes starts after its previous one
      // committed, so each worker must observe strictly increasing seqs while the others interleave.
      const perWorker = await Promise.all(
        Array.from({ length: 4 }, async () => {
          const seen: number[] = [];
          for (let i = 0; i < 25; i++)
            seen.push(Number((await herald.send(valid({ userId: 'mono-user' }))).seq));
          return seen;
        }),
      );
      for (const seen of perWorker) expect(seen).toEqual([...seen].sort((a, b) => a - b));
      expect(new Set(perWorker.flat()).size).toBe(100);
      expect(Math.max(...perWorker.flat())).toBe(100);
    });

    it('keeps seqs separate per user', async () => {
      const a = await herald.send(valid({ userId: 'seq-a' }));
      const b = await herald.send(valid({ userId: 'seq-b' }));
      expect([a.seq, b.seq]).toEqual([1n, 1n]);
    });
  });
});
