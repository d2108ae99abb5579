// Group commit: Sends beyond the statement limit wait and are written together, each caller gets exactly its
// own results, nothing waits while a slot is free, and a failed statement fails exactly its group.
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/core/ids.js';
import {
  createGroupCommitWriter,
  prepareSend,
  type SqlParam,
  type SqlRunner,
} from '../../src/store/index.js';
import { notifications } from '../../src/store/schema.js';
import { engines, type TestDatabase } from '../support/engines.js';
import { newNotification, plainPlanner } from '../support/notifications.js';

const prepare = (userId: string, title: string) =>
  prepareSend(
    newNotification(userId, { type: 'group.test', data: { title }, title, channels: ['in_app', 'email'] }),
    newId(),
    null,
    plainPlanner,
  );

/** Counts statements and holds them until released, like a slow database. */
function gatedRunner(inner: SqlRunner) {
  let release: () => void = () => {};
  let gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const statements: number[] = [];
  const runner: SqlRunner = {
    async query<Row extends Record<string, unknown>>(text: string, params: readonly SqlParam[]) {
      statements.push((JSON.parse(String(params[0])) as unknown[]).length);
      await gate;
      return inner.query<Row>(text, params);
    },
  };
  return {
    runner,
    statements,
    open() {
      release();
      gate = Promise.resolve();
    },
  };
}

describe.each(engines())('group commit ($name)', (engine) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await engine.open();
  });
  afterAll(() => db?.destroy());

  it('writes Sends that arrive while the slots are busy as one statement, answering each caller with its own', async () => {
    const gated = gatedRunner(db.database.sql);
    const write = createGroupCommitWriter(gated.runner, { maxStatements: 1, maxItems: 1000 });
    const first = write([prepare('gc-a', 'a1')]);
    const waiting = [
      write([prepare('gc-a', 'a2')]),
      write([prepare('gc-b', 'b1'), prepare('gc-a', 'a3')]),
      write([prepare('gc-c', 'c1')]),
    ];
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(gated.statements).toEqual([1]); // one slot: the first runs, the rest wait
    gated.open();
    const [one, ...rest] = await Promise.all([first, ...waiting]);
    expect(gated.statements).toEqual([1, 4]); // the three waiting requests went as one statement

    expect(one!.map((r) => r.seq)).toEqual([1]);
    expect(rest.map((results) => results.map((r) => r.seq))).toEqual([[2], [1, 3], [1]]);
    const titles = await Promise.all(
      [one!, ...rest].flat().map(async (r) => {
        const [row] = await db.database.db
          .select()
          .from(notifications)
          .where(eq(notifications.id, r.notificationId));
        return `${row?.userId}:${row?.title}:${r.deliveries.map((d) => `${d.channel}/${d.status}`).join(',')}`;
      }),
    );
    expect(titles).toEqual([
      'gc-a:a1:in_app/queued,email/skipped',
      'gc-a:a2:in_app/queued,email/skipped',
      'gc-b:b1:in_app/queued,email/skipped',
      'gc-a:a3:in_app/queued,email/skipped',
      'gc-c:c1:in_app/queued,email/skipped',
    ]);
  });

  it('makes nothing wait while a slot is free', async () => {
    const gated = gatedRunner(db.database.sql);
    gated.open();
    const write = createGroupCommitWriter(gated.runner, { maxStatements: 4, maxItems: 1000 });
    await Promise.all([
      write([prepare('gc-d', 'd1')]),
      write([prepare('gc-d', 'd2')]),
      write([prepare('gc-e', 'e1')]),
    ]);
    expect(gated.statements).toEqual([1, 1, 1]);
  });

  it('never groups past maxItems', async () => {
    const gated = gatedRunner(db.database.sql);
    const write = createGroupCommitWriter(gated.runner, { maxStatements: 1, maxItems: 3 });
    const all = [
      write([prepare('gc-f', 'f1')]),
      write([prepare('gc-f', 'f2'), prepare('gc-f', 'f3')]),
      write([prepare('gc-f', 'f4'), prepare('gc-f', 'f5')]),
    ];
    await new Promise((resolve) => setTimeout(resolve, 20));
    gated.open();
    await Promise.all(all);
    expect(gated.statements).toEqual([1, 2, 2]);
  });

  it('fails every member of a statement whose connection failed, and only them', async () => {
    let failNext = true;
    const flaky: SqlRunner = {
      async query<Row extends Record<string, unknown>>(text: string, params: readonly SqlParam[]) {
        if (failNext) {
          failNext = false;
          await new Promise((resolve) => setTimeout(resolve, 30));
          throw Object.assign(new Error('connection reset'), { code: 'ECONNRESET' });
        }
        return db.database.sql.query<Row>(text, params);
      },
    };
    const write = createGroupCommitWriter(flaky, { maxStatements: 1, maxItems: 1000 });
    const failed = write([prepare('gc-g', 'g1')]);
    const grouped = [write([prepare('gc-g', 'g2')]), write([prepare('gc-h', 'h1')])];
    await expect(failed).rejects.toThrow('connection reset');
    const results = await Promise.all(grouped);
    expect(results.map((r) => r[0]!.seq)).toEqual([1, 1]); // g1 was never written, so g2 is the user's first
  });

  it("retries a failed group's callers one by one, so only the caller with bad data fails", async () => {
    const gated = gatedRunner(db.database.sql);
    const write = createGroupCommitWriter(gated.runner, { maxStatements: 1, maxItems: 1000 });
    const first = write([prepare('gc-p', 'p1')]);
    // Waiting while `first` holds the only slot, so these three share one statement. The middle one carries
    // a lone surrogate (validation would refuse it; here it reaches the store): the database rejects it.
    const poisoned = prepareSend(
      newNotification('gc-bad', { data: { v: '\ud800' } }),
      newId(),
      null,
      plainPlanner,
    );
    const innocentA = write([prepare('gc-q', 'q1')]);
    const bad = write([poisoned]).then(
      () => null,
      (error: unknown) => error,
    );
    const innocentB = write([prepare('gc-r', 'r1'), prepare('gc-q', 'q2')]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    gated.open();
    await first;
    expect((await innocentA).map((r) => r.seq)).toEqual([1]);
    expect((await innocentB).map((r) => r.seq)).toEqual([1, 2]);
    expect(await bad).toMatchObject({ code: expect.stringMatching(/^22/) }); // a data exception
    // One statement for `first`, the failed group of three callers, then each of the three alone.
    expect(gated.statements).toEqual([1, 4, 1, 1, 2]);
    const stored = await db.database.db
      .select()
      .from(notifications)
      .where(eq(notifications.userId, 'gc-bad'));
    expect(stored).toEqual([]);
  });
});
