import { and, asc, eq, inArray, isNull } from 'drizzle-orm';
import { type ApiKeyScope, generateApiKey } from '../core/api-key.js';
import { newId } from '../core/ids.js';
import type { Executor } from './database.js';
import { apiKeys } from './schema.js';

export type ApiKeyRow = typeof apiKeys.$inferSelect;

/** Creates a key and returns it in full: the only time it is ever visible. */
export async function createApiKey(
  db: Executor,
  name: string,
  scopes: readonly ApiKeyScope[],
): Promise<{ row: ApiKeyRow; key: string }> {
  const { key, prefix, hash } = generateApiKey();
  const [row] = await db
    .insert(apiKeys)
    .values({ id: newId(), name, prefix, keyHash: hash, scopes: [...scopes] })
    .returning();
  return { row: row!, key };
}

export async function findActiveApiKeyByHash(db: Executor, hash: string): Promise<ApiKeyRow | undefined> {
  const [row] = await db
    .select()
    .from(apiKeys)
    .where(and(eq(apiKeys.keyHash, hash), isNull(apiKeys.revokedAt)));
  return row;
}

export function listApiKeys(db: Executor): Promise<ApiKeyRow[]> {
  return db.select().from(apiKeys).orderBy(asc(apiKeys.createdAt));
}

/** Whether any key exists at all, revoked or not. */
export async function anyApiKeyExists(db: Executor): Promise<boolean> {
  const rows = await db.select({ id: apiKeys.id }).from(apiKeys).limit(1);
  return rows.length > 0;
}

/** Revokes by id or by the displayed prefix (hk_xxxxxxxx). Returns the revoked keys. */
export async function revokeApiKey(db: Executor, idOrPrefix: string): Promise<ApiKeyRow[]> {
  const byId = /^[0-9a-f-]{36}$/i.test(idOrPrefix);
  return db
    .update(apiKeys)
    .set({ revokedAt: new Date() })
    .where(and(isNull(apiKeys.revokedAt), byId ? eq(apiKeys.id, idOrPrefix) : eq(apiKeys.prefix, idOrPrefix)))
    .returning();
}

/** Which of these keys are no longer usable (revoked, or deleted): one query for any number of keys. */
export async function findUnusableApiKeys(db: Executor, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const active = await db
    .select({ id: apiKeys.id })
    .from(apiKeys)
    .where(and(inArray(apiKeys.id, [...ids]), isNull(apiKeys.revokedAt)));
  const usable = new Set(active.map((row) => row.id));
  return new Set(ids.filter((id) => !usable.has(id)));
}
