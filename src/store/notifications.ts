// The Send transaction (a transactional outbox: recipient, notification and its deliveries commit
// together or not at all) and the notification read model.
import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import type { ChannelName, DeliveryStatus } from '../core/channels.js';
import { newId } from '../core/ids.js';
import type { PlannedDelivery, Reach } from '../core/planning.js';
import type { Db, Executor } from './database.js';
import {
  deliveries,
  deliveryAttempts,
  idempotencyKeys,
  notifications,
  pushTokens,
  recipients,
} from './schema.js';

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
  /** Digest of the request, compared when an idempotency key is reused. */
  requestHash: string;
  sendAt: Date | null;
  expiresAt: Date | null;
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

export type Planner = (item: NewNotification, reach: Reach) => PlannedDelivery[];

const IDEMPOTENCY_WINDOW = sql`interval '24 hours'`;
// Keeps each multi-row INSERT well under PostgreSQL's 65,535 bind parameters.
const INSERT_CHUNK = 1_000;

/**
 * Stores a batch of notifications in one transaction and returns one result per item, in order.
 * Items whose idempotency key was already used by `senderKeyId` within 24 hours with the same request
 * hash are answered from the original notification and write nothing; a different hash throws
 * IdempotencyConflictError and rolls everything back.
 */
export function storeNotifications(
  db: Db,
  senderKeyId: string | null,
  items: readonly NewNotification[],
  plan: Planner,
): Promise<StoredSend[]> {
  return db.transaction(async (tx) => {
    const results: (StoredSend | undefined)[] = new Array(items.length);
    const ids = items.map(() => newId());
    if (senderKeyId) await claimIdempotencyKeys(tx, senderKeyId, items, ids, results);
    const fresh = items.flatMap((item, index) => (results[index] ? [] : [{ item, index, id: ids[index]! }]));
    if (fresh.length > 0) await insertFresh(tx, senderKeyId, fresh, plan, results);
    return results.map((r) => r!);
  });
}

async function claimIdempotencyKeys(
  tx: Executor,
  senderKeyId: string,
  items: readonly NewNotification[],
  ids: string[],
  results: (StoredSend | undefined)[],
): Promise<void> {
  const keyed = items.flatMap((item, index) => (item.idempotencyKey ? [{ item, index }] : []));
  if (keyed.length === 0) return;
  // Insert every key; an existing key older than the window is taken over. A concurrent Send with the same
  // key blocks here on the primary key until the other transaction ends, so exactly one of them wins.
  const claimed = await tx
    .insert(idempotencyKeys)
    .values(
      keyed.map(({ item, index }) => ({
        senderKeyId,
        key: item.idempotencyKey!,
        requestHash: item.requestHash,
        notificationId: ids[index]!,
      })),
    )
    .onConflictDoUpdate({
      target: [idempotencyKeys.senderKeyId, idempotencyKeys.key],
      set: {
        requestHash: sql`excluded.request_hash`,
        notificationId: sql`excluded.notification_id`,
        createdAt: sql`excluded.created_at`,
      },
      setWhere: sql`${idempotencyKeys.createdAt} < now() - ${IDEMPOTENCY_WINDOW}`,
    })
    .returning({ key: idempotencyKeys.key });
  if (claimed.length === keyed.length) return;

  const claimedKeys = new Set(claimed.map((r) => r.key));
  const taken = keyed.filter(({ item }) => !claimedKeys.has(item.idempotencyKey!));
  const existing = await tx
    .select({
      key: idempotencyKeys.key,
      requestHash: idempotencyKeys.requestHash,
      notificationId: idempotencyKeys.notificationId,
    })
    .from(idempotencyKeys)
    .where(
      and(
        eq(idempotencyKeys.senderKeyId, senderKeyId),
        inArray(
          idempotencyKeys.key,
          taken.map(({ item }) => item.idempotencyKey!),
        ),
      ),
    );
  const byKey = new Map(existing.map((row) => [row.key, row]));
  for (const { item, index } of taken) {
    const row = byKey.get(item.idempotencyKey!);
    if (!row || row.requestHash !== item.requestHash) throw new IdempotencyConflictError(index);
  }
  const originals = await loadSendResults(
    tx,
    taken.map(({ item }) => byKey.get(item.idempotencyKey!)!.notificationId),
  );
  for (const { item, index } of taken) {
    const original = originals.get(byKey.get(item.idempotencyKey!)!.notificationId);
    if (!original) throw new IdempotencyConflictError(index);
    results[index] = { ...original, replay: true };
  }
}

async function insertFresh(
  tx: Executor,
  senderKeyId: string | null,
  fresh: { item: NewNotification; index: number; id: string }[],
  plan: Planner,
  results: (StoredSend | undefined)[],
): Promise<void> {
  const seqs = await reserveSequences(tx, fresh);
  const withPush = fresh.some(({ item }) => item.channels.includes('push'))
    ? await usersWithActivePushTokens(tx, [...new Set(fresh.map(({ item }) => item.userId))])
    : new Set<string>();

  const notificationRows: (typeof notifications.$inferInsert)[] = [];
  const deliveryRows: (typeof deliveries.$inferInsert)[] = [];
  const now = new Date();
  for (const { item, index, id } of fresh) {
    const recipient = seqs.recipients.get(item.userId)!;
    const seq = seqs.next(item.userId);
    const sendAt = item.sendAt ?? now;
    notificationRows.push({
      id,
      userId: item.userId,
      seq,
      type: item.type,
      priority: item.priority,
      data: item.data,
      title: item.title,
      body: item.body,
      senderKeyId,
      idempotencyKey: item.idempotencyKey,
      sendAt,
      expiresAt: item.expiresAt,
    });
    const planned = plan(item, {
      email: recipient.email !== null,
      phone: recipient.phone !== null,
      pushTokens: withPush.has(item.userId),
    });
    const stored = planned.map((p) => ({
      id: newId(),
      channel: p.channel,
      status: p.status,
      reason: p.reason,
    }));
    for (const d of stored) {
      deliveryRows.push({
        id: d.id,
        notificationId: id,
        userId: item.userId,
        channel: d.channel,
        status: d.status,
        reason: d.reason,
        nextAttemptAt: sendAt,
      });
    }
    results[index] = { notificationId: id, seq, deliveries: stored, replay: false };
  }
  for (let i = 0; i < notificationRows.length; i += INSERT_CHUNK) {
    await tx.insert(notifications).values(notificationRows.slice(i, i + INSERT_CHUNK));
  }
  for (let i = 0; i < deliveryRows.length; i += INSERT_CHUNK) {
    await tx.insert(deliveries).values(deliveryRows.slice(i, i + INSERT_CHUNK));
  }
}

interface ReservedSequences {
  recipients: Map<string, { email: string | null; phone: string | null }>;
  /** The next seq for this user, in request order. */
  next(userId: string): number;
}

/**
 * Upserts each recipient and reserves as many seqs as the batch has notifications for them, in one
 * statement. The row lock taken by the upsert serialises concurrent Sends for one user, so seqs are
 * unique and never go backwards. Users are locked in sorted order so two batches cannot deadlock.
 */
async function reserveSequences(
  tx: Executor,
  fresh: { item: NewNotification }[],
): Promise<ReservedSequences> {
  const perUser = new Map<string, { count: number; profile: RecipientProfile }>();
  for (const { item } of fresh) {
    const entry = perUser.get(item.userId) ?? { count: 0, profile: {} };
    entry.count++;
    entry.profile = { ...entry.profile, ...definedOnly(item.recipient) };
    perUser.set(item.userId, entry);
  }
  const rows = [...perUser.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([userId, { count, profile }]) => ({
      userId,
      email: profile.email ?? null,
      phone: profile.phone ?? null,
      locale: profile.locale ?? null,
      timezone: profile.timezone ?? null,
      lastSeq: count,
    }));
  const updated = await tx
    .insert(recipients)
    .values(rows)
    .onConflictDoUpdate({
      target: recipients.userId,
      set: {
        email: sql`coalesce(excluded.email, ${recipients.email})`,
        phone: sql`coalesce(excluded.phone, ${recipients.phone})`,
        locale: sql`coalesce(excluded.locale, ${recipients.locale})`,
        timezone: sql`coalesce(excluded.timezone, ${recipients.timezone})`,
        lastSeq: sql`${recipients.lastSeq} + excluded.last_seq`,
        updatedAt: sql`now()`,
      },
    })
    .returning({
      userId: recipients.userId,
      email: recipients.email,
      phone: recipients.phone,
      lastSeq: recipients.lastSeq,
    });
  const nextSeq = new Map<string, number>();
  const profiles = new Map<string, { email: string | null; phone: string | null }>();
  for (const row of updated) {
    nextSeq.set(row.userId, row.lastSeq - perUser.get(row.userId)!.count + 1);
    profiles.set(row.userId, { email: row.email, phone: row.phone });
  }
  return {
    recipients: profiles,
    next(userId) {
      const seq = nextSeq.get(userId)!;
      nextSeq.set(userId, seq + 1);
      return seq;
    },
  };
}

function definedOnly(profile: RecipientProfile): RecipientProfile {
  return Object.fromEntries(Object.entries(profile).filter(([, v]) => v !== undefined));
}

async function usersWithActivePushTokens(tx: Executor, userIds: string[]): Promise<Set<string>> {
  const rows = await tx
    .selectDistinct({ userId: pushTokens.userId })
    .from(pushTokens)
    .where(and(inArray(pushTokens.userId, userIds), eq(pushTokens.active, true)));
  return new Set(rows.map((r) => r.userId));
}

async function loadSendResults(tx: Executor, notificationIds: string[]): Promise<Map<string, StoredSend>> {
  const rows = await tx
    .select({ id: notifications.id, seq: notifications.seq })
    .from(notifications)
    .where(inArray(notifications.id, notificationIds));
  const results = new Map<string, StoredSend>(
    rows.map((r) => [r.id, { notificationId: r.id, seq: r.seq, deliveries: [], replay: true }]),
  );
  const ds = await tx
    .select({
      id: deliveries.id,
      notificationId: deliveries.notificationId,
      channel: deliveries.channel,
      status: deliveries.status,
      reason: deliveries.reason,
    })
    .from(deliveries)
    .where(inArray(deliveries.notificationId, notificationIds))
    .orderBy(asc(deliveries.id));
  for (const d of ds) {
    results.get(d.notificationId)?.deliveries.push({
      id: d.id,
      channel: d.channel as ChannelName,
      status: d.status as DeliveryStatus,
      reason: d.reason,
    });
  }
  return results;
}

export type NotificationRow = typeof notifications.$inferSelect;
export type DeliveryRow = typeof deliveries.$inferSelect;
export type AttemptRow = typeof deliveryAttempts.$inferSelect;

export interface NotificationDetail {
  notification: NotificationRow;
  deliveries: (DeliveryRow & { attemptLog: AttemptRow[] })[];
}

/** A notification with every delivery and every attempt, or undefined. */
export async function getNotificationDetail(
  db: Executor,
  id: string,
): Promise<NotificationDetail | undefined> {
  const [notification] = await db.select().from(notifications).where(eq(notifications.id, id));
  if (!notification) return undefined;
  const ds = await db
    .select()
    .from(deliveries)
    .where(eq(deliveries.notificationId, id))
    .orderBy(asc(deliveries.step), asc(deliveries.id));
  const attempts =
    ds.length === 0
      ? []
      : await db
          .select()
          .from(deliveryAttempts)
          .where(
            inArray(
              deliveryAttempts.deliveryId,
              ds.map((d) => d.id),
            ),
          )
          .orderBy(asc(deliveryAttempts.startedAt));
  return {
    notification,
    deliveries: ds.map((d) => ({ ...d, attemptLog: attempts.filter((a) => a.deliveryId === d.id) })),
  };
}
