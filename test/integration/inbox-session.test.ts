// The live inbox session against the bus's worst behaviour: hints that arrive out of order, carry the
// notification or not, or never arrive. Whatever the bus does, the client gets every inbox notification
// once, in seq order. Runs on the embedded engine (the session logic is the same on both).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planDeliveries } from '../../src/core/planning.js';
import { createMemoryBus, type SessionEvent, type WireInboxRow } from '../../src/realtime/index.js';
import { openInboxSession } from '../../src/realtime/session.js';
import { type NewNotification, type StoredSend, storeNotifications } from '../../src/store/index.js';
import { pgliteEngine, type TestDatabase } from '../support/engines.js';
import { until } from '../support/until.js';

const userId = 'session-1';

function item(title: string): NewNotification {
  return {
    userId,
    recipient: {},
    type: 'chat.message',
    priority: 2,
    data: {},
    title,
    body: null,
    channels: ['in_app'],
    idempotencyKey: null,
    requestHash: null,
    sendAt: null,
    expiresAt: null,
  };
}

function wire(stored: StoredSend, title: string): WireInboxRow {
  return {
    id: stored.notificationId,
    userId,
    seq: stored.seq,
    type: 'chat.message',
    priority: 2,
    critical: false,
    data: {},
    title,
    body: null,
    senderKeyId: null,
    idempotencyKey: null,
    sendAt: stored.sendAt.toISOString(),
    expiresAt: null,
    createdAt: stored.createdAt.toISOString(),
  };
}

describe('inbox session', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await pgliteEngine.open();
  });
  afterAll(() => db?.destroy());

  const store = async (title: string) =>
    (
      await storeNotifications(db.database, null, [item(title)], (i) => ({
        critical: false,
        deliveries: planDeliveries({ requested: i.channels, type: i.type, rule: null, endpoints: [] }),
        wakesDispatcher: false,
      }))
    )[0]!;

  it('writes each notification once and in order, however the hints arrive', async () => {
    const bus = createMemoryBus();
    for (const title of ['one', 'two']) await store(title);
    const events: SessionEvent[] = [];
    const session = await openInboxSession({
      database: db.database,
      bus,
      userId,
      afterSeq: 0,
      emit: (event) => events.push(event),
      onError: (error) => {
        throw error;
      },
    });
    const titles = () => events.flatMap((e) => (e.kind === 'notification' ? [e.row.title] : []));
    expect(titles()).toEqual(['one', 'two']);

    // Two Sends commit (3, then 4); the hint for 4 arrives first, carrying its notification. The session
    // cannot know nothing lies between 2 and 4, so it reads Postgres: 3 and 4, in order.
    const third = await store('three');
    const fourth = await store('four');
    await bus.publish({ kind: 'notification', userId, seq: fourth.seq, row: wire(fourth, 'four') });
    await until('3 and 4', 5_000, () => (titles().length === 4 ? true : undefined));
    await bus.publish({ kind: 'notification', userId, seq: third.seq, row: wire(third, 'three') });

    // The next one directly follows what was written: the carried notification is written as it came
    // (its title here differs from the stored one, to show Postgres was not read).
    const fifth = await store('five');
    await bus.publish({
      kind: 'notification',
      userId,
      seq: fifth.seq,
      row: wire(fifth, 'five (from the bus)'),
    });
    await until('5', 5_000, () => (titles().length === 5 ? true : undefined));

    // A hint that never arrives: the next one, whatever it carries, makes the session read the gap.
    await store('six');
    const seventh = await store('seven');
    await bus.publish({ kind: 'notification', userId, seq: seventh.seq, row: wire(seventh, 'seven') });
    await until('6 and 7', 5_000, () => (titles().length === 7 ? true : undefined));

    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(titles()).toEqual(['one', 'two', 'three', 'four', 'five (from the bus)', 'six', 'seven']);
    const seqs = events.flatMap((e) => (e.kind === 'notification' ? [e.row.seq] : []));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    const counts = events.flatMap((e) => (e.kind === 'unread_count' ? [e.count] : []));
    expect(counts.at(-1)).toBe(7);
    await session.close();
  });

  it('does not leave a notification behind when its hint arrives while the session counts unread', async () => {
    const bus = createMemoryBus();
    const user = 'session-2';
    const slowCounts = {
      ...db.database,
      sql: {
        ...db.database.sql,
        // Widens the window between the read and the unread count, where the hint used to be dropped.
        query: async (text: string, params: readonly (string | number | boolean | null)[]) => {
          if (text.includes('count(*)')) await new Promise((resolve) => setTimeout(resolve, 300));
          return db.database.sql.query(text, params);
        },
      },
    } as typeof db.database;
    const events: SessionEvent[] = [];
    const session = await openInboxSession({
      database: slowCounts,
      bus,
      userId: user,
      afterSeq: 0,
      emit: (event) => events.push(event),
      onError: (error) => {
        throw error;
      },
    });
    const storeFor = async (title: string) =>
      (
        await storeNotifications(db.database, null, [{ ...item(title), userId: user }], (i) => ({
          critical: false,
          deliveries: planDeliveries({ requested: i.channels, type: i.type, rule: null, endpoints: [] }),
          wakesDispatcher: false,
        }))
      )[0]!;
    const titles = () => events.flatMap((e) => (e.kind === 'notification' ? [e.row.title] : []));
    // Two hints without rows (a batch): the first starts a read; the second lands during its count.
    const a = await storeFor('a');
    await bus.publish({ kind: 'notification', userId: user, seq: a.seq });
    await until('a written', 5_000, () => (titles().includes('a') ? true : undefined));
    const b = await storeFor('b');
    await bus.publish({ kind: 'notification', userId: user, seq: b.seq });
    await until('b written without another hint', 5_000, () => (titles().includes('b') ? true : undefined));
    await session.close();
  });
});
