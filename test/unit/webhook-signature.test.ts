// Standard Webhooks signatures, checked by the independent reference verifier (the standardwebhooks package).
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { generateWebhookSecret, isWebhookSecret, signWebhook } from '../../src/channels/webhook/signature.js';

const id = 'msg_2Lq8ZbC7';
const body = JSON.stringify({ type: 'order.shipped', data: { order: 'A-17', note: 'déjà vu ✓' } });
const nowSeconds = () => Math.floor(Date.now() / 1000);

function headersFor(signature: string, timestamp = nowSeconds(), webhookId = id): Record<string, string> {
  return { 'webhook-id': webhookId, 'webhook-timestamp': String(timestamp), 'webhook-signature': signature };
}

const secretOf = (bytes: number) => `whsec_${randomBytes(bytes).toString('base64')}`;

describe('secrets', () => {
  it('generates whsec_ plus base64 of 32 random bytes', () => {
    const secret = generateWebhookSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(secret.slice(6), 'base64')).toHaveLength(32);
    expect(generateWebhookSecret()).not.toBe(secret);
  });

  it.each([
    ['a generated secret', generateWebhookSecret()],
    ['24 bytes', secretOf(24)],
    ['64 bytes', secretOf(64)],
    ['32 bytes without padding', secretOf(32).replace(/=+$/, '')],
    ['the Standard Webhooks example', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'],
  ])('accepts %s', (_name, secret) => {
    expect(isWebhookSecret(secret)).toBe(true);
  });

  it.each([
    ['23 bytes', secretOf(23)],
    ['65 bytes', secretOf(65)],
    ['no prefix', randomBytes(32).toString('base64')],
    ['the wrong prefix', `whsek_${randomBytes(32).toString('base64')}`],
    ['base64url characters', `whsec_${'-_'.repeat(22)}`],
    ['a space inside', `whsec_${randomBytes(16).toString('base64')} ${randomBytes(16).toString('base64')}`],
    ['nothing after the prefix', 'whsec_'],
    ['an empty string', ''],
  ])('rejects %s', (_name, secret) => {
    expect(isWebhookSecret(secret)).toBe(false);
  });
});

describe('signWebhook', () => {
  it('matches the Standard Webhooks example signature', () => {
    const signature = signWebhook(
      ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'],
      'msg_p5jXN8AQM9LWM0D4loKWxJek',
      1614265330,
      '{"test": 2432232314}',
    );
    expect(signature).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it('produces a signature the reference verifier accepts', () => {
    const secret = generateWebhookSecret();
    const timestamp = nowSeconds();
    const signature = signWebhook([secret], id, timestamp, body);
    expect(signature).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(new Webhook(secret).verify(body, headersFor(signature, timestamp))).toEqual(JSON.parse(body));
  });

  it('gives one signature per secret during rotation, each verifiable on its own', () => {
    const [oldSecret, newSecret] = [generateWebhookSecret(), generateWebhookSecret()];
    const timestamp = nowSeconds();
    const signature = signWebhook([oldSecret, newSecret], id, timestamp, body);
    const parts = signature.split(' ');
    expect(parts).toHaveLength(2);
    expect(parts.every((p) => p.startsWith('v1,'))).toBe(true);
    for (const secret of [oldSecret, newSecret]) {
      expect(() => new Webhook(secret).verify(body, headersFor(signature, timestamp))).not.toThrow();
    }
    for (const [i, part] of parts.entries()) {
      const secret = i === 0 ? oldSecret : newSecret;
      expect(() => new Webhook(secret).verify(body, headersFor(part ?? '', timestamp))).not.toThrow();
    }
    expect(() => new Webhook(generateWebhookSecret()).verify(body, headersFor(signature, timestamp))).toThrow(
      'No matching signature',
    );
  });

  it('fails verification when the body is tampered with', () => {
    const secret = generateWebhookSecret();
    const timestamp = nowSeconds();
    const signature = signWebhook([secret], id, timestamp, body);
    const tampered = body.replace('A-17', 'A-18');
    expect(() => new Webhook(secret).verify(tampered, headersFor(signature, timestamp))).toThrow(
      'No matching signature',
    );
  });

  it('fails verification when the id or the timestamp is changed', () => {
    const secret = generateWebhookSecret();
    const timestamp = nowSeconds();
    const signature = signWebhook([secret], id, timestamp, body);
    const webhook = new Webhook(secret);
    expect(() => webhook.verify(body, headersFor(signature, timestamp, 'msg_other'))).toThrow();
    expect(() => webhook.verify(body, headersFor(signature, timestamp + 1))).toThrow();
  });

  it('refuses a malformed secret without quoting it', () => {
    const secret = 'whsec_not-base64!';
    expect(() => signWebhook([generateWebhookSecret(), secret], id, nowSeconds(), body)).toThrow(
      /secret #2 is not whsec_/,
    );
    let message = '';
    try {
      signWebhook([secret], id, nowSeconds(), body);
    } catch (err) {
      message = err instanceof Error ? err.message : '';
    }
    expect(message).toContain('secret #1');
    expect(message).not.toContain('not-base64');
  });

  it('refuses an empty secret list and a fractional timestamp', () => {
    expect(() => signWebhook([], id, nowSeconds(), body)).toThrow(RangeError);
    expect(() => signWebhook([generateWebhookSecret()], id, Date.now() / 1000, body)).toThrow(RangeError);
  });
});
