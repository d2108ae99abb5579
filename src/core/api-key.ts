// API key format: "hk_" followed by 43 base64url characters (32 random bytes). Only the SHA-256 of the
// whole key is stored; the prefix (first 8 characters after "hk_") identifies a key in listings.
import { createHash, randomBytes } from 'node:crypto';

export const apiKeyScopes = ['send', 'read', 'admin'] as const;
export type ApiKeyScope = (typeof apiKeyScopes)[number];

const API_KEY_PATTERN = /^hk_[A-Za-z0-9_-]{43}$/;

export function generateApiKey(): { key: string; prefix: string; hash: string } {
  const key = `hk_${randomBytes(32).toString('base64url')}`;
  return { key, prefix: key.slice(0, 11), hash: hashApiKey(key) };
}

export function looksLikeApiKey(value: string): boolean {
  return value.startsWith('hk_');
}

export function isWellFormedApiKey(value: string): boolean {
  return API_KEY_PATTERN.test(value);
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function isApiKeyScope(value: string): value is ApiKeyScope {
  return (apiKeyScopes as readonly string[]).includes(value);
}
