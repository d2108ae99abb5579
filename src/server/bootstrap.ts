import { sql } from 'drizzle-orm';
import { anyApiKeyExists, createApiKey, type Db } from '../store/index.js';

/**
 * On first start with no API keys at all, creates one admin key so the quickstart works without extra
 * steps. The table lock makes two instances starting together create at most one.
 */
export function bootstrapAdminKey(db: Db): Promise<string | undefined> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`lock table api_keys in share row exclusive mode`);
    if (await anyApiKeyExists(tx)) return undefined;
    const { key } = await createApiKey(tx, 'bootstrap-admin', ['admin']);
    return key;
  });
}
