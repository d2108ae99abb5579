// Row counts across every table a request could write, to prove that a rejected request wrote nothing.
import { count } from 'drizzle-orm';
import type { Db } from '../../src/store/index.js';
import * as schema from '../../src/store/schema.js';

const tables = {
  recipients: schema.recipients,
  notifications: schema.notifications,
  deliveries: schema.deliveries,
  idempotencyKeys: schema.idempotencyKeys,
  pushTokens: schema.pushTokens,
  preferences: schema.preferences,
  suppressions: schema.suppressions,
  outboxMessages: schema.outboxMessages,
};

export async function rowCounts(db: Db): Promise<Record<keyof typeof tables, number>> {
  const entries = await Promise.all(
    Object.entries(tables).map(async ([name, table]) => {
      const [row] = await db.select({ n: count() }).from(table);
      return [name, row?.n ?? 0] as const;
    }),
  );
  return Object.fromEntries(entries) as Record<keyof typeof tables, number>;
}
