// Credentials are checked when a call starts, but a stream or a WebSocket can stay open for days. The watch
// ends them when their credential stops being valid: a user token at its `exp`, an API key once it is
// revoked (or deleted). One timer serves every open connection; revocations are looked up for all watched
// keys in one query, as often as the API key cache is refreshed, so an open connection learns of a
// revocation within the same bound as a new call does.
import type { Db } from '../store/index.js';
import { findUnusableApiKeys } from '../store/index.js';
import type { Principal } from './auth.js';

export type CredentialEnd = 'expired' | 'revoked';

export interface CredentialWatch {
  /**
   * Calls `end` once, when the principal's credential expires or is revoked, as long as it is watched.
   * Returns the function that stops watching (the connection closed first).
   */
  watch(principal: Principal, end: (why: CredentialEnd) => void): () => void;
  close(): void;
}

export interface CredentialWatchOptions {
  db: Db;
  /** How often API keys are checked for revocation (the API key cache's lifetime). */
  revocationCheckMs: number;
  /** How often token expiry is checked: the most an expired token's stream outlives it by. */
  expiryCheckMs: number;
  onError: (error: unknown) => void;
}

interface Watched {
  principal: Principal;
  end: (why: CredentialEnd) => void;
}

export function createCredentialWatch(options: CredentialWatchOptions): CredentialWatch {
  const watched = new Set<Watched>();
  let lastRevocationCheck = performance.now();
  let checking = false;

  function finish(entry: Watched, why: CredentialEnd): void {
    if (!watched.delete(entry)) return;
    entry.end(why);
  }

  async function checkRevocations(): Promise<void> {
    const byKey = new Map<string, Watched[]>();
    for (const entry of watched) {
      if (entry.principal.kind !== 'service') continue;
      const list = byKey.get(entry.principal.keyId);
      if (list) list.push(entry);
      else byKey.set(entry.principal.keyId, [entry]);
    }
    if (byKey.size === 0) return;
    const unusable = await findUnusableApiKeys(options.db, [...byKey.keys()]);
    for (const keyId of unusable) for (const entry of byKey.get(keyId) ?? []) finish(entry, 'revoked');
  }

  const timer = setInterval(() => {
    const now = Date.now();
    for (const entry of watched) {
      if (entry.principal.kind === 'user' && entry.principal.expiresAt.getTime() <= now)
        finish(entry, 'expired');
    }
    if (checking || performance.now() - lastRevocationCheck < options.revocationCheckMs) return;
    checking = true;
    lastRevocationCheck = performance.now();
    checkRevocations()
      .catch(options.onError) // the database is away: the next check tries again
      .finally(() => {
        checking = false;
      });
  }, options.expiryCheckMs);
  timer.unref();

  return {
    watch(principal, end) {
      const entry: Watched = { principal, end };
      watched.add(entry);
      return () => {
        watched.delete(entry);
      };
    },
    close() {
      clearInterval(timer);
      watched.clear();
    },
  };
}
