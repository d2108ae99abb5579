// The dispatcher's side of the deliveries table. Claiming takes due deliveries with FOR UPDATE SKIP LOCKED
// and leases them (status 'sending', lease_until): two dispatchers never hold the same delivery, and a
// delivery whose lease ran out (its dispatcher died) is claimed again by any instance. Every later write is
// fenced by the lease it was claimed with, so a dispatcher that lost its lease cannot overwrite the newer
// claim's outcome.
//
// Two clocks, each with one job (docs/architecture.md, "Clocks"). When work is due is the service's clock:
// Herald computes every next_attempt_at (send_at, retries, quiet hours, rate-limit waits), so every due-time
// comparison takes the service's `now` as a parameter; none calls the database's now(). Leases are the
// database's clock: lease_until is set and compared only by SQL here, never by the service.
import type { ChannelName, DeliveryStatus } from '../core/channels.js';
import { newId } from '../core/ids.js';
import type { PushOptions } from '../core/push-options.js';
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
  /**
   * The e-mail address, number, push token id or endpoint id the delivery was planned for; null for deliveries
   * an older version planned (e-mail and SMS then take the recipient's current address).
   */
  destination: string | null;
  push_token_id: string | null;
  event: string;
  payload: Record<string, unknown> | null;
  provider: string | null;
  attempts: number;
  first_attempt_at: Date | null;
  /** The lease as text, exactly as stored: the fence for every later write. */
  lease: string;
  /** The service's clock reading the claim was made at: the delivery was due by then. */
  claimed_at: Date;
  type: string;
  priority: number;
  critical: boolean;
  data: Record<string, unknown>;
  title: string | null;
  body: string | null;
  push_options: PushOptions | null;
  /** Push alerts without a badge of their own: the recipient's unread in-app count now; null otherwise. */
  unread_count: number | null;
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
  /** The endpoint is in a run of failures (a success must clear it). */
  endpoint_failing: boolean | null;
  /** The push token, when it still exists. */
  push_platform: string | null;
  push_token: string | null;
  push_app_id: string | null;
  push_p256dh: string | null;
  push_auth: string | null;
  push_active: boolean | null;
  /** Whom the token belongs to now (a device that changed hands moves its token to the new user). */
  push_user_id: string | null;
  /** The delivery's destination is on its channel's suppression list. */
  suppressed: boolean;
  /** The W3C traceparent of the Send that made the notification: its attempts' spans are children of it. */
  trace_parent: string | null;
}

const CLAIM = `
with due as (
  select id from deliveries
  where status = 'queued' and next_attempt_at <= $4::timestamptz and channel = $1
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
       c.cancel_unless, c.endpoint_id::text as endpoint_id, c.destination, c.push_token_id::text as push_token_id,
       c.event, c.payload, c.provider, c.attempts,
       c.first_attempt_at, c.lease_until::text as lease,
       n.type, n.priority, n.critical, n.data, n.title, n.body, n.push_options, n.seq::text as seq, n.trace_parent,
       case when c.channel = 'push' and n.push_options->'badge' is null
                 and not coalesce((n.push_options->>'dataOnly')::boolean, false) then (
         select count(*)::int from notifications u
         where u.user_id = c.user_id and u.inbox and u.read_at is null and u.archived_at is null)
       end as unread_count,
       n.created_at as notification_created_at, n.send_at, n.expires_at, n.read_at, n.seen_at, n.cancelled_at,
       r.email, r.phone, r.locale, r.timezone,
       pf.channels as pref_channels, pf.types as pref_types, pf.quiet_start, pf.quiet_end, pf.quiet_timezone,
       e.url as endpoint_url, e.enabled as endpoint_enabled, e.disabled_reason as endpoint_disabled_reason,
       e.secret as endpoint_secret,
       case when e.previous_secret_until > $4::timestamptz then e.previous_secret end as endpoint_previous_secret,
       e.failing_since is not null as endpoint_failing,
       t.platform as push_platform, t.token as push_token, t.app_id as push_app_id,
       t.web_push_p256dh as push_p256dh, t.web_push_auth as push_auth, t.active as push_active,
       t.user_id as push_user_id,
       exists (select 1 from suppressions s where s.channel = c.channel and s.address = coalesce(c.destination,
         case c.channel when 'email' then r.email when 'sms' then r.phone end)) as suppressed
from claimed c
join notifications n on n.id = c.notification_id
left join recipients r on r.user_id = c.user_id
left join preferences pf on pf.user_id = c.user_id
left join webhook_endpoints e on e.id = c.endpoint_id
left join push_tokens t on t.id = c.push_token_id
order by c.next_attempt_at`;

/**
 * Puts deliveries whose lease ran out (their dispatcher died mid-attempt) back in the queue, due at `now`,
 * so the next claim takes them; their attempt counts stay as they were. Returns how many.
 */
export async function requeueExpiredLeases(sql: SqlRunner, now: Date): Promise<number> {
  const rows = await sql.query(
    `update deliveries set status = 'queued', lease_until = null, next_attempt_at = $1::timestamptz, updated_at = now(),
       reason = 'lease_expired: requeued after its dispatcher stopped answering'
     where id in (
       select id from deliveries where status = 'sending' and lease_until < now()
       for update skip locked)
     returning id`,
    [now.toISOString()],
  );
  return rows.length;
}

/** Claims up to `limit` deliveries of a channel due at `now` (the service's clock), leased for `leaseMs`. */
export async function claimDueDeliveries(
  sql: SqlRunner,
  channel: ChannelName,
  limit: number,
  leaseMs: number,
  now: Date,
): Promise<ClaimedDelivery[]> {
  const rows = await sql.query<ClaimedDelivery>(CLAIM, [channel, limit, leaseMs, now.toISOString()]);
  // The engines disagree on how timestamps come back from plain SQL (Date or text): settle on Date.
  for (const row of rows) {
    for (const field of DATE_FIELDS) {
      const value = row[field];
      if (value !== null && !(value instanceof Date))
        (row as Record<string, unknown>)[field] = new Date(value);
    }
    row.claimed_at = now;
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
  /** The destination used, masked. */
  destination: string;
  outcome: 'sent' | 'retry' | 'failed' | 'invalid_destination';
  statusCode: number | null;
  latencyMs: number;
  error: string | null;
  response: string | null;
  /** The provider's id of the message, for a sent attempt. */
  providerMessageId: string | null;
  /** SMS: the segments the content takes (stored on the delivery when sent). */
  segments: number | null;
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

// Attempt rows and the deliveries' new states, for any number of claims, in one statement. Each update is
// fenced by its claim's lease. $1: one row per claim (with its last attempt, if any); $2: the attempts a claim
// made before its last one (providers that could not reach the destination).
const ATTEMPT_COLUMNS = `attempt_id uuid, id uuid, attempt_channel text, attempt_provider text,
    attempt_destination text, outcome text, status_code int, latency_ms int, error text, response text,
    attempt_message_id text, segments int, started_at timestamptz`;
const ATTEMPT_NAMES = `attempt_id, id, attempt_channel, attempt_provider, attempt_destination, outcome,
    status_code, latency_ms, error, response, attempt_message_id, started_at`;
const FINISH = `
with input as (
  select * from jsonb_to_recordset($1::text::jsonb) as t(
    lease timestamptz, status text, reason text, next_attempt_at timestamptz, provider text,
    provider_message_id text, last_error text, earlier_attempts int, first_started_at timestamptz,
    ${ATTEMPT_COLUMNS})
),
earlier as (
  select * from jsonb_to_recordset($2::text::jsonb) as e(${ATTEMPT_COLUMNS})
),
attempts as (
  insert into delivery_attempts (id, delivery_id, channel, provider, destination, outcome, status_code, latency_ms,
                                 error, response, provider_message_id, started_at)
  select attempt_id, id, attempt_channel, attempt_provider, attempt_destination, outcome, status_code, latency_ms,
         error, response, attempt_message_id, started_at
  from (select ${ATTEMPT_NAMES} from input where attempt_id is not null
        union all select ${ATTEMPT_NAMES} from earlier) a
)
update deliveries d set
  status = i.status,
  reason = i.reason,
  next_attempt_at = coalesce(i.next_attempt_at, d.next_attempt_at),
  provider = coalesce(i.provider, d.provider),
  provider_message_id = coalesce(i.provider_message_id, d.provider_message_id),
  sms_segments = case when i.outcome = 'sent' then coalesce(i.segments, d.sms_segments) else d.sms_segments end,
  last_error = coalesce(i.last_error, d.last_error),
  attempts = d.attempts + case when i.attempt_id is null then 0 else 1 end + i.earlier_attempts,
  first_attempt_at = case when i.attempt_id is null then d.first_attempt_at
                          else coalesce(d.first_attempt_at, i.first_started_at) end,
  lease_until = null,
  updated_at = now()
from input i
where d.id = i.id and d.status = 'sending' and d.lease_until = i.lease
returning d.id::text as id`;

export interface ClaimOutcome {
  claim: Pick<ClaimedDelivery, 'id' | 'lease' | 'channel'>;
  next: DeliveryTransition;
  /** The attempt made, or null when the claim ended without one (skipped, deferred, cancelled, ...). */
  attempt: AttemptRecord | null;
  /** Attempts the claim made before `attempt` (providers that answered they cannot reach the destination). */
  earlier?: readonly AttemptRecord[] | undefined;
}

/**
 * Ends claims: records their attempts and moves each delivery to its next state. Answers, per claim, whether
 * it still held its lease; a claim that lost it (another dispatcher claimed the delivery after it ran out)
 * changes nothing of the delivery, though its attempts are still logged.
 */
export async function finishClaims(sql: SqlRunner, outcomes: readonly ClaimOutcome[]): Promise<boolean[]> {
  if (outcomes.length === 0) return [];
  const rows = await sql.query<{ id: string }>(FINISH, [
    JSON.stringify(
      outcomes.map(({ claim, next, attempt, earlier = [] }) => ({
        lease: claim.lease,
        status: next.status,
        reason: next.reason,
        next_attempt_at: next.nextAttemptAt?.toISOString() ?? null,
        provider: next.provider ?? null,
        provider_message_id: next.providerMessageId ?? null,
        last_error: next.lastError ?? null,
        earlier_attempts: earlier.length,
        first_started_at: (earlier[0] ?? attempt)?.startedAt.toISOString() ?? null,
        ...attemptRow(claim, attempt),
      })),
    ),
    JSON.stringify(outcomes.flatMap(({ claim, earlier = [] }) => earlier.map((a) => attemptRow(claim, a)))),
  ]);
  const kept = new Set(rows.map((r) => r.id));
  return outcomes.map(({ claim }) => kept.has(claim.id));
}

/** An attempt as FINISH's recordsets take it (all null for a claim that made none). */
function attemptRow(claim: Pick<ClaimedDelivery, 'id' | 'channel'>, attempt: AttemptRecord | null) {
  return {
    id: claim.id,
    attempt_id: attempt ? newId() : null,
    attempt_channel: attempt ? claim.channel : null,
    attempt_provider: attempt?.provider ?? null,
    attempt_destination: attempt?.destination ?? null,
    outcome: attempt?.outcome ?? null,
    status_code: attempt?.statusCode ?? null,
    latency_ms: attempt ? Math.round(attempt.latencyMs) : null,
    error: attempt?.error ?? null,
    response: attempt?.response ?? null,
    attempt_message_id: attempt?.providerMessageId ?? null,
    segments: attempt?.segments ?? null,
    started_at: attempt?.startedAt.toISOString() ?? null,
  };
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

/** Queues Herald's own status events (e.g. notification.failed), due at `now`, to the endpoints that subscribe to them. */
export async function queueStatusEvents(
  sql: SqlRunner,
  events: readonly StatusEventDelivery[],
  now: Date,
): Promise<void> {
  if (events.length === 0) return;
  await sql.query(
    `with queued as (
       insert into deliveries (id, notification_id, user_id, channel, endpoint_id, destination, event, payload, status,
                               next_attempt_at)
       select e.id, e.notification_id, e.user_id, 'webhook', e.endpoint_id, e.endpoint_id::text, e.event, e.payload,
              'queued', $2::timestamptz
       from jsonb_to_recordset($1::text::jsonb)
         as e(id uuid, notification_id uuid, user_id text, endpoint_id uuid, event text, payload jsonb)
     )
     select pg_notify('herald_deliveries', '')`,
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
      now.toISOString(),
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

/** A delivery's notification and status, or undefined. */
export async function findDelivery(
  sql: SqlRunner,
  deliveryId: string,
): Promise<{ notification_id: string; status: string } | undefined> {
  const rows = await sql.query<{ notification_id: string; status: string }>(
    'select notification_id::text as notification_id, status from deliveries where id = $1::uuid',
    [deliveryId],
  );
  return rows[0];
}

/**
 * Queues a failed or expired delivery again, due at `now`, with a fresh set of attempts; false when it is not
 * in such a state.
 */
export async function replayDelivery(sql: SqlRunner, deliveryId: string, now: Date): Promise<boolean> {
  const rows = await sql.query(
    `update deliveries set status = 'queued', reason = 'replay requested', attempts = 0, first_attempt_at = null,
       next_attempt_at = $2::timestamptz, lease_until = null, updated_at = now()
     where id = $1::uuid and status in ('failed', 'expired')
     returning id`,
    [deliveryId, now.toISOString()],
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

/**
 * A provider said the push token is gone: it is deactivated, with the reason and when. With `since` (APNs says
 * when the device dropped the token), a token registered again after that moment is kept. Answers whether a
 * token was deactivated.
 */
export async function invalidatePushToken(
  sql: SqlRunner,
  tokenId: string,
  reason: string,
  since: Date | null,
): Promise<boolean> {
  const rows = await sql.query(
    `update push_tokens set active = false, invalid_reason = $2, invalidated_at = now()
     where id = $1::uuid and active and ($3::timestamptz is null or last_seen_at <= $3::timestamptz)
     returning id`,
    [tokenId, reason, since?.toISOString() ?? null],
  );
  return rows.length > 0;
}
