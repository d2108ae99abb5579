// The operator's read model: notifications across every user (the console's activity view), delivery
// figures by minute, and each provider's recent attempts. Every query reads through an index bounded by
// time or by page size (migration 0012), so its cost follows the window asked for, not the table's size.
import { and, asc, desc, eq, gte, lt, type SQL, sql } from 'drizzle-orm';
import type { ChannelName, DeliveryStatus } from '../core/channels.js';
import type { Database, Executor, SqlParam } from './database.js';
import { type NotificationDetail, withDeliveries } from './notifications.js';
import { notifications } from './schema.js';

export interface NotificationSearch {
  userId?: string | undefined;
  type?: string | undefined;
  /** A delivery on this channel (in `status`, when both are set). */
  channel?: ChannelName | undefined;
  /** A delivery in this status. */
  status?: DeliveryStatus | undefined;
  /** A webhook delivery to this endpoint. */
  endpointId?: string | undefined;
  createdAfter?: Date | undefined;
  createdBefore?: Date | undefined;
  /** Older than this notification (the previous page's last), newest first. */
  before?: string | undefined;
  /** Newer than this notification, oldest first (a live tail). */
  after?: string | undefined;
  limit: number;
}

/**
 * At most this many notifications are examined per search with a filter no index serves (type, channel,
 * status, endpoint), so a rare match never means a scan of the whole table.
 */
export const SEARCH_SCAN_WINDOW = 5_000;

export interface SearchResult {
  /** At most `limit`, in the search's order. */
  found: NotificationDetail[];
  /**
   * Set when the search stopped at SEARCH_SCAN_WINDOW before it found `limit`: the last notification it
   * examined, from which the next call goes on.
   */
  scannedTo: string | undefined;
}

/**
 * Notifications matching every filter given, each with its deliveries (without attempts). Ordered by
 * (created_at, id), which the notifications_created and notifications_user_created indexes serve; a cursor
 * names a notification, whose place in that order is looked up, so no timestamp ever round-trips through a
 * client (JavaScript dates would drop PostgreSQL's microseconds). The user, time range and cursor narrow
 * through the index; type, channel, status and endpoint are checked on a window of at most SEARCH_SCAN_WINDOW
 * notifications taken from it.
 */
export async function searchNotifications(db: Executor, search: NotificationSearch): Promise<SearchResult> {
  const n = notifications;
  const where: SQL[] = [];
  if (search.userId !== undefined) where.push(eq(n.userId, search.userId));
  if (search.createdAfter) where.push(gte(n.createdAt, search.createdAfter));
  if (search.createdBefore) where.push(lt(n.createdAt, search.createdBefore));
  if (search.before !== undefined) {
    where.push(
      sql`(${n.createdAt}, ${n.id}) < (select c.created_at, c.id from notifications c where c.id = ${search.before})`,
    );
  }
  if (search.after !== undefined) {
    where.push(
      sql`(${n.createdAt}, ${n.id}) > (select c.created_at, c.id from notifications c where c.id = ${search.after})`,
    );
  }
  const residual: SQL[] = [];
  if (search.type !== undefined) residual.push(eq(n.type, search.type));
  if (search.channel !== undefined || search.status !== undefined || search.endpointId !== undefined) {
    residual.push(sql`exists (select 1 from deliveries d where d.notification_id = ${n.id}
      ${search.channel === undefined ? sql`` : sql`and d.channel = ${search.channel}`}
      ${search.status === undefined ? sql`` : sql`and d.status = ${search.status}`}
      ${search.endpointId === undefined ? sql`` : sql`and d.endpoint_id = ${search.endpointId}`})`);
  }
  const order = search.after === undefined ? [desc(n.createdAt), desc(n.id)] : [asc(n.createdAt), asc(n.id)];
  if (residual.length === 0) {
    const rows = await db
      .select()
      .from(n)
      .where(and(...where))
      .orderBy(...order)
      .limit(search.limit);
    return { found: await withDeliveries(db, rows, { attempts: false }), scannedTo: undefined };
  }
  // The window's ids first, then the filters on exactly those rows by primary key: written as one statement,
  // PostgreSQL would turn `id in (window)` into a semi-join and read the whole table. The window's last id
  // is where the next call goes on, from the same read.
  const window = await db
    .select({ id: n.id })
    .from(n)
    .where(and(...where))
    .orderBy(...order)
    .limit(SEARCH_SCAN_WINDOW);
  if (window.length === 0) return { found: [], scannedTo: undefined };
  const ids = `{${window.map((w) => w.id).join(',')}}`;
  const rows = await db
    .select()
    .from(n)
    .where(and(sql`${n.id} = any(${ids}::uuid[])`, ...residual))
    .orderBy(...order)
    .limit(search.limit);
  const full = window.length === SEARCH_SCAN_WINDOW && rows.length < search.limit;
  return {
    found: await withDeliveries(db, rows, { attempts: false }),
    scannedTo: full ? window.at(-1)!.id : undefined,
  };
}

/** Whether a notification with this id exists (a cursor must name one). */
export async function notificationExists(db: Executor, id: string): Promise<boolean> {
  const rows = await db.select({ id: notifications.id }).from(notifications).where(eq(notifications.id, id));
  return rows.length > 0;
}

export interface DeliveryStatsRow {
  /** The minute's start, in milliseconds since the epoch. */
  minute: number;
  channel: ChannelName;
  created: number;
  sent: number;
  failed: number;
  retried: number;
  p95LatencyMs: number;
}

// Two index range scans (deliveries_created, delivery_attempts_started) over the window, joined per minute
// and channel. Attempts carry their channel; those recorded before migration 0012 look it up.
/**
 * Figures over a window, read as such: planned for that window rather than by a prepared statement's generic
 * plan (QueryOptions.prepare), and without JIT compilation. The lookup of a channel for attempts recorded
 * before migration 0012 makes the planner's estimate high enough to JIT-compile the query, which then costs
 * several times more than running it.
 */
async function windowRead<Row extends Record<string, unknown>>(
  sql: Database['sql'],
  text: string,
  params: readonly SqlParam[],
): Promise<Row[]> {
  return sql.transaction(async (tx) => {
    await tx.query('set local jit = off', []);
    return tx.query<Row>(text, params, { prepare: false });
  });
}

const ATTEMPT_CHANNEL =
  'coalesce(a.channel, (select d.channel from deliveries d where d.id = a.delivery_id))';

const DELIVERY_STATS = `
with created as (
  select date_trunc('minute', created_at) as minute, channel, count(*)::int as created
  from deliveries where created_at >= $1::timestamptz
  group by 1, 2
), tried as (
  select date_trunc('minute', a.started_at) as minute, ${ATTEMPT_CHANNEL} as channel,
         count(*) filter (where a.outcome = 'sent')::int as sent,
         count(*) filter (where a.outcome <> 'sent')::int as failed,
         count(*) filter (where a.outcome = 'retry')::int as retried,
         percentile_cont(0.95) within group (order by a.latency_ms) as p95
  from delivery_attempts a
  where a.started_at >= $1::timestamptz
  group by 1, 2
)
select (extract(epoch from coalesce(c.minute, t.minute)) * 1000)::float8 as minute,
       coalesce(c.channel, t.channel) as channel, coalesce(c.created, 0) as created,
       coalesce(t.sent, 0) as sent, coalesce(t.failed, 0) as failed, coalesce(t.retried, 0) as retried,
       coalesce(round(t.p95), 0)::int as p95
from created c full join tried t on t.minute = c.minute and t.channel = c.channel
order by 1, 2`;

/** Per channel and minute since `since`: deliveries created and attempts by outcome, with their p95 latency. */
export async function deliveryStats(sql: Database['sql'], since: Date): Promise<DeliveryStatsRow[]> {
  const rows = await windowRead<{
    minute: number;
    channel: ChannelName;
    created: number;
    sent: number;
    failed: number;
    retried: number;
    p95: number;
  }>(sql, DELIVERY_STATS, [since.toISOString()]);
  return rows.map((r) => ({
    minute: Number(r.minute),
    channel: r.channel,
    created: r.created,
    sent: r.sent,
    failed: r.failed,
    retried: r.retried,
    p95LatencyMs: r.p95,
  }));
}

export interface ProviderAttemptsRow {
  channel: ChannelName;
  provider: string;
  attempts: number;
  /** Attempts that did not send: retry, failed, invalid_destination. */
  failures: number;
  p95LatencyMs: number;
}

export interface ProviderErrorRow {
  channel: ChannelName;
  provider: string;
  at: Date;
  outcome: string;
  statusCode: number | null;
  error: string | null;
  deliveryId: string;
}

const PROVIDER_ATTEMPTS = `
select ${ATTEMPT_CHANNEL} as channel, a.provider, count(*)::int as attempts,
       count(*) filter (where a.outcome <> 'sent')::int as failures,
       coalesce(round(percentile_cont(0.95) within group (order by a.latency_ms)), 0)::int as p95
from delivery_attempts a
where a.started_at >= $1::timestamptz
group by 1, 2`;

// The latest unsent attempts of each provider that had any: newest first from the started_at index, so it
// stops after `$3` of them even when a provider fails everything (an outage is when this is looked at).
const PROVIDER_ERRORS = `
select p.channel, p.provider, (extract(epoch from e.started_at) * 1000)::float8 as at, e.outcome,
       e.status_code, e.error, e.delivery_id::text as delivery_id
from jsonb_to_recordset($2::text::jsonb) as p(channel text, provider text)
cross join lateral (
  select a.started_at, a.outcome, a.status_code, a.error, a.delivery_id
  from delivery_attempts a
  where a.started_at >= $1::timestamptz and a.provider = p.provider and a.outcome <> 'sent'
    and ${ATTEMPT_CHANNEL} = p.channel
  order by a.started_at desc
  limit $3
) e
order by p.channel, p.provider, e.started_at desc`;

/** Each provider's attempts since `since` (by every instance), and its latest `errors` unsent attempts. */
export async function providerAttempts(
  sql: Database['sql'],
  since: Date,
  errors: number,
): Promise<{ attempts: ProviderAttemptsRow[]; errors: ProviderErrorRow[] }> {
  const attempts = await windowRead<{
    channel: ChannelName;
    provider: string;
    attempts: number;
    failures: number;
    p95: number;
  }>(sql, PROVIDER_ATTEMPTS, [since.toISOString()]);
  const failing = attempts
    .filter((a) => a.failures > 0)
    .map(({ channel, provider }) => ({ channel, provider }));
  const latest =
    failing.length === 0
      ? []
      : await windowRead<{
          channel: ChannelName;
          provider: string;
          at: number;
          outcome: string;
          status_code: number | null;
          error: string | null;
          delivery_id: string;
        }>(sql, PROVIDER_ERRORS, [since.toISOString(), JSON.stringify(failing), errors]);
  return {
    attempts: attempts.map((r) => ({
      channel: r.channel,
      provider: r.provider,
      attempts: r.attempts,
      failures: r.failures,
      p95LatencyMs: r.p95,
    })),
    errors: latest.map((r) => ({
      channel: r.channel,
      provider: r.provider,
      at: new Date(Number(r.at)),
      outcome: r.outcome,
      statusCode: r.status_code,
      error: r.error,
      deliveryId: r.delivery_id,
    })),
  };
}
