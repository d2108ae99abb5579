// The dispatcher's side of the deliveries table. Claiming takes due deliveries with FOR UPDATE SKIP LOCKED
// and leases them (status 'sending', lease_until): two dispatchers never hold the same delivery, and a
// delivery whose lease ran out (its dispatcher died) is claimed again by any instance. Every later write is
// fenced by the lease it was claimed with, so a dispatcher that lost its lease cannot overwrite the newer
// claim's outcome.
import type { ChannelName, DeliveryStatus } from '../core/channels.js';
import { newId } from '../core/ids.js';
import type { SqlRunner } from './database.js';

/** A claimed delivery with what its attempt needs: the notification, the recipient, their preferences. */
export interface ClaimedDelivery extends Record<string, unknown> {
  id: string;
  notification_id: string;
  user_id: string;
  channel: ChannelName;
  step: number;
  cancel_unless: 'read' | 'seen' | null;
  endpoint_id: string | null;
  event: string;
  payload: Record<string, unknown> | null;
  provider: string | null;
  attempts: number;
  first_attempt_at: Date | null;
  /** The lease as text, exactly as stored: the fence for every later write. */
  lease: string;
  type: string;
  priority: number;
  critical: boolean;
  data: Record<string, unknown>;
  title: string | null;
  body: string | null;
  seq: string;
  notification_created_at: Date;
  send_at: Date;
  expires_at: Date | null;
  read_at: Date | null;
  seen_at: Date | null;
  cancelled_at: Date | null;
  email: string | null;
  phone: string | null;
  locale: string | null;
  timezone: string | null;
  pref_channels: Record<string, boolean> | null;
  pref_types: Record<string, Record<string, boolean>> | null;
  quiet_start: string | null;
  quiet_end: string | null;
  quiet_timezone: string | null;
  endpoint_url: string | null;
  endpoint_enabled: boolean | null;
  endpoint_disabled_reason: string | null;
  endpoint_secret: string | null;
  /** The previous secret while its rotation overlap lasts. */
  endpoint_previous_secret: string | null;
}

const CLAIM = `
with due as (
  select id from deliveries
  where channel = $1
    and ((status = 'queued' and next_attempt_at <= now()) or (status = 'sending' and lease_until < now()))
  order by next_attempt_at
  limit $2
  for update skip locked
),
claimed as (
  update deliveries d
  set status = 'sending', lease_until = now() + make_interval(secs => $3::float8 / 1000), updated_at = now()
  from due where d.id = due.id
  returning d.*
)
select c.id::text as id, c.notification_id::text as notification_id, c.user_id, c.channel, c.step,
       c.cancel_unless, c.endpoint_id::text as endpoint_id, c.event, c.payload, c.provider, c.attempts,
       c.first_attempt_at, c.lease_until::text as lease,
       n.type, n.priority, n.critical, n.data, n.title, n.body, n.seq::text as seq,
       n.created_at as notification_created_at, n.send_at, n.expires_at, n.read_at, n.seen_at, n.cancelled_at,
       r.email, r.phone, r.locale, r.timezone,
       pf.channels as pref_channels, pf.types as pref_types, pf.quiet_start, pf.quiet_end, pf.quiet_timezone,
       e.url as endpoint_url, e.enabled as endpoint_enabled, e.disabled_reason as endpoint_disabled_reason,
       e.secret as endpoint_secret,
       case when e.previous_secret_until > now() then e.previous_secret end as endpoint_previous_secret
from claimed c
join notifications n on n.id = c.notification_id
left join recipients r on r.user_id = c.user_id
left join preferences pf on pf.user_id = c.user_id
left join webhook_endpoints e on e.id = c.endpoint_id
order by c.next_attempt_at`;

/** Claims up to `limit` due deliveries of a channel, leased for `leaseMs`. */
export async function claimDueDeliveries(
  sql: SqlRunner,
  channel: ChannelName,
  limit: number,
  leaseMs: number,
): Promise<ClaimedDelivery[]> {
  const rows = await sql.query<ClaimedDelivery>(CLAIM, [channel, limit, leaseMs]);
  // The engines disagree on how timestamps come back from plain SQL (Date or text): settle on Date.
  for (const row of rows) {
    for (const field of DATE_FIELDS) {
      const value = row[field];
      if (value !== null && !(value instanceof Date))
        (row as Record<string, unknown>)[field] = new Date(value);
    }
  }
  return rows;
}

const DATE_FIELDS = [
  'first_attempt_at',
  'notification_created_at',
  'send_at',
  'expires_at',
  'read_at',
  'seen_at',
  'cancelled_at',
] as const;

export interface AttemptRecord {
  provider: string;
  outcome: 'sent' | 'retry' | 'failed' | 'invalid_destination';
  statusCode: number | null;
  latencyMs: number;
  error: string | null;
  response: string | null;
  startedAt: Date;
}

export interface DeliveryTransition {
  status: DeliveryStatus;
  reason: string | null;
  /** When a queued delivery is due next (retries, deferrals); ignored for final states. */
  nextAttemptAt?: Date | undefined;
  provider?: string | null | undefined;
  providerMessageId?: string | null | undefined;
  lastError?: string | null | undefined;
}

// The attempt row and the delivery's new state in one statement. The update is fenced by the lease.
const FINISH = `
with attempt as (
  insert into delivery_attempts (id, delivery_id, provider, outcome, status_code, latency_ms, error, response, started_at)
  select $9::uuid, $1::uuid, $10, $11, $12::int, $13::int, $14, $15, $16::timestamptz
  where $9::uuid is not null
)
update deliveries set
  status = $3,
  reason = $4,
  next_attempt_at = coalesce($5::timestamptz, next_attempt_at),
  provider = coalesce($6, provider),
  provider_message_id = coalesce($7, provider_message_id),
  last_error = coalesce($8, last_error),
  attempts = attempts + case when $9::uuid is null then 0 else 1 end,
  first_attempt_at = case when $9::uuid is null then first_attempt_at else coalesce(first_attempt_at, $16::timestamptz) end,
  lease_until = null,
  updated_at = now()
where id = $1::uuid and status = 'sending' and lease_until = $2::timestamptz
returning id`;

/**
 * Ends a claim: records the attempt (when one was made) and moves the delivery to its next state. False when
 * the lease was lost (another dispatcher claimed the delivery after it ran out): nothing of the delivery
 * is changed then, though the attempt is still logged.
 */
export async function finishClaim(
  sql: SqlRunner,
  claim: Pick<ClaimedDelivery, 'id' | 'lease'>,
  next: DeliveryTransition,
  attempt: AttemptRecord | null,
): Promise<boolean> {
  const rows = await sql.query(FINISH, [
    claim.id,
    claim.lease,
    next.status,
    next.reason,
    next.nextAttemptAt?.toISOString() ?? null,
    next.provider ?? null,
    next.providerMessageId ?? null,
    next.lastError ?? null,
    attempt ? newId() : null,
    attempt?.provider ?? null,
    attempt?.outcome ?? null,
    attempt?.statusCode ?? null,
    attempt ? Math.round(attempt.latencyMs) : null,
    attempt?.error ?? null,
    attempt?.response ?? null,
    attempt?.startedAt.toISOString() ?? null,
  ]);
  return rows.length > 0;
}

/** Puts claimed deliveries back as they were (queued, due now), for a dispatcher that is shutting down. */
export async function releaseClaims(
  sql: SqlRunner,
  claims: readonly Pick<ClaimedDelivery, 'id' | 'lease'>[],
): Promise<void> {
  if (claims.length === 0) return;
  await sql.query(
    `update deliveries d set status = 'queued', lease_until = null, updated_at = now()
     from jsonb_to_recordset($1::text::jsonb) as c(id uuid, lease timestamptz)
     where d.id = c.id and d.status = 'sending' and d.lease_until = c.lease`,
    [JSON.stringify(claims.map((c) => ({ id: c.id, lease: c.lease })))],
  );
}

export interface StatusEventDelivery {
  notificationId: string;
  userId: string;
  endpointId: string;
  event: string;
  payload: Record<string, unknown>;
}

/** Queues Herald's own status events (e.g. notification.failed) to the endpoints that subscribe to them. */
export async function queueStatusEvents(
  sql: SqlRunner,
  events: readonly StatusEventDelivery[],
): Promise<void> {
  if (events.length === 0) return;
  await sql.query(
    `insert into deliveries (id, notification_id, user_id, channel, endpoint_id, event, payload, status, next_attempt_at)
     select e.id, e.notification_id, e.user_id, 'webhook', e.endpoint_id, e.event, e.payload, 'queued', now()
     from jsonb_to_recordset($1::text::jsonb)
       as e(id uuid, notification_id uuid, user_id text, endpoint_id uuid, event text, payload jsonb)`,
    [
      JSON.stringify(
        events.map((e) => ({
          id: newId(),
          notification_id: e.notificationId,
          user_id: e.userId,
          endpoint_id: e.endpointId,
          event: e.event,
          payload: e.payload,
        })),
      ),
    ],
  );
}

/** Cancels every delivery of a notification that is queued (not being attempted, not final). */
export async function cancelNotification(sql: SqlRunner, notificationId: string): Promise<number> {
  const rows = await sql.query(
    `with n as (update notifications set cancelled_at = coalesce(cancelled_at, now()) where id = $1::uuid)
     update deliveries set status = 'cancelled', reason = 'cancelled: the notification was cancelled',
       lease_until = null, updated_at = now()
     where notification_id = $1::uuid and status = 'queued'
     returning id`,
    [notificationId],
  );
  return rows.length;
}

/** Queues a failed or expired delivery again with a fresh set of attempts; false when it is not in such a state. */
export async function replayDelivery(sql: SqlRunner, deliveryId: string): Promise<boolean> {
  const rows = await sql.query(
    `update deliveries set status = 'queued', reason = 'replay requested', attempts = 0, first_attempt_at = null,
       next_attempt_at = now(), lease_until = null, updated_at = now()
     where id = $1::uuid and status in ('failed', 'expired')
     returning id`,
    [deliveryId],
  );
  if (rows.length > 0) await sql.query(`select pg_notify('herald_deliveries', '')`, []);
  return rows.length > 0;
}

/** Endpoint bookkeeping after an attempt: a success clears the failure clock, a failure starts it. */
export async function recordEndpointResult(
  sql: SqlRunner,
  endpointId: string,
  succeeded: boolean,
  disableAfterMs: number,
): Promise<void> {
  if (succeeded) {
    await sql.query(
      `update webhook_endpoints set failing_since = null where id = $1::uuid and failing_since is not null`,
      [endpointId],
    );
    return;
  }
  await sql.query(
    `update webhook_endpoints set
       failing_since = coalesce(failing_since, now()),
       enabled = case when failing_since < now() - make_interval(secs => $2::float8 / 1000) then false else enabled end,
       disabled_reason = case when failing_since < now() - make_interval(secs => $2::float8 / 1000)
         then 'every attempt failed since ' || to_char(failing_since at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
         else disabled_reason end,
       updated_at = now()
     where id = $1::uuid`,
    [endpointId, disableAfterMs],
  );
}

export async function disableEndpoint(sql: SqlRunner, endpointId: string, reason: string): Promise<void> {
  await sql.query(
    `update webhook_endpoints set enabled = false, disabled_reason = $2, updated_at = now() where id = $1::uuid`,
    [endpointId, reason],
  );
}

/** Addresses the dispatcher must not contact on a channel. */
export async function isSuppressed(sql: SqlRunner, channel: string, address: string): Promise<boolean> {
  const rows = await sql.query(`select 1 from suppressions where channel = $1 and address = $2`, [
    channel,
    address,
  ]);
  return rows.length > 0;
}
