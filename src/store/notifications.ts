// The notification read model: a notification with every delivery and every attempt.
import { asc, eq, inArray } from 'drizzle-orm';
import type { Executor } from './database.js';
import { deliveries, deliveryAttempts, notifications } from './schema.js';

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
