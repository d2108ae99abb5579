// The in-app inbox: notifications with a (not skipped) in-app delivery, per user, ordered by seq. Reads for
// the stream (everything after a seq), the paginated list, exact unread counts, and state changes.
import { and, asc, desc, eq, gt, isNotNull, isNull, lt, type SQL } from 'drizzle-orm';
import type { Executor, SqlRunner } from './database.js';
import { notifications } from './schema.js';

export type InboxRow = typeof notifications.$inferSelect;

/** Inbox notifications with seq > afterSeq, oldest first. */
export function inboxAfter(
  db: Executor,
  userId: string,
  afterSeq: number,
  limit: number,
): Promise<InboxRow[]> {
  return db
    .select()
    .from(notifications)
    .where(
      and(eq(notifications.userId, userId), eq(notifications.inbox, true), gt(notifications.seq, afterSeq)),
    )
    .orderBy(asc(notifications.seq))
    .limit(limit);
}

/** One session's read: its user's inbox after `afterSeq`. */
export interface InboxRead {
  userId: string;
  afterSeq: number;
}

// Every column of an inbox row, named as InboxRow names it; ids and seq as text (one shape on every engine).
const INBOX_COLUMNS = `n.id::text as "id", n.user_id as "userId", n.seq::text as "seq", n.type as "type",
  n.priority as "priority", n.data as "data", n.title as "title", n.body as "body",
  n.sender_key_id::text as "senderKeyId", n.idempotency_key as "idempotencyKey", n.send_at as "sendAt",
  n.expires_at as "expiresAt", n.push_options as "pushOptions", n.critical as "critical", n.inbox as "inbox",
  n.cancelled_at as "cancelledAt", n.trace_parent as "traceParent", n.created_at as "createdAt",
  n.read_at as "readAt", n.seen_at as "seenAt", n.archived_at as "archivedAt"`;
const INBOX_DATES = [
  'sendAt',
  'expiresAt',
  'cancelledAt',
  'createdAt',
  'readAt',
  'seenAt',
  'archivedAt',
] as const;

/**
 * inboxAfter for many sessions in one statement (sessions starting together in a reconnect storm): per read,
 * at most `limit` rows, oldest first, each read one index range scan (notifications_user_seq).
 */
export async function inboxAfterMany(
  sqlRunner: SqlRunner,
  reads: readonly InboxRead[],
  limit: number,
): Promise<InboxRow[][]> {
  const rows = await sqlRunner.query<Record<string, unknown> & { i: number }>(
    `select r.i::int as i, ${INBOX_COLUMNS}
     from jsonb_array_elements($1::text::jsonb) with ordinality as r(req, i)
     cross join lateral (
       select * from notifications m
       where m.user_id = r.req->>'u' and m.inbox and m.seq > (r.req->>'a')::bigint
       order by m.seq limit $2
     ) n
     order by r.i, n.seq`,
    [JSON.stringify(reads.map((r) => ({ u: r.userId, a: r.afterSeq }))), limit],
  );
  const out: InboxRow[][] = reads.map(() => []);
  for (const { i, ...row } of rows) {
    row.seq = Number(row.seq);
    // The engines disagree on how timestamps come back from plain SQL (Date or text): settle on Date.
    for (const field of INBOX_DATES) {
      const value = row[field];
      if (value !== null && !(value instanceof Date)) row[field] = new Date(value as string);
    }
    out[Number(i) - 1]!.push(row as InboxRow);
  }
  return out;
}

export interface InboxQuery {
  limit: number;
  /** Only notifications with seq below this (the previous page's last seq). */
  beforeSeq: number | null;
  unreadOnly: boolean;
  /** true: the archive; false: everything not archived. */
  archived: boolean;
  type: string | null;
}

/** A page of the inbox, newest first. */
export function listInbox(db: Executor, userId: string, q: InboxQuery): Promise<InboxRow[]> {
  const conditions: (SQL | undefined)[] = [
    eq(notifications.userId, userId),
    eq(notifications.inbox, true),
    q.archived ? isNotNull(notifications.archivedAt) : isNull(notifications.archivedAt),
    q.beforeSeq === null ? undefined : lt(notifications.seq, q.beforeSeq),
    q.unreadOnly ? isNull(notifications.readAt) : undefined,
    q.type ? eq(notifications.type, q.type) : undefined,
  ];
  return db
    .select()
    .from(notifications)
    .where(and(...conditions))
    .orderBy(desc(notifications.seq))
    .limit(q.limit);
}

/** Exact: unread, not archived, in the inbox. */
export async function unreadCount(sqlRunner: SqlRunner, userId: string): Promise<number> {
  const [row] = await sqlRunner.query<{ n: string }>(
    'select count(*)::text as n from notifications where user_id = $1 and inbox and read_at is null and archived_at is null',
    [userId],
  );
  return Number(row?.n ?? 0);
}

/**
 * An exact unread count and where it stands: it counts every inbox notification of the user with seq <= `seq`
 * (any notification committed later has a larger seq: seqs are handed out under the recipient's row lock),
 * after `version` state changes (marks). A live session adds the notifications it writes after `seq` and
 * takes a newer count only from a later version, so counts that travel by different paths cannot go back.
 */
export interface UnreadState {
  count: number;
  seq: number;
  version: number;
}

/** The unread states of several users in one statement (one snapshot each), in the order asked. */
export async function unreadStates(sqlRunner: SqlRunner, userIds: readonly string[]): Promise<UnreadState[]> {
  const rows = await sqlRunner.query<{ user_id: string; n: string; seq: string; version: string }>(
    // Index lookups per user (notifications_unread, notifications_user_seq), not a scan of the inbox.
    `select u.user_id, c.n,
            coalesce((select max(seq) from notifications m where m.user_id = u.user_id), 0)::text as seq,
            coalesce((select inbox_version from recipients r where r.user_id = u.user_id), 0)::text as version
     from jsonb_array_elements_text($1::text::jsonb) as u(user_id)
     cross join lateral (
       select count(*)::text as n from notifications n
       where n.user_id = u.user_id and n.inbox and n.read_at is null and n.archived_at is null
     ) c`,
    [JSON.stringify([...new Set(userIds)])],
  );
  const byUser = new Map(
    rows.map((r) => [r.user_id, { count: Number(r.n), seq: Number(r.seq), version: Number(r.version) }]),
  );
  return userIds.map((id) => byUser.get(id) ?? { count: 0, seq: 0, version: 0 });
}

export type MarkAction = 'read' | 'unread' | 'seen' | 'archived' | 'unarchived';

export interface MarkTarget {
  ids: readonly string[];
  /** Everything up to and including this seq, when ids is empty. */
  upToSeq: number | null;
}

export interface MarkResult {
  ids: string[];
  readAt: Date | null;
  seenAt: Date | null;
  archivedAt: Date | null;
  /** Exact, after the change. */
  unread: UnreadState;
}

const SET: Record<MarkAction, string> = {
  read: 'read_at = $3::timestamptz, seen_at = coalesce(seen_at, $3::timestamptz)',
  unread: 'read_at = null',
  seen: 'seen_at = $3::timestamptz',
  archived: 'archived_at = $3::timestamptz',
  unarchived: 'archived_at = null',
};
const NOT_YET: Record<MarkAction, string> = {
  read: 'read_at is null',
  unread: 'read_at is not null',
  seen: 'seen_at is null',
  archived: 'archived_at is null',
  unarchived: 'archived_at is not null',
};

/**
 * Changes the state of a user's inbox notifications (only theirs: ids of other users' notifications match
 * nothing) and answers which changed and the exact unread count afterwards.
 */
export function markInbox(
  db: SqlRunner & { transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T> },
  userId: string,
  target: MarkTarget,
  action: MarkAction,
  at: Date,
): Promise<MarkResult> {
  const byIds = target.ids.length > 0;
  return db.transaction(async (tx) => {
    // The recipient's row lock first (as Send takes it): marks of one user follow one another, each after
    // the Sends before it have committed, so each count sees everything before it and versions are ordered.
    const [stamp] = await tx.query<{ last_seq: string; version: string }>(
      `update recipients set inbox_version = inbox_version + 1 where user_id = $1
       returning last_seq::text, inbox_version::text as version`,
      [userId],
    );
    const rows = await tx.query<{
      id: string;
      read_at: Date | null;
      seen_at: Date | null;
      archived_at: Date | null;
    }>(
      // By ids: the list is joined (one lookup per id); as `id in (select ...)` a generic plan may walk the
      // user's whole inbox and read the list again for each notification.
      `update notifications set ${SET[action]}
       ${byIds ? 'from (select distinct value::uuid as wanted from jsonb_array_elements_text($2::text::jsonb)) as w' : ''}
       where user_id = $1 and inbox and ${NOT_YET[action]}
         and ${byIds ? 'id = w.wanted' : 'seq <= ($2::text)::bigint'}
       returning id::text as id, read_at, seen_at, archived_at`,
      // unread and unarchived clear a time instead of setting one: they take no $3 (PostgreSQL refuses a
      // parameter a statement never uses, as it cannot infer its type).
      [
        userId,
        byIds ? JSON.stringify(target.ids) : String(target.upToSeq ?? 0),
        ...(SET[action].includes('$3') ? [at.toISOString()] : []),
      ],
    );
    const first = rows[0];
    return {
      ids: rows.map((r) => r.id),
      readAt: first?.read_at ? new Date(first.read_at) : null,
      seenAt: first?.seen_at ? new Date(first.seen_at) : null,
      archivedAt: first?.archived_at ? new Date(first.archived_at) : null,
      unread: {
        count: await unreadCount(tx, userId),
        seq: Number(stamp?.last_seq ?? 0),
        version: Number(stamp?.version ?? 0),
      },
    };
  });
}

/**
 * In-app deliveries written to at least one live connection: queued -> sent. The ids are joined, one index
 * lookup each: as `notification_id in (select ...)`, a prepared statement's generic plan walked every queued
 * in-app delivery and read the whole list again for each (seconds per statement with 20,000 queued).
 */
export async function markInAppSent(sqlRunner: SqlRunner, notificationIds: readonly string[]): Promise<void> {
  if (notificationIds.length === 0) return;
  await sqlRunner.query(
    `update deliveries d set status = 'sent', reason = 'written to a live connection', updated_at = now()
     from jsonb_array_elements_text($1::text::jsonb) as t(id)
     where d.notification_id = t.id::uuid and d.channel = 'in_app' and d.status = 'queued'`,
    [JSON.stringify(notificationIds)],
  );
}

/** In-app deliveries a client acknowledged: sent (or queued) -> delivered. Only the user's own. */
export async function markInAppDelivered(
  sqlRunner: SqlRunner,
  userId: string,
  notificationIds: readonly string[],
): Promise<void> {
  if (notificationIds.length === 0) return;
  await sqlRunner.query(
    `update deliveries d set status = 'delivered', reason = 'acknowledged by a client', updated_at = now()
     from jsonb_array_elements_text($2::text::jsonb) as t(id)
     where d.notification_id = t.id::uuid
       and d.user_id = $1 and d.channel = 'in_app' and d.status in ('queued', 'sent')`,
    [userId, JSON.stringify(notificationIds)],
  );
}

/** The user's highest inbox seq (0 when the inbox is empty). */
export async function latestInboxSeq(sqlRunner: SqlRunner, userId: string): Promise<number> {
  const [row] = await sqlRunner.query<{ seq: string | null }>(
    'select max(seq)::text as seq from notifications where user_id = $1 and inbox',
    [userId],
  );
  return Number(row?.seq ?? 0);
}

/** Each user's highest inbox seq, for many users in one statement (users with an empty inbox are absent). */
export async function latestInboxSeqs(
  sqlRunner: SqlRunner,
  userIds: readonly string[],
): Promise<Map<string, number>> {
  if (userIds.length === 0) return new Map();
  // One backward index probe per user (notifications_user_seq), never a scan of their history.
  const rows = await sqlRunner.query<{ user_id: string; seq: string }>(
    `select u.user_id, latest.seq::text as seq
     from jsonb_array_elements_text($1::text::jsonb) as u(user_id)
     cross join lateral (
       select n.seq from notifications n where n.user_id = u.user_id and n.inbox order by n.seq desc limit 1
     ) latest`,
    [JSON.stringify(userIds)],
  );
  return new Map(rows.map((r) => [r.user_id, Number(r.seq)]));
}
