// The in-app inbox over RPC: StreamNotifications (replay after a seq, then live, no gap and no duplicate at
// the seam, heartbeats), ListNotifications, MarkNotifications (state pushed to every device), exact unread
// counts, in-app delivery status, and who may see what. Runs on every available engine.
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Channel,
  DeliveryStatus,
  MarkAction,
  type NotificationServiceClient,
  type StreamNotificationsResponse,
} from '../../clients/node/index.js';
import { engines } from '../support/engines.js';
import { rejection } from '../support/errors.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

/** A running StreamNotifications call that collects its events. */
function follow(client: NotificationServiceClient, userId: string, afterSeq = 0n) {
  const events: StreamNotificationsResponse[] = [];
  const controller = new AbortController();
  const done = (async () => {
    try {
      for await (const event of client.streamNotifications(
        { userId, afterSeq },
        { signal: controller.signal },
      )) {
        events.push(event);
      }
    } catch (error) {
      if (!controller.signal.aborted) throw error;
    }
  })();
  const seqs = () =>
    events.flatMap((e) => (e.event.case === 'notification' ? [Number(e.event.value.seq)] : []));
  const lastUnread = () => {
    const counts = events.flatMap((e) =>
      e.event.case === 'unreadCount' ? [Number(e.event.value.count)] : [],
    );
    return counts.at(-1);
  };
  return {
    events,
    seqs,
    lastUnread,
    async stop() {
      controller.abort();
      await done;
    },
  };
}

describe.each(engines())('inbox on $name', (engine) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(engine, { overrides: { HERALD_STREAM_HEARTBEAT_MS: '300' } });
  });
  afterAll(() => server?.stop());

  const send = (userId: string, title = 'Hello', channels = [Channel.IN_APP]) =>
    server.admin().send({ userId, type: 'chat.message', title, channels });

  it("replays what came after the client's seq, then streams live notifications and the unread count", async () => {
    const first = await send('stream-1', 'one');
    await send('stream-1', 'two');
    await send('stream-1', 'three');
    const stream = follow(server.admin(), 'stream-1', first.seq);
    await until('replay', 5_000, () => (stream.seqs().length === 2 ? true : undefined));
    const live = await send('stream-1', 'four');
    await until('live', 5_000, () => (stream.seqs().includes(Number(live.seq)) ? true : undefined));
    await until('unread 4', 5_000, () => (stream.lastUnread() === 4 ? true : undefined));
    await stream.stop();
    expect(stream.seqs()).toEqual([Number(first.seq) + 1, Number(first.seq) + 2, Number(live.seq)]);
    const titles = stream.events.flatMap((e) =>
      e.event.case === 'notification' ? [e.event.value.title] : [],
    );
    expect(titles).toEqual(['two', 'three', 'four']);
  });

  it('leaves out notifications without an in-app delivery', async () => {
    await server.admin().send({
      userId: 'stream-2',
      type: 'password.reset',
      title: 'Reset',
      channels: [Channel.EMAIL],
      recipient: { email: 'a@example.com' },
    });
    const inApp = await send('stream-2', 'visible');
    const { notifications, unreadCount } = await server.admin().listNotifications({ userId: 'stream-2' });
    expect(notifications.map((n) => n.id)).toEqual([inApp.notificationId]);
    expect(unreadCount).toBe(1n);
  });

  it('misses nothing and repeats nothing across a reconnect racing 1,000 Sends', async () => {
    const userId = 'seam-1';
    let stream = follow(server.admin(), userId);
    const seen: number[] = [];
    const sender = (async () => {
      for (let i = 0; i < 50; i++) {
        await Promise.all(Array.from({ length: 20 }, (_, j) => send(userId, `m${i * 20 + j}`)));
      }
    })();
    // Reconnect a few times while the Sends run, each time from the last seq the client saw.
    for (let round = 0; round < 3; round++) {
      await new Promise((resolve) => setTimeout(resolve, 150));
      await stream.stop();
      seen.push(...stream.seqs());
      stream = follow(server.admin(), userId, BigInt(seen.at(-1) ?? 0));
    }
    await sender;
    await until('all 1,000', 60_000, () => (seen.length + stream.seqs().length >= 1_000 ? true : undefined));
    await stream.stop();
    seen.push(...stream.seqs());
    expect(seen).toHaveLength(1_000);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(new Set(seen).size).toBe(1_000);
  }, 90_000);

  it('pages the inbox newest first with an opaque cursor and keeps unread counts exact past 100', async () => {
    const userId = 'list-1';
    await server.admin().sendBatch({
      requests: Array.from({ length: 150 }, (_, i) => ({
        userId,
        type: i % 2 ? 'chat.message' : 'order.shipped',
        title: `n${i}`,
        channels: [Channel.IN_APP],
      })),
    });
    const first = await server.admin().listNotifications({ userId, limit: 100 });
    expect(first.notifications).toHaveLength(100);
    expect(first.unreadCount).toBe(150n);
    const second = await server.admin().listNotifications({ userId, limit: 100, cursor: first.nextCursor });
    expect(second.notifications).toHaveLength(50);
    expect(second.nextCursor).toBe('');
    const seqs = [...first.notifications, ...second.notifications].map((n) => Number(n.seq));
    expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
    const shipped = await server.admin().listNotifications({ userId, limit: 100, type: 'order.shipped' });
    expect(shipped.notifications.every((n) => n.type === 'order.shipped')).toBe(true);
    expect(shipped.notifications).toHaveLength(75);
  });

  it('marks by ids and up to a seq, and pushes the change to every device of the user', async () => {
    const userId = 'mark-1';
    const sent = [];
    for (let i = 0; i < 5; i++) sent.push(await send(userId, `m${i}`));
    const phone = follow(server.admin(), userId, sent.at(-1)!.seq);
    const laptop = follow(server.admin(), userId, sent.at(-1)!.seq);
    await until('both connected', 5_000, () =>
      phone.lastUnread() === 5 && laptop.lastUnread() === 5 ? true : undefined,
    );

    const byId = await server.admin().markNotifications({
      userId,
      notificationIds: [sent[0]!.notificationId],
      action: MarkAction.READ,
    });
    expect([byId.updated, byId.unreadCount]).toEqual([1n, 4n]);
    const upTo = await server
      .admin()
      .markNotifications({ userId, upToSeq: sent[2]!.seq, action: MarkAction.READ });
    expect([upTo.updated, upTo.unreadCount]).toEqual([2n, 2n]);
    const archived = await server.admin().markNotifications({
      userId,
      notificationIds: [sent[4]!.notificationId],
      action: MarkAction.ARCHIVED,
    });
    expect(archived.unreadCount).toBe(1n);

    for (const device of [phone, laptop]) {
      await until('state pushed', 5_000, () => (device.lastUnread() === 1 ? true : undefined));
      const states = device.events.flatMap((e) => (e.event.case === 'state' ? [e.event.value] : []));
      expect(states.map((s) => [s.action, s.notificationIds.length])).toEqual([
        [MarkAction.READ, 1],
        [MarkAction.READ, 2],
        [MarkAction.ARCHIVED, 1],
      ]);
      expect(states[0]!.readAt).toBeDefined();
    }
    await phone.stop();
    await laptop.stop();
    const unarchived = await server.admin().listNotifications({ userId, archived: true });
    expect(unarchived.notifications.map((n) => n.id)).toEqual([sent[4]!.notificationId]);

    // The undoing marks clear a time rather than set one.
    const back = await server.admin().markNotifications({
      userId,
      notificationIds: [sent[4]!.notificationId],
      action: MarkAction.UNARCHIVED,
    });
    expect([back.updated, back.unreadCount]).toEqual([1n, 2n]);
    const unread = await server
      .admin()
      .markNotifications({ userId, upToSeq: sent[2]!.seq, action: MarkAction.UNREAD });
    expect([unread.updated, unread.unreadCount]).toEqual([3n, 5n]);
    expect((await server.admin().listNotifications({ userId, archived: true })).notifications).toEqual([]);
  });

  it('keeps the live unread count exact while devices mark at once and Sends keep coming', async () => {
    const userId = 'mark-race';
    const sent = [];
    for (let i = 0; i < 12; i++) sent.push(await send(userId, `r${i}`));
    const device = follow(server.admin(), userId);
    await until('connected', 5_000, () => (device.lastUnread() === 12 ? true : undefined));
    // Twelve marks from "different devices" at once, with four more Sends among them: each mark answers the
    // count after itself, and the stream must end on the truth however its events were ordered.
    const marks = sent.map((s) =>
      server
        .admin()
        .markNotifications({ userId, notificationIds: [s.notificationId], action: MarkAction.READ }),
    );
    const more = [0, 1, 2, 3].map((i) => send(userId, `late${i}`));
    const answers = await Promise.all(marks);
    await Promise.all(more);
    expect(answers.every((a) => a.updated === 1n)).toBe(true);
    await until('the true count', 5_000, () => (device.lastUnread() === 4 ? true : undefined));
    const list = await server.admin().listNotifications({ userId, unreadOnly: true, limit: 100 });
    expect([list.unreadCount, list.notifications.length]).toEqual([4n, 4]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(device.lastUnread()).toBe(4);
    await device.stop();
  });

  it('marks an in-app delivery sent once it is written to a live connection', async () => {
    const userId = 'status-1';
    const stream = follow(server.admin(), userId);
    await until('connected', 5_000, () => (stream.lastUnread() === 0 ? true : undefined));
    const sent = await send(userId);
    const delivery = await until('sent', 5_000, async () => {
      const n = (await server.admin().getNotification({ notificationId: sent.notificationId })).notification!;
      const d = n.deliveries[0]!;
      return d.status === DeliveryStatus.SENT ? d : undefined;
    });
    expect(delivery.reason).toBe('written to a live connection');
    await stream.stop();
    const offline = await send('status-nobody');
    expect(offline.deliveries[0]?.status).toBe(DeliveryStatus.QUEUED);
  });

  it('sends heartbeats on an idle stream', async () => {
    const stream = follow(server.admin(), 'idle-1');
    await until('two heartbeats', 5_000, () =>
      stream.events.filter((e) => e.event.case === 'heartbeat').length >= 2 ? true : undefined,
    );
    await stream.stop();
  });

  it('lets a user token stream, list and mark only its own inbox', async () => {
    const mine = await send('owner-1', 'private');
    const token = await server.userToken('owner-1');
    const own = server.client({ token });
    const stream = follow(own, '');
    await until('own stream', 5_000, () => (stream.seqs().includes(Number(mine.seq)) ? true : undefined));
    await stream.stop();
    expect((await own.listNotifications({})).notifications.map((n) => n.id)).toEqual([mine.notificationId]);

    const intruder = server.client({ token: await server.userToken('intruder') });
    const denied = [
      await rejection(intruder.listNotifications({ userId: 'owner-1' })),
      await rejection(
        intruder.markNotifications({ userId: 'owner-1', upToSeq: mine.seq, action: MarkAction.READ }),
      ),
      await rejection(
        (async () => {
          for await (const _ of intruder.streamNotifications({ userId: 'owner-1' })) break;
        })(),
      ),
    ];
    expect(denied.map((e) => e.code)).toEqual([
      Code.PermissionDenied,
      Code.PermissionDenied,
      Code.PermissionDenied,
    ]);
    // Marking another user's notification by id from one's own inbox changes nothing.
    const foreign = await intruder.markNotifications({
      notificationIds: [mine.notificationId],
      action: MarkAction.READ,
    });
    expect(foreign.updated).toBe(0n);
    const still = await own.listNotifications({ unreadOnly: true });
    expect(still.notifications.map((n) => n.id)).toEqual([mine.notificationId]);
  });

  it('rejects bad input naming the field', async () => {
    const cases: [() => Promise<unknown>, string][] = [
      [() => server.admin().listNotifications({ userId: 'x', limit: 101 }), 'limit: must be 1..100'],
      [
        () => server.admin().listNotifications({ userId: 'x', cursor: 'nonsense' }),
        'cursor: is not a cursor',
      ],
      [() => server.admin().listNotifications({ userId: 'x', type: 'a b' }), 'type: must be'],
      [() => server.admin().listNotifications({ userId: '' }), 'user_id: is required'],
      [() => server.admin().markNotifications({ userId: 'x', upToSeq: 1n }), 'action: must be READ'],
      [
        () =>
          server
            .admin()
            .markNotifications({ userId: 'x', notificationIds: ['nope'], action: MarkAction.READ }),
        'notification_ids[0]: must be a UUID',
      ],
      [
        () => server.admin().markNotifications({ userId: 'x', action: MarkAction.READ }),
        'up_to_seq: must be positive',
      ],
      [
        async () => {
          for await (const _ of server.admin().streamNotifications({ userId: 'x', afterSeq: -1n })) break;
        },
        'after_seq: must be 0..9007199254740991',
      ],
      [
        async () => {
          const afterSeq = 2n ** 63n - 1n;
          for await (const _ of server.admin().streamNotifications({ userId: 'x', afterSeq })) break;
        },
        'after_seq: must be 0..9007199254740991',
      ],
      [
        () =>
          server.admin().markNotifications({ userId: 'x', upToSeq: 2n ** 63n - 1n, action: MarkAction.READ }),
        'up_to_seq: must be at most 9007199254740991',
      ],
    ];
    for (const [call, message] of cases) {
      const error = await rejection(call());
      expect([error.code, error.rawMessage]).toEqual([
        Code.InvalidArgument,
        expect.stringContaining(message),
      ]);
    }
  });
});
