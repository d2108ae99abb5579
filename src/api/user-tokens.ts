// End-user JWTs, issued by the customer's own auth system and verified with jose against a configured
// HS256 secret, an RS256/ES256 public key, or a JWKS (file or URL). `sub` is the user id; `exp` is required.
import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createLocalJWKSet, createRemoteJWKSet, type JWTVerifyGetKey, jwtVerify } from 'jose';
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

export async function createUserTokenVerifier(config: JwtConfig): Promise<UserTokenVerifier | undefined> {
  const source = await keySource(config);
  if (!source) return undefined;
  const options = {
    algorithms: source.algorithms,
    requiredClaims: ['exp', 'sub'],
    ...(config.issuer ? { issuer: config.issuer } : {}),
    ...(config.audience ? { audience: config.audience } : {}),
  };
  return async (token) => {
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
}

interface KeySource {
  key: KeyObject | JWTVerifyGetKey;
  algorithms: string[];
}

async function keySource(config: JwtConfig): Promise<KeySource | undefined> {
  if (config.secret) return { key: createSecretKey(Buffer.from(config.secret)), algorithms: ['HS256'] };
  if (config.publicKeyFile) {
    const key = createPublicKey(await readFile(config.publicKeyFile, 'utf8'));
    const algorithm =
      key.asymmetricKeyType === 'rsa' ? 'RS256' : key.asymmetricKeyType === 'ec' ? 'ES256' : undefined;
    if (!algorithm) throw new Error('HERALD_JWT_PUBLIC_KEY_FILE must hold an RSA or EC (P-256) public key');
    return { key, algorithms: [algorithm] };
  }
  if (config.jwksFile) {
    const jwks = JSON.parse(await readFile(config.jwksFile, 'utf8'));
    return { key: createLocalJWKSet(jwks), algorithms: ['RS256', 'ES256'] };
  }
  if (config.jwksUrl)
    return { key: createRemoteJWKSet(new URL(config.jwksUrl)), algorithms: ['RS256', 'ES256'] };
  return undefined;
}
