// Addresses never contacted again on a channel (e-mail, SMS): the claim's gate skips a delivery to one
// (see deliveries.ts). Addresses are stored normalised by the caller (lower-case e-mail, E.164 phone), the
// form recipients' addresses are stored in, so a lookup is one primary-key probe.
import { and, desc, eq, type SQL, sql } from 'drizzle-orm';
import type { Executor, SqlRunner } from './database.js';
import { suppressions } from './schema.js';

export type SuppressedChannel = 'email' | 'sms';

export interface SuppressionRow {
  channel: SuppressedChannel;
  address: string;
  reason: string;
  /** The delivery whose provider answer caused it; null when an operator added it. */
  deliveryId: string | null;
  createdAt: Date;
  /** created_at as the database holds it (microseconds): where a page ends, for the next page's cursor. */
  position: string;
}

/** Where a page ends: the next page starts after this entry (newest first). */
export interface SuppressionCursor {
  position: string;
  channel: string;
  address: string;
}

const columns = {
  channel: suppressions.channel,
  address: suppressions.address,
  reason: suppressions.reason,
  deliveryId: suppressions.deliveryId,
  createdAt: suppressions.createdAt,
  position: sql<string>`${suppressions.createdAt}::text`,
};

function toRow(row: Omit<SuppressionRow, 'channel'> & { channel: string }): SuppressionRow {
  return { ...row, channel: row.channel === 'sms' ? 'sms' : 'email' };
}

export async function listSuppressions(
  db: Executor,
  filter: { channel: SuppressedChannel | null; address: string | null; after: SuppressionCursor | null },
  limit: number,
): Promise<SuppressionRow[]> {
  const conditions: SQL[] = [];
  if (filter.channel) conditions.push(eq(suppressions.channel, filter.channel));
  if (filter.address !== null) conditions.push(eq(suppressions.address, filter.address));
  const after = filter.after;
  if (after) {
    // Keyset paging on (created_at, channel, address), all descending: one row comparison.
    conditions.push(
      sql`(${suppressions.createdAt}, ${suppressions.channel}, ${suppressions.address}) < (${after.position}::timestamptz, ${after.channel}, ${after.address})`,
    );
  }
  const rows = await db
    .select(columns)
    .from(suppressions)
    .where(and(...conditions))
    .orderBy(desc(suppressions.createdAt), desc(suppressions.channel), desc(suppressions.address))
    .limit(limit);
  return rows.map(toRow);
}

/** Suppresses an address; one already suppressed keeps its original entry, which is returned. */
export async function addSuppression(
  db: Executor,
  entry: { channel: SuppressedChannel; address: string; reason: string; deliveryId?: string | null },
): Promise<{ row: SuppressionRow; created: boolean }> {
  const [inserted] = await db.insert(suppressions).values(entry).onConflictDoNothing().returning(columns);
  if (inserted) return { row: toRow(inserted), created: true };
  const [existing] = await db
    .select(columns)
    .from(suppressions)
    .where(and(eq(suppressions.channel, entry.channel), eq(suppressions.address, entry.address)));
  if (!existing) throw new Error('suppression vanished between insert and read');
  return { row: toRow(existing), created: false };
}

/** Lets an address be contacted again; false when it was not suppressed. */
export async function removeSuppression(
  db: Executor,
  entry: { channel: SuppressedChannel; address: string },
): Promise<boolean> {
  const removed = await db
    .delete(suppressions)
    .where(and(eq(suppressions.channel, entry.channel), eq(suppressions.address, entry.address)))
    .returning({ address: suppressions.address });
  return removed.length > 0;
}

/**
 * A provider said the address is gone: suppress it, naming the delivery. An address already suppressed keeps
 * its first entry (one record per address).
 */
export async function suppressAddress(
  sql: SqlRunner,
  entry: { channel: SuppressedChannel; address: string; reason: string; deliveryId: string | null },
): Promise<void> {
  await sql.query(
    `insert into suppressions (channel, address, reason, delivery_id) values ($1, $2, $3, $4::uuid)
     on conflict (channel, address) do nothing`,
    [entry.channel, entry.address, entry.reason, entry.deliveryId],
  );
}

/** The reason an opt-out (a STOP reply, a provider's "unsubscribed recipient") is recorded with: its prefix. */
export const OPT_OUT_REASON = 'opted_out';

/**
 * The recipient opted back in (START): lifts the address's suppression when it was an opt-out, never one an
 * operator added or a hard failure caused. Answers whether one was lifted.
 */
export async function liftOptOut(
  sql: SqlRunner,
  entry: { channel: SuppressedChannel; address: string },
): Promise<boolean> {
  const rows = await sql.query(
    'delete from suppressions where channel = $1 and address = $2 and starts_with(reason, $3) returning address',
    [entry.channel, entry.address, OPT_OUT_REASON],
  );
  return rows.length > 0;
}
