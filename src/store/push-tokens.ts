import { and, eq, sql } from 'drizzle-orm';
import { newId } from '../core/ids.js';
import type { Executor } from './database.js';
import { pushTokens } from './schema.js';

export type PushTokenRow = typeof pushTokens.$inferSelect;

export interface TokenRegistration {
  userId: string;
  platform: string;
  token: string;
  webPushP256dh: string | null;
  webPushAuth: string | null;
  deviceId: string | null;
  appId: string | null;
}

/**
 * Registers or refreshes a push token. A token already registered (by anyone) moves to this user and is
 * reactivated: a device that changed hands must stop receiving the previous owner's notifications.
 */
export async function registerPushToken(db: Executor, reg: TokenRegistration): Promise<PushTokenRow> {
  const [row] = await db
    .insert(pushTokens)
    .values({ id: newId(), ...reg })
    .onConflictDoUpdate({
      target: [pushTokens.platform, pushTokens.token],
      set: {
        userId: sql`excluded.user_id`,
        webPushP256dh: sql`excluded.web_push_p256dh`,
        webPushAuth: sql`excluded.web_push_auth`,
        deviceId: sql`excluded.device_id`,
        appId: sql`excluded.app_id`,
        active: true,
        invalidReason: null,
        lastSeenAt: sql`now()`,
      },
    })
    .returning();
  if (!row) throw new Error('push token upsert returned no row');
  return row;
}

export async function findPushToken(
  db: Executor,
  platform: string,
  token: string,
): Promise<PushTokenRow | undefined> {
  const [row] = await db
    .select()
    .from(pushTokens)
    .where(and(eq(pushTokens.platform, platform), eq(pushTokens.token, token)));
  return row;
}

/** Deactivates a token; when `userId` is given, only if it belongs to that user. Returns whether a row changed. */
export async function deactivatePushToken(
  db: Executor,
  platform: string,
  token: string,
  reason: string,
  userId?: string,
): Promise<boolean> {
  const rows = await db
    .update(pushTokens)
    .set({ active: false, invalidReason: reason })
    .where(
      and(
        eq(pushTokens.platform, platform),
        eq(pushTokens.token, token),
        userId === undefined ? undefined : eq(pushTokens.userId, userId),
      ),
    )
    .returning({ id: pushTokens.id });
  return rows.length > 0;
}
