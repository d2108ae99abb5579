// Who is calling, and what they may do. Services present API keys (scopes send, read, admin; admin implies
// the others; a key may act for any user). End users present JWTs and may only touch their own data.
import { createContextKey, type HandlerContext, type Interceptor } from '@connectrpc/connect';
import { type ApiKeyScope, hashApiKey, isWellFormedApiKey, looksLikeApiKey } from '../core/api-key.js';
import { HeraldError, invalidArgument } from '../core/errors.js';
import { checkId } from '../core/rules.js';
import { type Db, findActiveApiKeyByHash } from '../store/index.js';
import type { UserTokenVerifier } from './user-tokens.js';

export type Principal =
  | { kind: 'service'; keyId: string; name: string; scopes: ReadonlySet<ApiKeyScope> }
  /** An end user, until their token expires (open streams and WebSockets end then: credential-watch.ts). */
  | { kind: 'user'; userId: string; expiresAt: Date };

export const principalKey = createContextKey<Principal | undefined>(undefined, {
  description: 'herald principal',
});

export interface Authenticator {
  /** Who presents `authorization` (an Authorization header's value); rejects with UNAUTHENTICATED. */
  (authorization: string | null): Promise<Principal>;
  /**
   * The principal of an API key verified within the cache TTL, presented as `Bearer <key>`, found without
   * hashing or waiting (the per-call fast path); undefined for anything else, which the call above answers.
   */
  cached(authorization: string | null): Principal | undefined;
}

export interface AuthenticatorOptions {
  db: Db;
  verifyUserToken: UserTokenVerifier | undefined;
  /** How long a verified API key is trusted without asking the database again (revocation delay). */
  cacheTtlMs: number;
  now?: () => number;
}

const CACHE_LIMIT = 10_000;

export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  const now = options.now ?? Date.now;
  // Only keys that verified are cached, so garbage keys cannot grow the cache. Keyed by the key itself, so a
  // hit costs one map lookup (hashing it is most of what authentication costs per call otherwise).
  const cache = new Map<string, { principal: Principal; until: number }>();

  function cachedPrincipal(key: string): Principal | undefined {
    const hit = cache.get(key);
    return hit && hit.until > now() ? hit.principal : undefined;
  }

  async function apiKeyPrincipal(key: string): Promise<Principal> {
    if (!isWellFormedApiKey(key)) throw new HeraldError('unauthenticated', 'API key is malformed');
    const hit = cachedPrincipal(key);
    if (hit) return hit;
    const row = await findActiveApiKeyByHash(options.db, hashApiKey(key));
    if (!row) {
      cache.delete(key);
      throw new HeraldError('unauthenticated', 'API key is unknown or revoked');
    }
    const principal: Principal = {
      kind: 'service',
      keyId: row.id,
      name: row.name,
      scopes: new Set(row.scopes as ApiKeyScope[]),
    };
    if (options.cacheTtlMs > 0) {
      if (cache.size >= CACHE_LIMIT) cache.clear();
      cache.set(key, { principal, until: now() + options.cacheTtlMs });
    }
    return principal;
  }

  const authenticate = async (authorization: string | null): Promise<Principal> => {
    const match = authorization ? /^Bearer\s+(\S+)\s*$/i.exec(authorization) : null;
    if (!match)
      throw new HeraldError('unauthenticated', 'missing "Authorization: Bearer <API key or user token>"');
    const credential = match[1]!;
    if (looksLikeApiKey(credential)) return apiKeyPrincipal(credential);
    if (!options.verifyUserToken) {
      throw new HeraldError('unauthenticated', 'user tokens are not enabled (configure HERALD_JWT_*)');
    }
    return { kind: 'user', ...(await options.verifyUserToken(credential)) };
  };
  return Object.assign(authenticate, {
    cached: (authorization: string | null) =>
      authorization?.startsWith('Bearer ') ? cachedPrincipal(authorization.slice(7)) : undefined,
  });
}

/** Services that answer without credentials: load balancer health probes, and reflection (the schema is public). */
const publicServices = new Set([
  'grpc.health.v1.Health',
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
]);

export function authInterceptor(authenticate: Authenticator): Interceptor {
  return (next) => (req) => {
    if (publicServices.has(req.service.typeName)) return next(req);
    const authorization = req.header.get('authorization');
    const known = authenticate.cached(authorization);
    if (known) {
      req.contextValues.set(principalKey, known);
      return next(req);
    }
    return authenticate(authorization).then((principal) => {
      req.contextValues.set(principalKey, principal);
      return next(req);
    });
  };
}

export function principalOf(ctx: HandlerContext): Principal {
  const principal = ctx.values.get(principalKey);
  if (!principal) throw new HeraldError('unauthenticated', 'no credentials');
  return principal;
}

/** An admin key holds every scope. */
export function hasScope(principal: Extract<Principal, { kind: 'service' }>, scope: ApiKeyScope): boolean {
  return principal.scopes.has(scope) || principal.scopes.has('admin');
}

/** The caller must be a service whose key carries `scope`. */
export function requireServiceScope(
  ctx: HandlerContext,
  scope: ApiKeyScope,
): Extract<Principal, { kind: 'service' }> {
  const principal = principalOf(ctx);
  if (principal.kind !== 'service') {
    throw new HeraldError('permission_denied', 'user tokens may not call this method; use an API key');
  }
  if (!hasScope(principal, scope)) {
    throw new HeraldError('permission_denied', `API key lacks the "${scope}" scope`);
  }
  return principal;
}

/**
 * The scopes a service key needs for a user's inbox, whichever transport asks (RPCs and the WebSocket bridge):
 * following or listing it reads; marking or acknowledging changes it.
 */
export const INBOX_SCOPES = { follow: 'read', change: 'send' } as const satisfies Record<string, ApiKeyScope>;

/** Whether `principal` may act on a user's data with `scope`: a user token always may (for its own user). */
export function mayAct(principal: Principal, scope: ApiKeyScope): boolean {
  return principal.kind === 'user' || hasScope(principal, scope);
}

/**
 * Resolves which user a per-user call acts for. A user token acts for its own user only (an empty
 * `requested` means itself); a service key needs `scope` and must name the user.
 */
export function actingUser(
  ctx: HandlerContext,
  requested: string,
  field: string,
  scope: ApiKeyScope,
): string {
  return actingUserOf(principalOf(ctx), requested, field, scope);
}

/** actingUser for a caller already authenticated outside an RPC (the WebSocket bridge). */
export function actingUserOf(
  principal: Principal,
  requested: string,
  field: string,
  scope: ApiKeyScope,
): string {
  if (principal.kind === 'user') {
    if (requested !== '' && requested !== principal.userId) {
      throw new HeraldError('permission_denied', 'a user token may only act for its own user', field);
    }
    return principal.userId;
  }
  if (!hasScope(principal, scope)) {
    throw new HeraldError('permission_denied', `API key lacks the "${scope}" scope`);
  }
  const problem = checkId(requested);
  if (problem) throw invalidArgument(field, problem);
  return requested;
}

/** After loading a user's resource: may this caller see it? */
export function assertMayAccessUser(ctx: HandlerContext, ownerUserId: string, scope: ApiKeyScope): void {
  const principal = principalOf(ctx);
  if (principal.kind === 'user') {
    if (principal.userId !== ownerUserId) {
      throw new HeraldError('permission_denied', 'a user token may only access its own user');
    }
    return;
  }
  requireServiceScope(ctx, scope);
}
