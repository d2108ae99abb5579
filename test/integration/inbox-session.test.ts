// The live inbox session against the bus's worst behaviour: hints that arrive out of order, carry the
// notification or not, or never arrive. Whatever the bus does, the client gets every inbox notification
// once, in seq order. Runs on the embedded engine (the session logic is the same on both).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bus, createMemoryBus, type SessionEvent, type WireInboxRow } from '../../src/realtime/index.js';
import { openInboxSession } from '../../src/realtime/session.js';
import { markInbox, type StoredSend } from '../../src/store/index.js';
import { pgliteEngine, type TestDatabase } from '../support/engines.js';
import { storeInApp } from '../support/inbox.js';
import { until } from '../support/until.js';

const userId = 'session-1';

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

  const storeFor = async (user: string, title: string) => (await storeInApp(db.database, user, [title]))[0]!;
  const store = (title: string) => storeFor(userId, title);

  /** A live session whose events are collected in `events`; any session error fails the test. */
  const follow = (database: typeof db.database, bus: Bus, user: string, events: SessionEvent[]) =>
    openInboxSession({
      database,
      bus,
      userId: user,
      afterSeq: 0,
      emit: (event) => events.push(event),
      onError: (error) => {
        throw error;
      },
    });

  it('writes each notification once and in order, however the hints arrive', async () => {
    const bus = createMemoryBus();
    for (const title of ['one', 'two']) await store(title);
    const events: SessionEvent[] = [];
    const session = await follow(db.database, bus, userId, events);
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

  /** A database whose unread-state reads are counted, and slowed by `delayMs` when asked. */
  function watchedCounts(delayMs: () => number) {
    const calls = { counts: 0 };
    const database = {
      ...db.database,
      sql: {
        ...db.database.sql,
        query: async (text: string, params: readonly (string | number | boolean | null)[]) => {
          if (text.includes('count(*)')) {
            calls.counts += 1;
            await new Promise((resolve) => setTimeout(resolve, delayMs()));
          }
          return db.database.sql.query(text, params);
        },
      },
    } as typeof db.database;
    return { database, calls };
  }

  it('counts unread exactly without a query per notification, and takes a mark only from a later version', async () => {
    const bus = createMemoryBus();
    const user = 'session-3';
    const { database, calls } = watchedCounts(() => 0);
    const events: SessionEvent[] = [];
    const first = await storeFor(user, 'n1');
    const session = await follow(database, bus, user, events);
    const counts = () => events.flatMap((e) => (e.kind === 'unread_count' ? [e.count] : []));
    expect(counts()).toEqual([1]);
    const stored = [first];
    for (const title of ['n2', 'n3', 'n4']) {
      const s = await storeFor(user, title);
      stored.push(s);
      await bus.publish({
        kind: 'notification',
        userId: user,
        seq: s.seq,
        row: { ...wire(s, title), userId: user },
      });
    }
    expect(counts()).toEqual([1, 2, 3, 4]);
    expect(calls.counts).toBe(1); // the one read at the start

    // Marks as Herald publishes them: the mark's own exact state, placed by seq and version.
    const read = await markInbox(
      db.database.sql,
      user,
      { ids: [], upToSeq: stored[1]!.seq },
      'read',
      new Date(),
    );
    expect(read.unread.count).toBe(2);
    await bus.publish({ kind: 'unread_count', userId: user, ...read.unread });
    expect(counts().at(-1)).toBe(2);
    // An older one arriving late (or a duplicate) is left alone.
    await bus.publish({
      kind: 'unread_count',
      userId: user,
      count: 99,
      seq: read.unread.seq,
      version: read.unread.version,
    });
    await bus.publish({ kind: 'unread_count', userId: user, count: 98, seq: 0, version: 0 });
    expect(counts().at(-1)).toBe(2);

    // A newer mark that counted before a notification the session has already written: the session cannot
    // tell whether that one is still unread, so it reads its state again (the truth: n3, n4 and n5).
    const fifth = await storeFor(user, 'n5');
    await bus.publish({
      kind: 'notification',
      userId: user,
      seq: fifth.seq,
      row: { ...wire(fifth, 'n5'), userId: user },
    });
    expect(counts().at(-1)).toBe(3);
    await bus.publish({
      kind: 'unread_count',
      userId: user,
      count: 0,
      seq: fifth.seq - 1,
      version: read.unread.version + 1,
    });
    await until('read again', 5_000, () => (calls.counts === 2 ? true : undefined));
    await until('the truth', 5_000, () =>
      counts().at(-1) === 3 && counts().length === 7 ? true : undefined,
    );
    expect(counts()).toEqual([1, 2, 3, 4, 2, 3, 3]);
    await session.close();
  });

  it('does not leave a notification behind when its hint arrives while the session reads its unread state', async () => {
    const bus = createMemoryBus();
    const user = 'session-2';
    let delay = 0;
    const { database } = watchedCounts(() => delay);
    const events: SessionEvent[] = [];
    const session = await follow(database, bus, user, events);
    const titles = () => events.flatMap((e) => (e.kind === 'notification' ? [e.row.title] : []));
    const a = await storeFor(user, 'a');
    await bus.publish({ kind: 'notification', userId: user, seq: a.seq });
    await until('a written', 5_000, () => (titles().includes('a') ? true : undefined));
    // A resync (the bus was down) makes the session read its state, slowly; a hint without its row lands
    // during that read and must not be lost.
    delay = 300;
    await bus.publish({ kind: 'resync', userId: user });
    const b = await storeFor(user, 'b');
    await bus.publish({ kind: 'notification', userId: user, seq: b.seq });
    await until('b written without another hint', 5_000, () => (titles().includes('b') ? true : undefined));
    const counts = events.flatMap((e) => (e.kind === 'unread_count' ? [e.count] : []));
    expect(counts.at(-1)).toBe(2);
    await session.close();
  });
});
