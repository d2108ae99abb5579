// What providers report after they took a message (SES bounces, complaints, deliveries), applied to the
// delivery they concern, found by the provider's message id. Every change only moves a delivery forward:
// a duplicate or a late event changes nothing.
import { isUuid } from '../core/ids.js';
import type { SqlRunner } from './database.js';

export interface FeedbackDelivery {
  id: string;
  notification_id: string;
  user_id: string;
  status: string;
  type: string;
  /** The provider that sent it, by its configured name. */
  provider: string | null;
  /**
   * The message is the delivery's latest: its feedback may move the delivery's status. Feedback on an earlier
   * message of a delivery sent again (replayed) still suppresses the address, but leaves the status alone.
   */
  current: boolean;
}

/** The delivery a provider message id belongs to (on a channel), or undefined. */
export async function findDeliveryByProviderMessageId(
  sql: SqlRunner,
  channel: string,
  providerMessageId: string,
): Promise<FeedbackDelivery | undefined> {
  // By the attempt that handed the message over: a replayed delivery sent again has a newer id on the delivery,
  // and a bounce of the first message must still find it.
  const rows = await sql.query<FeedbackDelivery & Record<string, unknown>>(
    `select d.id::text as id, d.notification_id::text as notification_id, d.user_id, d.status, n.type,
            a.provider, d.provider_message_id is not distinct from a.provider_message_id as current
     from delivery_attempts a
     join deliveries d on d.id = a.delivery_id
     join notifications n on n.id = d.notification_id
     where a.provider_message_id = $1 and d.channel = $2
     order by a.started_at desc
     limit 1`,
    [providerMessageId, channel],
  );
  return rows[0];
}

/** Sent (or delivered) → failed with the bounce's reason; answers whether it changed. */
export async function markBounced(sql: SqlRunner, deliveryId: string, reason: string): Promise<boolean> {
  const rows = await sql.query(
    `update deliveries set status = 'failed', reason = $2, updated_at = now()
     where id = $1::uuid and status in ('sent', 'delivered') returning id`,
    [deliveryId, reason],
  );
  return rows.length > 0;
}

/**
 * Sent → a provider's final report (an SMS receipt, an SES delivery): delivered, or failed with the reason.
 * Only a delivery still `sent` moves, so the first final report wins and a late or duplicate one changes
 * nothing (a failed delivery stays failed).
 */
export async function markReported(
  sql: SqlRunner,
  deliveryId: string,
  status: 'delivered' | 'failed',
  reason: string,
): Promise<boolean> {
  const rows = await sql.query(
    `update deliveries set status = $2, reason = $3, updated_at = now()
     where id = $1::uuid and status = 'sent' returning id`,
    [deliveryId, status, reason],
  );
  return rows.length > 0;
}

/** A delivery's status by its id (null for an unknown or malformed id). */
export async function deliveryStatus(sql: SqlRunner, deliveryId: string): Promise<string | null> {
  if (!isUuid(deliveryId)) return null;
  const rows = await sql.query<{ status: string }>('select status from deliveries where id = $1::uuid', [
    deliveryId,
  ]);
  return rows[0]?.status ?? null;
}
