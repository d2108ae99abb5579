// Standard Webhooks v1 signatures (standardwebhooks.com). A secret reads `whsec_` + base64 of 24..64
// random bytes; the HMAC key is those bytes, not the text. During rotation an endpoint has several secrets
// and each request carries one signature per secret, so receivers holding either secret accept it.
import { createHmac, randomBytes } from 'node:crypto';

const SECRET_PREFIX = 'whsec_';
const MIN_KEY_BYTES = 24;
const MAX_KEY_BYTES = 64;

export function generateWebhookSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(32).toString('base64')}`;
}

export function isWebhookSecret(value: string): boolean {
  return secretKey(value) !== undefined;
}

/**
 * Value of the `webhook-signature` header: `v1,<base64 HMAC-SHA256(key, "{id}.{timestampSeconds}.{body}")>`
 * for each secret, space-separated. Throws a TypeError (which never quotes the secret) for a malformed
 * secret, and a RangeError when there is no secret or the timestamp is not whole seconds.
 */
export function signWebhook(
  secrets: readonly string[],
  id: string,
  timestampSeconds: number,
  body: string,
): string {
  if (secrets.length === 0) throw new RangeError('signWebhook needs at least one secret');
  if (!Number.isSafeInteger(timestampSeconds)) {
    throw new RangeError(`webhook timestamp must be whole Unix seconds (got ${timestampSeconds})`);
  }
  const signedContent = `${id}.${timestampSeconds}.${body}`;
  return secrets
    .map((secret, index) => {
      const key = secretKey(secret);
      if (key === undefined) {
        throw new TypeError(`webhook secret #${index + 1} is not whsec_ + base64 of 24..64 bytes`);
      }
      return `v1,${createHmac('sha256', key).update(signedContent, 'utf8').digest('base64')}`;
    })
    .join(' ');
}

/** The key bytes, or undefined unless the secret is the prefix plus base64 (padding optional) of 24..64 bytes. */
function secretKey(secret: string): Buffer | undefined {
  if (!secret.startsWith(SECRET_PREFIX)) return undefined;
  const encoded = secret.slice(SECRET_PREFIX.length);
  const key = Buffer.from(encoded, 'base64');
  // Buffer.from skips characters outside the alphabet; re-encoding exposes them and stray trailing bits.
  const canonical = key.toString('base64');
  if (encoded !== canonical && encoded !== canonical.replace(/=+$/, '')) return undefined;
  return key.length >= MIN_KEY_BYTES && key.length <= MAX_KEY_BYTES ? key : undefined;
}
