// For information only: the same rows written straight into an embedded PGlite (in this process), to
// show how much of Herald-on-PGlite's rate the engine itself allows. PGlite has one connection, so
// concurrent transactions queue inside it.
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { drizzle } from 'drizzle-orm/pglite';
import { migrate } from 'drizzle-orm/pglite/migrator';
import { newId } from '../../src/core/ids.js';
import { migrationsFolder } from '../../src/store/index.js';
import { buildIndexesInPlace } from '../../src/store/online-indexes.js';
import type { Call } from './load.js';
import { NORMAL_PRIORITY, type NotificationSpec, type Workload } from './workload.js';

const SENDER_KEY_ID = newId();
const NOTIFICATION_COLUMNS =
  'id, user_id, seq, type, priority, data, title, body, sender_key_id, idempotency_key, send_at, expires_at';
const DELIVERY_COLUMNS = 'id, notification_id, user_id, channel, status, reason, next_attempt_at';
const UPSERT_SUFFIX = `on conflict (user_id) do update
  set last_seq = recipients.last_seq + excluded.last_seq, updated_at = now()
  returning user_id, last_seq`;

export async function openRawPglite(dataDir: string): Promise<PGlite> {
  const pg = await PGlite.create(dataDir);
  // Herald's schema exactly: its migrations and the indexes built after them.
  await migrate(drizzle(pg), { migrationsFolder });
  await buildIndexesInPlace(async (text) => (await pg.query(text)).rows as Record<string, unknown>[]);
  return pg;
}

/** `($1, $2, ...), (...)` for `rows` rows of `columns` parameters each. */
function placeholders(rows: number, columns: number): string {
  return Array.from(
    { length: rows },
    (_, r) => `(${Array.from({ length: columns }, (_, c) => `$${r * columns + c + 1}`).join(', ')})`,
  ).join(', ');
}

function notificationParams(spec: NotificationSpec, id: string, seq: number, sendAt: Date): unknown[] {
  return [
    id,
    spec.userId,
    seq,
    spec.type,
    NORMAL_PRIORITY,
    spec.data,
    spec.title,
    spec.body,
    SENDER_KEY_ID,
    null,
    sendAt,
    null,
  ];
}

function deliveryParams(notificationId: string, userId: string, sendAt: Date): unknown[] {
  return [newId(), notificationId, userId, 'in_app', 'queued', null, sendAt];
}

async function insertRows(tx: Transaction, specs: NotificationSpec[], seqs: number[]): Promise<void> {
  const sendAt = new Date();
  const ids = specs.map(() => newId());
  await tx.query(
    `insert into notifications (${NOTIFICATION_COLUMNS}) values ${placeholders(specs.length, 12)}`,
    specs.flatMap((spec, i) => notificationParams(spec, ids[i]!, seqs[i]!, sendAt)),
  );
  await tx.query(
    `insert into deliveries (${DELIVERY_COLUMNS}) values ${placeholders(specs.length, 7)}`,
    specs.flatMap((spec, i) => deliveryParams(ids[i]!, spec.userId, sendAt)),
  );
}

/** Reserves seqs for the batch's users (sorted, one row each) and hands them out in batch order. */
async function reserveSeqs(tx: Transaction, specs: NotificationSpec[]): Promise<number[]> {
  const counts = new Map<string, number>();
  for (const spec of specs) counts.set(spec.userId, (counts.get(spec.userId) ?? 0) + 1);
  const users = [...counts.keys()].sort();
  const reserved = await tx.query<{ user_id: string; last_seq: string | number }>(
    `insert into recipients (user_id, last_seq) values ${placeholders(users.length, 2)} ${UPSERT_SUFFIX}`,
    users.flatMap((user) => [user, counts.get(user)!]),
  );
  const next = new Map(
    reserved.rows.map((r) => [r.user_id, Number(r.last_seq) - counts.get(r.user_id)! + 1]),
  );
  return specs.map((spec) => {
    const seq = next.get(spec.userId)!;
    next.set(spec.userId, seq + 1);
    return seq;
  });
}

export function rawPgliteSend(pg: PGlite, workload: Workload, batchSize: number): Call {
  return async () => {
    const specs = workload.batch(batchSize);
    await pg.transaction(async (tx) => insertRows(tx, specs, await reserveSeqs(tx, specs)));
    return batchSize;
  };
}
