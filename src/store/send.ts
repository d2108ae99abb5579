// The Send write path (a transactional outbox: recipient, notification and its deliveries commit together
// or not at all). Written as plain SQL because it is the service's hottest path: a Send or SendBatch without
// idempotency keys is ONE prepared statement — one round trip for any batch size — instead of a
// transaction of several. Items travel as JSON (`jsonb_to_recordset`), so the statement text never changes.
import type { ChannelName, DeliveryStatus } from '../core/channels.js';
import { newId } from '../core/ids.js';
import type { DeliveryPlan } from '../core/planning.js';
import type { PushOptions } from '../core/push-options.js';
import type { Database, SqlRunner } from './database.js';

export interface RecipientProfile {
  email?: string | undefined;
  phone?: string | undefined;
  locale?: string | undefined;
  timezone?: string | undefined;
}

/** One validated Send, ready to store. */
export interface NewNotification {
  userId: string;
  recipient: RecipientProfile;
  type: string;
  priority: number;
  data: Record<string, unknown>;
  title: string | null;
  body: string | null;
  channels: readonly ChannelName[];
  idempotencyKey: string | null;
  /** Digest of the request, compared when an idempotency key is reused; null without a key. */
  requestHash: string | null;
  sendAt: Date | null;
  expiresAt: Date | null;
  /** How PUSH deliveries are presented; null for the defaults. */
  push: PushOptions | null;
  /**
   * The service's clock when the Send was accepted: send_at defaults to it, and deliveries are due by it. It
   * is the clock the dispatchers claim by, so the database's own clock never decides when work is due.
   */
  acceptedAt: Date;
}

export interface StoredDelivery {
  id: string;
  channel: ChannelName;
  status: DeliveryStatus;
  reason: string | null;
}

export interface StoredSend {
  notificationId: string;
  seq: number;
  createdAt: Date;
  sendAt: Date;
  deliveries: StoredDelivery[];
  /** True when an earlier Send with the same idempotency key answered this one. */
  replay: boolean;
}

/** The idempotency key of item `index` was used within 24 hours for a different request. */
export class IdempotencyConflictError extends Error {
  constructor(readonly index: number) {
    super(`idempotency key of item ${index} was already used for a different request`);
  }
}

/**
 * Plans a notification's deliveries; `critical` (CRITICAL priority or a critical type) bypasses opt-outs;
 * `wakesDispatcher`: a delivery due at send_at goes to a channel that a dispatcher works on.
 */
export type Planner = (item: NewNotification) => {
  critical: boolean;
  deliveries: DeliveryPlan[];
  wakesDispatcher: boolean;
};

/** Writes prepared unkeyed Sends: one statement at a time, or grouped under load (group-commit.ts). */
/** A notification due within this horizon counts as due now (clock skew between services). */
const WAKE_HORIZON_MS = 1_000;

export type SendWriter = (prepared: PreparedSend[]) => Promise<StoredSend[]>;

/**
 * A traced Send (observability/tracing.ts): spans around its planning and its commit, and the traceparent its
 * notifications keep so their delivery attempts join its trace.
 */
export interface SendTrace {
  readonly traceParent: string | null;
  /** Planning the deliveries (synchronous: the planner only reads the configuration cache). */
  planning<T>(work: () => T): T;
  /** Writing the rows: waiting for a group commit, the statement, the commit. */
  commit<T>(work: () => Promise<T>): Promise<T>;
}

/** Tracing off: the work runs as it is. */
const untraced: SendTrace = { traceParent: null, planning: (work) => work(), commit: (work) => work() };

/**
 * Stores a batch of notifications and returns one result per item, in order. Items whose idempotency key
 * `senderKeyId` used within 24 hours for the same request are answered from the original notification and
 * write nothing; a different request throws IdempotencyConflictError and rolls everything back.
 */
export async function storeNotifications(
  database: Database,
  senderKeyId: string | null,
  items: readonly NewNotification[],
  plan: Planner,
  write: SendWriter = (prepared) => executeSends(database.sql, prepared),
  trace: SendTrace = untraced,
): Promise<StoredSend[]> {
  const ids = items.map(() => newId());
  const prepare = (item: NewNotification, index: number) =>
    prepareSend(item, ids[index]!, senderKeyId, plan, trace.traceParent);
  if (!senderKeyId || items.every((item) => item.idempotencyKey === null)) {
    const prepared = trace.planning(() => items.map(prepare));
    return trace.commit(() => write(prepared));
  }
  // Keyed Sends claim their keys and insert in one transaction of their own, never grouped with others: a
  // key conflict must fail only its own request.
  return trace.commit(() =>
    database.sql.transaction(async (tx) => {
      const results: (StoredSend | undefined)[] = new Array(items.length);
      await claimIdempotencyKeys(tx, senderKeyId, items, ids, results);
      const fresh = items.flatMap((item, index) => (results[index] ? [] : [{ item, index }]));
      const stored = await executeSends(
        tx,
        trace.planning(() => fresh.map(({ item, index }) => prepare(item, index))),
      );
      fresh.forEach(({ index }, i) => {
        results[index] = stored[i];
      });
      return results.map((r) => r!);
    }),
  );
}

// Takes every key; an existing key older than the window is taken over. A concurrent Send with the same key
// blocks on the primary key until the other transaction ends, so exactly one of them wins.
const CLAIM_KEYS = `
insert into idempotency_keys as k (sender_key_id, key, request_hash, notification_id)
select $1::uuid, c.key, c.request_hash, c.notification_id
from jsonb_to_recordset($2::text::jsonb) as c(key text, request_hash text, notification_id uuid)
on conflict (sender_key_id, key) do update
  set request_hash = excluded.request_hash, notification_id = excluded.notification_id, created_at = excluded.created_at
  where k.created_at < now() - interval '24 hours'
returning k.key`;

const TAKEN_KEYS = `
select k.key, k.request_hash, k.notification_id::text as notification_id
from (select distinct value as key from jsonb_array_elements_text($2::text::jsonb)) as w
join idempotency_keys k on k.sender_key_id = $1::uuid and k.key = w.key`;

const ORIGINALS = `
select n.id::text as notification_id, n.seq::text as seq, n.created_at, n.send_at,
       d.id::text as delivery_id, d.channel, d.status, d.reason
from (select distinct value::uuid as id from jsonb_array_elements_text($1::text::jsonb)) as w
join notifications n on n.id = w.id
left join deliveries d on d.notification_id = n.id
order by n.id, d.id`;

async function claimIdempotencyKeys(
  tx: SqlRunner,
  senderKeyId: string,
  items: readonly NewNotification[],
  ids: string[],
  results: (StoredSend | undefined)[],
): Promise<void> {
  const keyed = items.flatMap((item, index) => (item.idempotencyKey ? [{ item, index }] : []));
  const claimed = await tx.query<{ key: string }>(CLAIM_KEYS, [
    senderKeyId,
    JSON.stringify(
      keyed.map(({ item, index }) => ({
        key: item.idempotencyKey,
        request_hash: item.requestHash,
        notification_id: ids[index],
      })),
    ),
  ]);
  if (claimed.length === keyed.length) return;

  const claimedKeys = new Set(claimed.map((r) => r.key));
  const taken = keyed.filter(({ item }) => !claimedKeys.has(item.idempotencyKey!));
  const existing = await tx.query<{ key: string; request_hash: string; notification_id: string }>(
    TAKEN_KEYS,
    [senderKeyId, JSON.stringify(taken.map(({ item }) => item.idempotencyKey))],
  );
  const byKey = new Map(existing.map((row) => [row.key, row]));
  for (const { item, index } of taken) {
    if (byKey.get(item.idempotencyKey!)?.request_hash !== item.requestHash)
      throw new IdempotencyConflictError(index);
  }
  const originals = groupResults(
    await tx.query<ResultRow>(ORIGINALS, [JSON.stringify([...byKey.values()].map((r) => r.notification_id))]),
  );
  for (const { item, index } of taken) {
    const original = originals.get(byKey.get(item.idempotencyKey!)!.notification_id);
    if (!original) throw new IdempotencyConflictError(index);
    results[index] = { ...original, replay: true };
  }
}

// One statement: upsert every recipient and reserve as many seqs as the batch has notifications for them
// (the row lock serialises concurrent Sends for one user, so seqs are unique and never go backwards; users
// are locked in sorted order so two batches cannot deadlock), number the notifications in request order,
// insert them, and insert their deliveries as queued or skipped by what each channel requires.
const INSERT_FRESH = `
with input as (
  select * from jsonb_to_recordset($1::text::jsonb) as t(
    idx int, id uuid, user_id text, type text, priority smallint, critical boolean, data jsonb, title text,
    body text, sender_key_id uuid, send_at timestamptz, expires_at timestamptz, idempotency_key text,
    push_options jsonb, trace_parent text)
),
upserted as (
  insert into recipients as r (user_id, email, phone, locale, timezone, last_seq)
  select p.user_id, p.email, p.phone, p.locale, p.timezone, p.n
  from jsonb_to_recordset($2::text::jsonb) as p(user_id text, email text, phone text, locale text, timezone text, n bigint)
  order by p.user_id
  on conflict (user_id) do update set
    email = coalesce(excluded.email, r.email),
    phone = coalesce(excluded.phone, r.phone),
    locale = coalesce(excluded.locale, r.locale),
    timezone = coalesce(excluded.timezone, r.timezone),
    last_seq = r.last_seq + excluded.last_seq,
    updated_at = now()
  returning r.user_id, r.last_seq, r.email, r.phone
),
numbered as (
  select i.*, u.email as recipient_email, u.phone as recipient_phone,
         u.last_seq - count(*) over w + row_number() over (w order by i.idx) as seq
  from input i join upserted u on u.user_id = i.user_id
  window w as (partition by i.user_id)
),
-- One row per planned delivery, and for push one per active token of the recipient (a push delivery beyond the
-- first takes the planned id with its random tail replaced by a digest of the planned id and the token's, so it
-- stays time-ordered, sorts beside its planned id, and is unique).
planned as (
  select case when tk.k is null or tk.k = 1 then p.id
              else overlay(p.id::text placing substr(md5(p.id::text || tk.id::text), 1, 12) from 25 for 12)::uuid end as id,
         n.id as notification_id, n.user_id, p.channel, p.step, p.cancel_unless, p.endpoint_id,
         tk.id as push_token_id, p.next_attempt_at,
         case p.requires
           when 'email' then n.recipient_email
           when 'phone' then n.recipient_phone
           when 'pushTokens' then tk.id::text
           else p.endpoint_id::text
         end as destination,
         case
           when not case p.requires
             when 'email' then n.recipient_email is not null
             when 'phone' then n.recipient_phone is not null
             when 'pushTokens' then tk.id is not null
             when 'endpoint' then false
             when 'unavailable' then false
             else true
           end then p.skip_reason
           when p.channel <> 'webhook' and not n.critical
                and not coalesce((pf.types -> n.type ->> p.channel)::boolean, (pf.channels ->> p.channel)::boolean, true)
             then 'preference: ' || p.channel || ' is turned off'
                  || case when pf.types -> n.type ? p.channel then ' for ' || n.type else '' end
         end as skip_reason
  from jsonb_to_recordset($3::text::jsonb) as p(
    idx int, id uuid, channel text, step int, cancel_unless text, endpoint_id uuid, requires text,
    skip_reason text, next_attempt_at timestamptz)
  join numbered n on n.idx = p.idx
  left join preferences pf on pf.user_id = n.user_id
  left join lateral (
    select t.id, row_number() over (order by t.created_at, t.id) as k
    from push_tokens t
    where p.requires = 'pushTokens' and t.user_id = n.user_id and t.active
  ) tk on true
),
notified as (
  insert into notifications (id, user_id, seq, type, priority, critical, inbox, data, title, body,
                             sender_key_id, idempotency_key, send_at, expires_at, push_options, trace_parent)
  select n.id, n.user_id, n.seq, n.type, n.priority, n.critical,
         exists (select 1 from planned p where p.notification_id = n.id and p.channel = 'in_app'
                 and p.skip_reason is null),
         n.data, n.title, n.body, n.sender_key_id, n.idempotency_key, n.send_at, n.expires_at, n.push_options,
         n.trace_parent
  from numbered n
  returning id, created_at, send_at
),
delivered as (
  insert into deliveries (id, notification_id, user_id, channel, step, cancel_unless, endpoint_id, push_token_id,
                          destination, status, reason, next_attempt_at)
  select id, notification_id, user_id, channel, step, cancel_unless, endpoint_id, push_token_id, destination,
         case when skip_reason is null then 'queued' else 'skipped' end, skip_reason, next_attempt_at
  from planned
  returning id, notification_id, channel, status, reason
),
-- Wakes the dispatchers (LISTEN herald_deliveries) once this commits; only when a delivery is due now on a
-- channel that is dispatched, since every NOTIFY briefly serialises commits.
woken as materialized (select pg_notify('herald_deliveries', '') from (select 1) one where $4::boolean)
select n.idx, n.id::text as notification_id, n.seq::text as seq, x.created_at, x.send_at,
       d.id::text as delivery_id, d.channel, d.status, d.reason, (select count(*) from woken) as woke
from numbered n join notified x on x.id = n.id left join delivered d on d.notification_id = n.id
order by n.idx, d.id`;

interface ResultRow extends Record<string, unknown> {
  notification_id: string;
  seq: string;
  created_at: Date | string;
  send_at: Date | string;
  delivery_id: string | null;
  channel: string | null;
  status: string | null;
  reason: string | null;
}

/** A Send turned into the rows the statement needs; several can share one statement. */
export interface PreparedSend {
  /** NOTIFY the dispatchers when this commits. */
  wake: boolean;
  notification: {
    id: string;
    user_id: string;
    type: string;
    priority: number;
    critical: boolean;
    data: Record<string, unknown>;
    title: string | null;
    body: string | null;
    sender_key_id: string | null;
    send_at: string;
    expires_at: string | null;
    idempotency_key: string | null;
    push_options: PushOptions | null;
    trace_parent: string | null;
  };
  recipient: RecipientProfile;
  deliveries: {
    id: string;
    channel: ChannelName;
    step: number;
    cancel_unless: string | null;
    endpoint_id: string | null;
    requires: string | null;
    skip_reason: string | null;
    next_attempt_at: string;
  }[];
}

export function prepareSend(
  item: NewNotification,
  id: string,
  senderKeyId: string | null,
  plan: Planner,
  /** The traced Send's W3C traceparent; null when tracing is off. */
  traceParent: string | null = null,
): PreparedSend {
  const now = item.acceptedAt.getTime();
  const sendAt = item.sendAt ?? item.acceptedAt;
  const { critical, deliveries, wakesDispatcher } = plan(item);
  return {
    // Scheduled notifications wake nobody now; the dispatchers' timers and poll find them when due.
    wake: wakesDispatcher && sendAt.getTime() <= now + WAKE_HORIZON_MS,
    notification: {
      id,
      user_id: item.userId,
      type: item.type,
      priority: item.priority,
      critical,
      data: item.data,
      title: item.title,
      body: item.body,
      sender_key_id: senderKeyId,
      send_at: sendAt.toISOString(),
      expires_at: item.expiresAt?.toISOString() ?? null,
      idempotency_key: item.idempotencyKey,
      push_options: item.push,
      trace_parent: traceParent,
    },
    recipient: item.recipient,
    deliveries: deliveries.map((p) => ({
      id: newId(),
      channel: p.channel,
      step: p.step,
      cancel_unless: p.cancelUnless,
      endpoint_id: p.endpointId,
      requires: p.requires,
      skip_reason: p.skipReason,
      next_attempt_at: new Date(sendAt.getTime() + p.delaySeconds * 1000).toISOString(),
    })),
  };
}

/** Runs INSERT_FRESH for prepared Sends and returns their results in the same order. */
export async function executeSends(sql: SqlRunner, prepared: readonly PreparedSend[]): Promise<StoredSend[]> {
  if (prepared.length === 0) return [];
  const rows = await sql.query<ResultRow & { idx: number }>(INSERT_FRESH, [
    JSON.stringify(prepared.map((p, idx) => ({ idx, ...p.notification }))),
    JSON.stringify(recipientRows(prepared)),
    JSON.stringify(prepared.flatMap((p, idx) => p.deliveries.map((d) => ({ idx, ...d })))),
    prepared.some((p) => p.wake),
  ]);
  const byId = groupResults(rows);
  return prepared.map((p) => byId.get(p.notification.id)!);
}

/** One row per user: how many notifications the batch has for them, and the merged profile (later wins). */
function recipientRows(prepared: readonly PreparedSend[]) {
  const perUser = new Map<string, { n: number; profile: RecipientProfile }>();
  for (const { notification, recipient } of prepared) {
    const entry = perUser.get(notification.user_id) ?? { n: 0, profile: {} };
    entry.n++;
    for (const [field, value] of Object.entries(recipient)) {
      if (value !== undefined) entry.profile[field as keyof RecipientProfile] = value;
    }
    perUser.set(notification.user_id, entry);
  }
  return [...perUser.entries()].map(([userId, { n, profile }]) => ({
    user_id: userId,
    n,
    email: profile.email ?? null,
    phone: profile.phone ?? null,
    locale: profile.locale ?? null,
    timezone: profile.timezone ?? null,
  }));
}

function groupResults(rows: ResultRow[]): Map<string, StoredSend> {
  const results = new Map<string, StoredSend>();
  for (const row of rows) {
    let result = results.get(row.notification_id);
    if (!result) {
      result = {
        notificationId: row.notification_id,
        seq: Number(row.seq),
        createdAt: new Date(row.created_at),
        sendAt: new Date(row.send_at),
        deliveries: [],
        replay: false,
      };
      results.set(row.notification_id, result);
    }
    if (row.delivery_id) {
      result.deliveries.push({
        id: row.delivery_id,
        channel: row.channel as ChannelName,
        status: row.status as DeliveryStatus,
        reason: row.reason,
      });
    }
  }
  return results;
}
