import { and, eq, sql } from 'drizzle-orm';
import { newId } from '../core/ids.js';
import type { Executor, SqlRunner } from './database.js';
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
        invalidatedAt: null,
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

/**
 * Deactivates every active token not registered or refreshed since `before` (reason "stale"): a device that
 * stopped opening the app months ago has most likely dropped it. Answers how many, by platform.
 */
export async function deactivateStaleTokens(
  sqlRunner: SqlRunner,
  before: Date,
): Promise<Map<string, number>> {
  const rows = await sqlRunner.query<{ platform: string; n: number }>(
    `with stale as (
       update push_tokens set active = false, invalid_reason = 'stale', invalidated_at = now()
       where active and last_seen_at < $1::timestamptz
       returning platform)
     select platform, count(*)::int as n from stale group by platform`,
    [before.toISOString()],
  );
  return new Map(rows.map((r) => [r.platform, Number(r.n)]));
}

/** Active tokens by platform. */
export async function countActiveTokens(sqlRunner: SqlRunner): Promise<Map<string, number>> {
  const rows = await sqlRunner.query<{ platform: string; n: number }>(
    'select platform, count(*)::int as n from push_tokens where active group by platform',
    [],
  );
  return new Map(rows.map((r) => [r.platform, Number(r.n)]));
}
