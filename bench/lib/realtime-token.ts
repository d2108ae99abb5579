// End-user credentials for the real-time benchmarks: HS256 JWTs (`sub` = user id) signed with the secret the
// Herald child verifies them with (HERALD_JWT_SECRET, which the child inherits from this process).
import { createSecretKey, randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';

const MIN_SECRET_BYTES = 32;
const TOKEN_TTL_SECONDS = 3_600;

/**
 * The secret Herald will verify user tokens with: the environment's if it is long enough, else a fresh one,
 * put in the environment so the Herald child (which inherits it) and the client children agree.
 */
export function ensureJwtSecret(): string {
  const existing = process.env.HERALD_JWT_SECRET;
  if (existing !== undefined && Buffer.byteLength(existing) >= MIN_SECRET_BYTES) return existing;
  const secret = randomBytes(MIN_SECRET_BYTES).toString('hex');
  process.env.HERALD_JWT_SECRET = secret;
  return secret;
}

/** Signs user tokens with one key; `sign` resolves to a compact JWT valid for an hour. */
export function userTokenSigner(secret: string): (userId: string) => Promise<string> {
  const key = createSecretKey(Buffer.from(secret));
  return (userId) =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(userId)
      .setIssuedAt()
      .setExpirationTime(`${TOKEN_TTL_SECONDS}s`)
      .sign(key);
}
