// The SMTP emulator itself, driven by the real nodemailer pooled transport (STARTTLS, AUTH): email adapter
// tests trust what it checks, scripts and records. Also pins down the error code and shape nodemailer gives
// for each kind of refusal (EAUTH, EENVELOPE, EMESSAGE, EPROTOCOL, ETLS), which decide how the adapter
// classifies an answer, and checks the independent DKIM verifier against nodemailer's signer.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createTransport } from 'nodemailer';
import type { SMTPPoolOptions } from 'nodemailer/lib/smtp-pool';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SmtpEmulator, startSmtpEmulator, verifyDkim } from '../emulators/smtp.js';

const USERS = { herald: 'correct horse' };
const FROM = 'Herald <noreply@herald.test>';
const ONE_CLICK = {
  'List-Unsubscribe': '<https://herald.test/unsubscribe/SIGNED_TOKEN>, <mailto:unsubscribe@herald.test>',
  'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
};

let emulator: SmtpEmulator;
const transports: { close(): void }[] = [];

function pooled(target: SmtpEmulator, extra: Partial<SMTPPoolOptions> = {}) {
  const transport = createTransport({
    host: '127.0.0.1',
    port: target.port,
    secure: false,
    requireTLS: true,
    tls: { ca: target.ca },
    auth: { user: 'herald', pass: USERS.herald },
    pool: true,
    ...extra,
  });
  transports.push(transport);
  return transport;
}

/** What sendMail rejected with, as a plain object of its own properties plus the message. */
async function failure(sending: Promise<unknown>): Promise<Record<string, unknown>> {
  const error = await sending.then(
    () => expect.fail('sendMail resolved'),
    (e: unknown) => e as Error,
  );
  return { ...error, message: error.message };
}

const receivedFor = (address: string) => emulator.received.filter((m) => m.envelope.to.includes(address));

beforeAll(async () => {
  emulator = await startSmtpEmulator({ users: USERS });
});
afterAll(async () => {
  for (const t of transports) t.close();
  await emulator.close();
});

describe('SMTP emulator with STARTTLS and AUTH', () => {
  it('records a message with html, text and one-click headers, after STARTTLS, with the AUTH user', async () => {
    const before = Date.now();
    const info = await pooled(emulator).sendMail({
      from: FROM,
      to: 'Ada Lovelace <ada@example.com>',
      replyTo: 'support@herald.test',
      subject: 'Your order shipped',
      text: 'It is on its way.',
      html: '<p>It is on its <b>way</b>.</p>',
      headers: ONE_CLICK,
    });

    expect(info).toMatchObject({ accepted: ['ada@example.com'], rejected: [], response: '250 OK: queued' });
    await emulator.waitFor((all) => all.length > 0, 1000);
    const [message] = receivedFor('ada@example.com');
    expect(message).toMatchObject({
      envelope: { from: 'noreply@herald.test', to: ['ada@example.com'] },
      subject: 'Your order shipped',
      from: { name: 'Herald', address: 'noreply@herald.test' },
      to: [{ name: 'Ada Lovelace', address: 'ada@example.com' }],
      replyTo: { name: '', address: 'support@herald.test' },
      text: 'It is on its way.',
      html: '<p>It is on its <b>way</b>.</p>',
      messageId: info.messageId,
      secure: true,
      user: 'herald',
    });
    expect(message?.headers).toMatchObject({
      'list-unsubscribe': ONE_CLICK['List-Unsubscribe'],
      'list-unsubscribe-post': 'List-Unsubscribe=One-Click',
      'message-id': info.messageId,
    });
    expect(message?.raw).toContain('\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n');
    expect(message?.receivedAt).toBeGreaterThanOrEqual(before);
  });

  it('answers wrong credentials with 535: EAUTH', async () => {
    const sending = pooled(emulator, { auth: { user: 'herald', pass: 'wrong' } }).sendMail({
      from: FROM,
      to: 'eve@example.com',
      text: 'x',
    });
    expect(await failure(sending)).toEqual({
      code: 'EAUTH',
      command: 'AUTH PLAIN',
      response: '535 5.7.8 Authentication credentials invalid',
      responseCode: 535,
      permanent: true,
      message: 'Invalid login: 535 5.7.8 Authentication credentials invalid',
    });
    expect(receivedFor('eve@example.com')).toEqual([]);
  });

  it('answers MAIL without AUTH with 530: EENVELOPE', async () => {
    const sending = pooled(emulator, { auth: undefined }).sendMail({
      from: FROM,
      to: 'eve@example.com',
      text: 'x',
    });
    expect(await failure(sending)).toMatchObject({
      code: 'EENVELOPE',
      command: 'MAIL FROM',
      responseCode: 530,
      permanent: true,
    });
  });

  it('rejects a recipient scripted 550 at RCPT: EENVELOPE with rejected and rejectedErrors; then accepts', async () => {
    emulator.script('Gone@Example.com', [{ stage: 'rcpt', code: 550, message: '5.1.1 user unknown' }]);
    const transport = pooled(emulator);

    const error = await failure(transport.sendMail({ from: FROM, to: 'gone@example.com', text: 'x' }));

    const rejection = {
      code: 'EENVELOPE',
      command: 'RCPT TO',
      response: '550 5.1.1 user unknown',
      responseCode: 550,
      permanent: true,
    };
    expect(error).toEqual({
      ...rejection,
      rejected: ['gone@example.com'],
      // Error instances, one per refused recipient.
      rejectedErrors: [
        expect.objectContaining({
          ...rejection,
          recipient: 'gone@example.com',
          message: 'Recipient command failed: 550 5.1.1 user unknown',
        }),
      ],
      message: "Can't send mail - all recipients were rejected: 550 5.1.1 user unknown",
    });
    expect((error.rejectedErrors as unknown[])[0]).toBeInstanceOf(Error);
    expect(receivedFor('gone@example.com')).toEqual([]);
    // The script is used up: the default accepts.
    await expect(
      transport.sendMail({ from: FROM, to: 'gone@example.com', text: 'x' }),
    ).resolves.toMatchObject({
      accepted: ['gone@example.com'],
    });
  });

  it('with one of two recipients refused at RCPT, sendMail resolves and lists it in rejected', async () => {
    emulator.script('full@example.com', [{ stage: 'rcpt', code: 552, message: '5.2.2 mailbox full' }]);
    const info = await pooled(emulator).sendMail({
      from: FROM,
      to: ['full@example.com', 'grace@example.com'],
      text: 'x',
    });
    expect(info).toMatchObject({
      accepted: ['grace@example.com'],
      rejected: ['full@example.com'],
      rejectedErrors: [
        { code: 'EENVELOPE', responseCode: 552, recipient: 'full@example.com', permanent: true },
      ],
    });
    expect(receivedFor('grace@example.com')[0]?.envelope.to).toEqual(['grace@example.com']);
  });

  it('setDefault refuses every recipient without a script of its own', async () => {
    emulator.setDefault({ stage: 'rcpt', code: 450, message: '4.2.1 mailbox busy' });
    try {
      const error = await failure(
        pooled(emulator).sendMail({ from: FROM, to: 'busy@example.com', text: 'x' }),
      );
      expect(error).toMatchObject({ code: 'EENVELOPE', responseCode: 450, permanent: false });
    } finally {
      emulator.setDefault(null);
    }
  });

  it('refuses DATA scripted 451: EMESSAGE, and records nothing', async () => {
    emulator.script('later@example.com', [{ stage: 'data', code: 451, message: '4.3.0 try later' }]);
    const transport = pooled(emulator);
    const error = await failure(transport.sendMail({ from: FROM, to: 'later@example.com', text: 'x' }));
    expect(error).toEqual({
      code: 'EMESSAGE',
      command: 'DATA',
      response: '451 4.3.0 try later',
      responseCode: 451,
      permanent: false,
      message: 'Message failed: 451 4.3.0 try later',
    });
    expect(receivedFor('later@example.com')).toEqual([]);
    await transport.sendMail({ from: FROM, to: 'later@example.com', text: 'x' });
    expect(receivedFor('later@example.com')).toHaveLength(1);
  });

  it('failNextConnections answers the greeting with 421: EPROTOCOL; the next connection delivers', async () => {
    const opened = emulator.sessions();
    emulator.failNextConnections(1);
    const transport = pooled(emulator);
    const error = await failure(transport.sendMail({ from: FROM, to: 'retry@example.com', text: 'x' }));
    expect(error).toMatchObject({
      code: 'EPROTOCOL',
      command: 'CONN',
      response: expect.stringMatching(/^421 /),
      responseCode: 421,
      permanent: false,
    });
    await transport.sendMail({ from: FROM, to: 'retry@example.com', text: 'x' });
    expect(receivedFor('retry@example.com')).toHaveLength(1);
    expect(emulator.sessions()).toBe(opened + 2);
  });

  it('verifyDkim accepts a message nodemailer signed, and refuses it once the body or a header changes', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    await pooled(emulator).sendMail({
      from: FROM,
      to: 'signed@example.com',
      subject: 'Signed   subject',
      text: 'Trailing spaces   \r\nand blank lines\r\n\r\n\r\n',
      html: '<p>Signed</p>',
      headers: ONE_CLICK,
      dkim: { domainName: 'herald.test', keySelector: 'k2026', privateKey },
    });
    const raw = receivedFor('signed@example.com')[0]?.raw ?? '';

    expect(verifyDkim(raw, publicKey)).toEqual({
      valid: true,
      domain: 'herald.test',
      selector: 'k2026',
      signedHeaders: expect.arrayContaining(['from', 'subject', 'list-unsubscribe', 'list-unsubscribe-post']),
    });
    expect(verifyDkim(raw.replace('<p>Signed</p>', '<p>Signed!</p>'), publicKey)).toEqual({
      valid: false,
      reason: 'body hash mismatch',
    });
    expect(verifyDkim(raw.replace('Signed   subject', 'Signed subject!'), publicKey)).toEqual({
      valid: false,
      reason: 'signature mismatch',
    });
    // Relaxed canonicalization tolerates re-folded whitespace in a signed header.
    expect(verifyDkim(raw.replace('Signed   subject', 'Signed\r\n subject'), publicKey)).toMatchObject({
      valid: true,
    });
    const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({
      type: 'spki',
      format: 'pem',
    });
    expect(verifyDkim(raw, otherKey.toString())).toEqual({ valid: false, reason: 'signature mismatch' });
    expect(verifyDkim(raw.replace(/^DKIM-Signature:/m, 'X-Old-Signature:'), publicKey)).toEqual({
      valid: false,
      reason: 'no DKIM-Signature header',
    });
  });

  it('waitFor rejects when the condition is not met in time', async () => {
    await expect(emulator.waitFor((all) => all.length > 1000, 50)).rejects.toThrow(/not met within 50 ms/);
  });
});

describe('SMTP emulator TLS variants', () => {
  it('requireTLS against a server without STARTTLS fails: ETLS with its 500 answer', async () => {
    const plain = await startSmtpEmulator({ starttls: false });
    try {
      const error = await failure(
        pooled(plain, { auth: undefined }).sendMail({ from: FROM, to: 'a@example.com', text: 'x' }),
      );
      expect(error).toMatchObject({
        code: 'ETLS',
        command: 'STARTTLS',
        response: '500 Error: command not recognized',
        responseCode: 500,
        permanent: true,
      });
      // Without requireTLS the same server takes the message in clear text.
      const clear = pooled(plain, { auth: undefined, requireTLS: false });
      await clear.sendMail({ from: FROM, to: 'a@example.com', text: 'x' });
      expect(plain.received[0]).toMatchObject({ secure: false, user: null });
    } finally {
      await plain.close();
    }
  });

  it('implicitTls: TLS from the first byte, with AUTH', async () => {
    const implicit = await startSmtpEmulator({ implicitTls: true, users: USERS });
    try {
      await pooled(implicit, { secure: true, requireTLS: false }).sendMail({
        from: FROM,
        to: 'a@example.com',
        text: 'x',
      });
      expect(implicit.received[0]).toMatchObject({
        secure: true,
        user: 'herald',
        envelope: { to: ['a@example.com'] },
      });
    } finally {
      await implicit.close();
    }
  });

  it('close() drops idle pooled connections at once and removes the certificate folder', async () => {
    const server = await startSmtpEmulator();
    await pooled(server, { auth: undefined }).sendMail({ from: FROM, to: 'a@example.com', text: 'x' });
    const started = Date.now();
    await server.close();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(existsSync(server.caFile)).toBe(false);
  });
});
