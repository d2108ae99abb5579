// Provider feedback finds its delivery through the attempt that sent the message: the delivery's latest
// message may move its status, an earlier one of a delivery sent again (replayed) is recognised but not
// "current"; and the migration that introduced per-attempt ids gives messages sent before it their id on the
// delivery's latest sent attempt, so late feedback still finds them. Runs on every available engine.
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConfigCache } from '../../src/delivery/config-cache.js';
import { findDeliveryByProviderMessageId, storeNotifications } from '../../src/store/index.js';
import { engines, type TestDatabase } from '../support/engines.js';
import { newNotification } from '../support/notifications.js';

/** The backfill statement of the migration that added delivery_attempts.provider_message_id. */
function backfillStatement(): string {
  const file = readdirSync('drizzle').find((f) => f.startsWith('0010_'))!;
  const statement = readFileSync(`drizzle/${file}`, 'utf8')
    .split('--> statement-breakpoint')
    .find((s) => s.includes('UPDATE "delivery_attempts"'));
  if (!statement) throw new Error(`no backfill statement in drizzle/${file}`);
  return statement;
}

describe.each(engines())('provider feedback lookup on $name', (engine) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await engine.open();
  });
  afterAll(async () => {
    await db?.destroy();
  });

  /** A stored e-mail delivery with one sent attempt per message id (oldest first), as the dispatcher leaves it. */
  async function sentDelivery(
    userId: string,
    messageIds: (string | null)[],
    current: string,
  ): Promise<string> {
    const config = await createConfigCache(db.database, 60_000, () => new Set(['email'] as const));
    const [stored] = await storeNotifications(
      db.database,
      null,
      [newNotification(userId, { recipient: { email: `${userId}@example.com` }, channels: ['email'] })],
      (item) => config.plan(item),
    );
    config.close();
    const deliveryId = stored!.deliveries[0]!.id;
    await db.database.sql.query(
      `update deliveries set status = 'sent', provider = 'ses', provider_message_id = $2 where id = $1::uuid`,
      [deliveryId, current],
    );
    for (const [i, id] of messageIds.entries()) {
      await db.database.sql.query(
        `insert into delivery_attempts (id, delivery_id, provider, outcome, latency_ms, provider_message_id, started_at)
         values ($1::uuid, $2::uuid, 'ses', 'sent', 5, $3, now() - make_interval(mins => $4::int))`,
        [randomUUID(), deliveryId, id, 10 - i],
      );
    }
    return deliveryId;
  }

  it("tells the delivery's latest message from an earlier one of a replayed delivery", async () => {
    const id = await sentDelivery('replayed', ['ses-first', 'ses-second'], 'ses-second');
    const { sql } = db.database;
    expect(await findDeliveryByProviderMessageId(sql, 'email', 'ses-second')).toMatchObject({
      id,
      current: true,
    });
    expect(await findDeliveryByProviderMessageId(sql, 'email', 'ses-first')).toMatchObject({
      id,
      current: false,
    });
    expect(await findDeliveryByProviderMessageId(sql, 'sms', 'ses-second')).toBeUndefined();
    expect(await findDeliveryByProviderMessageId(sql, 'email', 'ses-unknown')).toBeUndefined();
  });

  it('moves the id of a message sent before the migration onto its latest sent attempt', async () => {
    const id = await sentDelivery('before-upgrade', [null, null], 'ses-old');
    const { sql } = db.database;
    expect(await findDeliveryByProviderMessageId(sql, 'email', 'ses-old')).toBeUndefined();
    await sql.query(backfillStatement(), []);
    expect(await findDeliveryByProviderMessageId(sql, 'email', 'ses-old')).toMatchObject({
      id,
      current: true,
    });
    const attempts = await sql.query<{ provider_message_id: string | null }>(
      'select provider_message_id from delivery_attempts where delivery_id = $1::uuid order by started_at',
      [id],
    );
    expect(attempts.map((a) => a.provider_message_id)).toEqual([null, 'ses-old']);
  });
});
