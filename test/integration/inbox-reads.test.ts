// The reads sessions starting together share: many users' replays in one statement (inboxAfterMany) give
// each session exactly what its own read (inboxAfter) gives, every column with the same value and type, a
// page at most each; and one statement answers many users' latest seqs. Runs on every available engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  inboxAfter,
  inboxAfterMany,
  latestInboxSeqs,
  markInbox,
  storeNotifications,
} from '../../src/store/index.js';
import { engines, type TestDatabase } from '../support/engines.js';
import { newNotification, plainPlanner } from '../support/notifications.js';

describe.each(engines())('inbox reads shared by sessions, on $name', (engine) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await engine.open();
    const { database } = db;
    // ann: 5 in her inbox, one read and archived, rich fields; bob: 3; carol: an e-mail only (not in-app).
    await storeNotifications(
      database,
      null,
      [
        ...Array.from({ length: 5 }, (_, i) =>
          newNotification('ann', {
            type: `order.${i}`,
            priority: i === 4 ? 4 : 2,
            data: { i, nested: { ok: true } },
            body: i % 2 ? `body ${i}` : null,
            idempotencyKey: null,
            expiresAt: new Date(Date.now() + 86_400_000),
            sendAt: new Date(Date.now() - 1_000),
          }),
        ),
        ...Array.from({ length: 3 }, () => newNotification('bob')),
        newNotification('carol', { channels: ['email'], recipient: { email: 'carol@example.com' } }),
      ],
      plainPlanner,
    );
    const [first] = await inboxAfter(database.db, 'ann', 0, 1);
    await markInbox(database.sql, 'ann', { ids: [first!.id], upToSeq: null }, 'read', new Date());
    await markInbox(database.sql, 'ann', { ids: [first!.id], upToSeq: null }, 'archived', new Date());
  });
  afterAll(() => db?.destroy());

  it('gives each read what its own read gives, in order, at most a page each', async () => {
    const { database } = db;
    const reads = [
      { userId: 'ann', afterSeq: 0 },
      { userId: 'bob', afterSeq: 1 },
      { userId: 'carol', afterSeq: 0 },
      { userId: 'ann', afterSeq: 3 },
      { userId: 'nobody', afterSeq: 0 },
    ];
    const shared = await inboxAfterMany(database.sql, reads, 3);
    const alone = await Promise.all(reads.map((r) => inboxAfter(database.db, r.userId, r.afterSeq, 3)));
    expect(shared).toEqual(alone);
    expect(shared.map((rows) => rows.map((r) => r.seq))).toEqual([[1, 2, 3], [2, 3], [], [4, 5], []]);
    expect(shared[0]![0]!.readAt).toBeInstanceOf(Date);
    expect(shared[0]![0]!.archivedAt).toBeInstanceOf(Date);
    expect(shared[3]![1]!.data).toEqual({ i: 4, nested: { ok: true } });
  });

  it('reads many users latest inbox seqs at once, leaving out users with an empty inbox', async () => {
    const latest = await latestInboxSeqs(db.database.sql, ['ann', 'bob', 'carol', 'nobody']);
    expect(Object.fromEntries(latest)).toEqual({ ann: 5, bob: 3 });
  });
});
