// The baseline: the rows Herald's Send stores, written with postgres.js directly. Per notification: one
// transaction with the recipients upsert (reserving the next seq), the notification and its in-app
// delivery. Batched: one transaction per batch with one multi-row statement per table.
import postgres from 'postgres';
import { newId } from '../../src/core/ids.js';
import type { Call } from './load.js';
import { NORMAL_PRIORITY, type NotificationSpec, type Workload } from './workload.js';

type Sql = postgres.Sql;

/** Stands in for the API key id Herald records as sender_key_id (the column has no foreign key). */
const SENDER_KEY_ID = newId();

export function openRawPool(url: string, connections: number): Sql {
  // The same driver settings as Herald's pool (src/store/database.ts), one connection per worker.
  return postgres(url, { max: connections, prepare: true, onnotice: () => {} });
}

function notificationRow(spec: NotificationSpec, id: string, seq: number, sendAt: Date) {
  return {
    id,
    user_id: spec.userId,
    seq,
    type: spec.type,
    priority: NORMAL_PRIORITY,
    data: spec.data,
    title: spec.title,
    body: spec.body,
    sender_key_id: SENDER_KEY_ID,
    idempotency_key: null,
    send_at: sendAt,
    expires_at: null,
  };
}

function deliveryRow(notificationId: string, userId: string, sendAt: Date) {
  return {
    id: newId(),
    notification_id: notificationId,
    user_id: userId,
    channel: 'in_app',
    status: 'queued',
    reason: null,
    next_attempt_at: sendAt,
  };
}

export function rawSendPerTransaction(sql: Sql, workload: Workload): Call {
  return async () => {
    const spec = workload.one();
    await sql.begin(async (tx) => {
      const [recipient] = await tx<{ last_seq: string }[]>`
        insert into recipients (user_id, last_seq) values (${spec.userId}, 1)
        on conflict (user_id) do update
          set last_seq = recipients.last_seq + excluded.last_seq, updated_at = now()
        returning last_seq`;
      const id = newId();
      const sendAt = new Date();
      await tx`insert into notifications ${tx(notificationRow(spec, id, Number(recipient!.last_seq), sendAt))}`;
      await tx`insert into deliveries ${tx(deliveryRow(id, spec.userId, sendAt))}`;
    });
    return 1;
  };
}

/** How many notifications each user has in the batch, users sorted so concurrent batches cannot deadlock. */
function countPerUser(specs: readonly NotificationSpec[]): { user_id: string; last_seq: number }[] {
  const counts = new Map<string, number>();
  for (const spec of specs) counts.set(spec.userId, (counts.get(spec.userId) ?? 0) + 1);
  return [...counts.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([user_id, last_seq]) => ({ user_id, last_seq }));
}

/** Hands out each user's reserved seqs in batch order, as Herald does. */
function assignSeqs(
  specs: readonly NotificationSpec[],
  reserved: readonly { user_id: string; last_seq: string }[],
  perUser: ReadonlyMap<string, number>,
): number[] {
  const next = new Map(reserved.map((r) => [r.user_id, Number(r.last_seq) - perUser.get(r.user_id)! + 1]));
  return specs.map((spec) => {
    const seq = next.get(spec.userId)!;
    next.set(spec.userId, seq + 1);
    return seq;
  });
}

export function rawSendBatched(sql: Sql, workload: Workload, batchSize: number): Call {
  return async () => {
    const specs = workload.batch(batchSize);
    const perUser = countPerUser(specs);
    await sql.begin(async (tx) => {
      const reserved = await tx<{ user_id: string; last_seq: string }[]>`
        insert into recipients ${tx(perUser)}
        on conflict (user_id) do update
          set last_seq = recipients.last_seq + excluded.last_seq, updated_at = now()
        returning user_id, last_seq`;
      const seqs = assignSeqs(specs, reserved, new Map(perUser.map((r) => [r.user_id, r.last_seq])));
      const sendAt = new Date();
      const ids = specs.map(() => newId());
      const notifications = specs.map((spec, i) => notificationRow(spec, ids[i]!, seqs[i]!, sendAt));
      const deliveries = specs.map((spec, i) => deliveryRow(ids[i]!, spec.userId, sendAt));
      await tx`insert into notifications ${tx(notifications)}`;
      await tx`insert into deliveries ${tx(deliveries)}`;
    });
    return batchSize;
  };
}
