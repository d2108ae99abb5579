// End-user JWTs, issued by the customer's own auth system and verified with jose against a configured
// HS256 secret, an RS256/ES256 public key, or a JWKS (file or URL). `sub` is the user id; `exp` is required.
import { createPublicKey, webcrypto } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createLocalJWKSet, createRemoteJWKSet, importSPKI, type JWTVerifyGetKey, jwtVerify } from 'jose';
import type { JwtConfig } from '../config.js';
import { HeraldError } from '../core/errors.js';
import { checkId } from '../core/rules.js';

/** A valid token's user, and when the token stops being valid. */
export interface VerifiedUserToken {
  userId: string;
  expiresAt: Date;
}

/** Resolves to whom a valid token speaks for, and until when; rejects with an `unauthenticated` HeraldError. */
export type UserTokenVerifier = (token: string) => Promise<VerifiedUserToken>;

/** Verified tokens kept, so a client reconnecting with the same token (a reconnect storm) is not verified again. */
const CACHED_TOKENS = 20_000;
/** How long a verified token is taken without verifying it again (and never past its exp). */
const CACHE_MS = 5 * 60_000;

export async function createUserTokenVerifier(config: JwtConfig): Promise<UserTokenVerifier | undefined> {
  const source = await keySource(config);
  if (!source) return undefined;
  const options = {
    algorithms: source.algorithms,
    requiredClaims: ['exp', 'sub'],
    ...(config.issuer ? { issuer: config.issuer } : {}),
    ...(config.audience ? { audience: config.audience } : {}),
  };
  const verify = async (token: string): Promise<VerifiedUserToken> => {
    // `sub` as the token states it: jose does not check its type, and a non-string must never be coerced
    // (an array ["alice"] would otherwise pass the id rule as "alice").
    let sub: unknown;
    let exp: unknown;
    try {
      const { payload } =
        typeof source.key === 'function'
          ? await jwtVerify(token, source.key, options)
          : await jwtVerify(token, source.key, options);
      sub = payload.sub;
      exp = payload.exp;
    } catch (error) {
      // jose's messages name the failed check (expired, signature, claim) and never echo the token.
      const reason = error instanceof Error ? error.message : 'invalid token';
      throw new HeraldError('unauthenticated', `user token rejected: ${reason}`);
    }
    if (typeof sub !== 'string' || checkId(sub) !== undefined) {
      throw new HeraldError('unauthenticated', 'user token rejected: sub must be a valid user id');
    }
    // jose has checked that exp is a number in the future.
    return { userId: sub, expiresAt: new Date(Number(exp) * 1000) };
  };

  // Keyed by the whole token: only the very same token, already verified, is answered from here.
  const verified = new Map<string, { token: VerifiedUserToken; until: number }>();
  return async (token) => {
    const now = Date.now();
    const hit = verified.get(token);
    if (hit && hit.until > now) return hit.token;
    if (hit) verified.delete(token);
    const result = await verify(token);
    if (verified.size >= CACHED_TOKENS) verified.delete(verified.keys().next().value!);
    verified.set(token, { token: result, until: Math.min(result.expiresAt.getTime(), now + CACHE_MS) });
    return result;
  };
}

interface KeySource {
  key: webcrypto.CryptoKey | JWTVerifyGetKey;
  algorithms: string[];
}

// Keys are imported once, as CryptoKeys: handed a KeyObject, jose imports it again on every verification.
async function keySource(config: JwtConfig): Promise<KeySource | undefined> {
  if (config.secret) {
    const key = await webcrypto.subtle.importKey(
      'raw',
      Buffer.from(config.secret),
      { name: 'HMAC', hash: 'SHA-256' },
      false,
      ['verify'],
    );
    return { key, algorithms: ['HS256'] };
  }
  if (config.publicKeyFile) {
    const publicKey = createPublicKey(await readFile(config.publicKeyFile, 'utf8'));
    const algorithm =
      publicKey.asymmetricKeyType === 'rsa'
        ? 'RS256'
        : publicKey.asymmetricKeyType === 'ec'
          ? 'ES256'
          : undefined;
    if (!algorithm) throw new Error('HERALD_JWT_PUBLIC_KEY_FILE must hold an RSA or EC (P-256) public key');
    const spki = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    return { key: await importSPKI(spki, algorithm), algorithms: [algorithm] };
  }
  if (config.jwksFile) {
    const jwks = JSON.parse(await readFile(config.jwksFile, 'utf8'));
    return { key: createLocalJWKSet(jwks), algorithms: ['RS256', 'ES256'] };
  }
  if (config.jwksUrl)
    return { key: createRemoteJWKSet(new URL(config.jwksUrl)), algorithms: ['RS256', 'ES256'] };
  return undefined;
}
