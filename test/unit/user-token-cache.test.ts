// The user-token verifier keeps tokens it verified, so clients reconnecting with the same token are not
// verified again; what it keeps must never outlive the token's exp, and only the very same token hits.
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createUserTokenVerifier } from '../../src/api/user-tokens.js';

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256';
const config = {
  secret: SECRET,
  publicKeyFile: undefined,
  jwksFile: undefined,
  jwksUrl: undefined,
  issuer: undefined,
  audience: undefined,
};

function sign(sub: string, expiresInS: number): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime(Math.floor(Date.now() / 1000) + expiresInS)
    .sign(new TextEncoder().encode(SECRET));
}

describe('the user-token verifier cache', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('rejects a token verified before once its exp has passed', async () => {
    const verify = (await createUserTokenVerifier(config))!;
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const token = await sign('alice', 30);
    expect((await verify(token)).userId).toBe('alice');
    vi.setSystemTime(Date.now() + 10_000);
    expect((await verify(token)).userId).toBe('alice');
    vi.setSystemTime(Date.now() + 25_000);
    await expect(verify(token)).rejects.toThrow(/user token rejected: "exp" claim timestamp check failed/);
  });

  it('takes only the very same token: one altered after a hit is verified, and fails', async () => {
    const verify = (await createUserTokenVerifier(config))!;
    const token = await sign('bob', 600);
    expect((await verify(token)).userId).toBe('bob');
    const [header, payload, signature] = token.split('.');
    const forged = `${header}.${Buffer.from(JSON.stringify({ sub: 'mallory', exp: 9_999_999_999 })).toString('base64url')}.${signature}`;
    expect(payload).not.toBe(forged.split('.')[1]);
    await expect(verify(forged)).rejects.toThrow(/user token rejected: signature verification failed/);
    expect((await verify(token)).userId).toBe('bob');
  });
});
