import { eq } from 'drizzle-orm';
import type { ChannelName } from '../core/channels.js';
import type { Db } from './database.js';
import { type ChannelSwitches, preferences, type TypeSwitches } from './schema.js';

export interface QuietHoursSetting {
  start: string;
  end: string;
  timezone: string;
}

export interface StoredPreferences {
  userId: string;
  channels: ChannelSwitches;
  types: TypeSwitches;
  quietHours: QuietHoursSetting | null;
  updatedAt: Date | null;
}

export interface PreferencesPatch {
  channels: { channel: ChannelName; enabled: boolean }[];
  types: { type: string; channel: ChannelName; enabled: boolean }[];
  /** undefined: keep; null: clear; a value: replace. */
  quietHours: QuietHoursSetting | null | undefined;
}

export async function getPreferences(db: Db, userId: string): Promise<StoredPreferences> {
  const [row] = await db.select().from(preferences).where(eq(preferences.userId, userId));
  if (!row) return { userId, channels: {}, types: {}, quietHours: null, updatedAt: null };
  return toStored(row);
}

/** Merges the patch into the stored preferences under a row lock, so concurrent updates never lose a switch. */
export function updatePreferences(
  db: Db,
  userId: string,
  patch: PreferencesPatch,
): Promise<StoredPreferences> {
  return db.transaction(async (tx) => {
    await tx.insert(preferences).values({ userId }).onConflictDoNothing();
    const [current] = await tx.select().from(preferences).where(eq(preferences.userId, userId)).for('update');
    if (!current) throw new Error('preferences row vanished inside its transaction');
    const channels: ChannelSwitches = { ...current.channels };
    for (const c of patch.channels) channels[c.channel] = c.enabled;
    const types: TypeSwitches = structuredClone(current.types);
    for (const t of patch.types) types[t.type] = { ...types[t.type], [t.channel]: t.enabled };
    const quiet =
      patch.quietHours === undefined
        ? { quietStart: current.quietStart, quietEnd: current.quietEnd, quietTimezone: current.quietTimezone }
        : {
            quietStart: patch.quietHours?.start ?? null,
            quietEnd: patch.quietHours?.end ?? null,
            quietTimezone: patch.quietHours?.timezone ?? null,
          };
    const [row] = await tx
      .update(preferences)
      .set({ channels, types, ...quiet, updatedAt: new Date() })
      .where(eq(preferences.userId, userId))
      .returning();
    return toStored(row!);
  });
}

function toStored(row: typeof preferences.$inferSelect): StoredPreferences {
  return {
    userId: row.userId,
    channels: row.channels,
    types: row.types,
    quietHours:
      row.quietStart && row.quietEnd && row.quietTimezone
        ? { start: row.quietStart, end: row.quietEnd, timezone: row.quietTimezone }
        : null,
    updatedAt: row.updatedAt,
  };
}
