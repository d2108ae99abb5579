// The outbox's table: what the outbox provider captured, newest first (ids are UUIDv7), bounded by pruning
// the oldest rows past the configured maximum.
import { and, asc, desc, eq, gt, lt, type SQL } from 'drizzle-orm';
import { newId } from '../core/ids.js';
import type { Executor, SqlRunner } from './database.js';
import { outboxMessages } from './schema.js';

export type OutboxMessageRow = typeof outboxMessages.$inferSelect;

export interface NewOutboxMessage {
  deliveryId: string;
  notificationId: string;
  userId: string;
  channel: string;
  provider: string;
  destination: string;
  message: Record<string, unknown>;
}

/** Stores one captured message; answers its id. */
export async function insertOutboxMessage(sql: SqlRunner, entry: NewOutboxMessage): Promise<string> {
  const id = newId();
  await sql.query(
    `insert into outbox_messages (id, delivery_id, notification_id, user_id, channel, provider, destination, message)
     values ($1::uuid, $2::uuid, $3::uuid, $4, $5, $6, $7, $8::text::jsonb)`,
    [
      id,
      entry.deliveryId,
      entry.notificationId,
      entry.userId,
      entry.channel,
      entry.provider,
      entry.destination,
      JSON.stringify(entry.message),
    ],
  );
  return id;
}

/** Deletes every message older than the newest `keep`. */
export async function pruneOutbox(sql: SqlRunner, keep: number): Promise<number> {
  const rows = await sql.query(
    `delete from outbox_messages where id <= (
       select id from outbox_messages order by id desc offset $1 limit 1)
     returning id`,
    [keep],
  );
  return rows.length;
}

/**
 * Newest first, older than `before` (the id the previous page ended with); or, with `after`, the messages
 * newer than that id, oldest first.
 */
export async function listOutboxMessages(
  db: Executor,
  filter: { channel: string | null; before: string | null; after: string | null; limit: number },
): Promise<OutboxMessageRow[]> {
  const conditions: SQL[] = [];
  if (filter.channel) conditions.push(eq(outboxMessages.channel, filter.channel));
  if (filter.before) conditions.push(lt(outboxMessages.id, filter.before));
  if (filter.after) conditions.push(gt(outboxMessages.id, filter.after));
  return db
    .select()
    .from(outboxMessages)
    .where(and(...conditions))
    .orderBy(filter.after ? asc(outboxMessages.id) : desc(outboxMessages.id))
    .limit(filter.limit);
}

export async function getOutboxMessage(db: Executor, id: string): Promise<OutboxMessageRow | undefined> {
  const [row] = await db.select().from(outboxMessages).where(eq(outboxMessages.id, id));
  return row;
}
