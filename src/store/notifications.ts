// The notification read model: a notification with every delivery and every attempt.
import { and, asc, eq, inArray } from 'drizzle-orm';
import type { Executor } from './database.js';
import { deliveries, deliveryAttempts, notifications, pushTokens } from './schema.js';

export type NotificationRow = typeof notifications.$inferSelect;
export type DeliveryRow = typeof deliveries.$inferSelect;
export type AttemptRow = typeof deliveryAttempts.$inferSelect;

export interface NotificationDetail {
  notification: NotificationRow;
  /** `pushToken`: a push delivery's token, while it is registered (shown masked). */
  deliveries: (DeliveryRow & { pushToken: string | null; attemptLog: AttemptRow[] })[];
}

/** A notification with every delivery and every attempt, or undefined. */
export async function getNotificationDetail(
  db: Executor,
  id: string,
): Promise<NotificationDetail | undefined> {
  const [notification] = await db.select().from(notifications).where(eq(notifications.id, id));
  if (!notification) return undefined;
  return (await withDeliveries(db, [notification], { attempts: true }))[0];
}

/** Each notification with its deliveries (in step order), and their attempts when asked for. */
export async function withDeliveries(
  db: Executor,
  rows: NotificationRow[],
  { attempts }: { attempts: boolean },
): Promise<NotificationDetail[]> {
  if (rows.length === 0) return [];
  const ds = await db
    .select({ delivery: deliveries, pushToken: pushTokens.token })
    .from(deliveries)
    // A token that moved to another user since is not this delivery's any more: it is not shown.
    .leftJoin(
      pushTokens,
      and(eq(pushTokens.id, deliveries.pushTokenId), eq(pushTokens.userId, deliveries.userId)),
    )
    .where(
      inArray(
        deliveries.notificationId,
        rows.map((n) => n.id),
      ),
    )
    .orderBy(asc(deliveries.step), asc(deliveries.id));
  const log =
    !attempts || ds.length === 0
      ? []
      : await db
          .select()
          .from(deliveryAttempts)
          .where(
            inArray(
              deliveryAttempts.deliveryId,
              ds.map((d) => d.delivery.id),
            ),
          )
          .orderBy(asc(deliveryAttempts.startedAt));
  const attemptsOf = groupBy(log, (a) => a.deliveryId);
  const deliveriesOf = groupBy(ds, ({ delivery }) => delivery.notificationId);
  return rows.map((notification) => ({
    notification,
    deliveries: (deliveriesOf.get(notification.id) ?? []).map(({ delivery, pushToken }) => ({
      ...delivery,
      pushToken,
      attemptLog: attemptsOf.get(delivery.id) ?? [],
    })),
  }));
}

/** The items by key, each group in the items' order. */
function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}
