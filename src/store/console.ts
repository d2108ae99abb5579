// The operator's read model: notifications across every user (the console's activity view), delivery
// figures by minute, and each provider's recent attempts. Every query reads through an index bounded by
// time or by page size (migration 0012), so its cost follows the window asked for, not the table's size.
import { and, asc, desc, eq, gte, inArray, lt, type SQL, sql } from 'drizzle-orm';
import type { ChannelName, DeliveryStatus } from '../core/channels.js';
import type { Executor, SqlRunner } from './database.js';
import { type NotificationDetail, withDeliveries } from './notifications.js';
import { notifications } from './schema.js';

export interface NotificationSearch {
  userId?: string | undefined;
  type?: string | undefined;
  /** A delivery on this channel (in `status`, when both are set). */
  channel?: ChannelName | undefined;
  /** A delivery in this status. */
  status?: DeliveryStatus | undefined;
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
 * status), so a rare match never means a scan of the whole table.
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
 * through the index; type, channel and status are checked on a window of at most SEARCH_SCAN_WINDOW
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
  if (search.channel !== undefined || search.status !== undefined) {
    residual.push(sql`exists (select 1 from deliveries d where d.notification_id = ${n.id}
      ${search.channel === undefined ? sql`` : sql`and d.channel = ${search.channel}`}
      ${search.status === undefined ? sql`` : sql`and d.status = ${search.status}`})`);
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
  const window = (offset: number, limit: number) =>
    db
      .select({ id: n.id })
      .from(n)
      .where(and(...where))
      .orderBy(...order)
      .offset(offset)
      .limit(limit);
  const rows = await db
    .select()
    .from(n)
    .where(and(inArray(n.id, window(0, SEARCH_SCAN_WINDOW)), ...residual))
    .orderBy(...order)
    .limit(search.limit);
  // A short page: did the window end the search, or the notifications? Its last id says where to go on.
  const [last] = rows.length < search.limit ? await window(SEARCH_SCAN_WINDOW - 1, 1) : [undefined];
  return { found: await withDeliveries(db, rows, { attempts: false }), scannedTo: last?.id };
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
export async function deliveryStats(sql: SqlRunner, since: Date): Promise<DeliveryStatsRow[]> {
  const rows = await sql.query<{
    minute: number;
    channel: ChannelName;
    created: number;
    sent: number;
    failed: number;
    retried: number;
    p95: number;
  }>(DELIVERY_STATS, [since.toISOString()]);
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

const PROVIDER_ERRORS = `
select channel, provider, (extract(epoch from started_at) * 1000)::float8 as at, outcome, status_code, error,
       delivery_id
from (
  select ${ATTEMPT_CHANNEL} as channel, a.provider, a.started_at, a.outcome, a.status_code, a.error,
         a.delivery_id::text, row_number() over (partition by ${ATTEMPT_CHANNEL}, a.provider order by a.started_at desc) as n
  from delivery_attempts a
  where a.started_at >= $1::timestamptz and a.outcome <> 'sent'
) e
where n <= $2
order by channel, provider, started_at desc`;

/** Each provider's attempts since `since` (by every instance), and its latest `errors` unsent attempts. */
export async function providerAttempts(
  sql: SqlRunner,
  since: Date,
  errors: number,
): Promise<{ attempts: ProviderAttemptsRow[]; errors: ProviderErrorRow[] }> {
  const [attempts, latest] = await Promise.all([
    sql.query<{ channel: ChannelName; provider: string; attempts: number; failures: number; p95: number }>(
      PROVIDER_ATTEMPTS,
      [since.toISOString()],
    ),
    sql.query<{
      channel: ChannelName;
      provider: string;
      at: number;
      outcome: string;
      status_code: number | null;
      error: string | null;
      delivery_id: string;
    }>(PROVIDER_ERRORS, [since.toISOString(), errors]),
  ]);
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
