// The SNS emulator itself: its bodies are checked here by an independent verifier (node:crypto, with the
// signing certificate fetched over HTTPS trusting only the emulator's CA), so SES webhook tests can trust
// that what verifies there is what SNS would send and what is forged is not.
import { createVerify, X509Certificate } from 'node:crypto';
import { get } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type SnsEmulator,
  type SnsMessage,
  sesBounce,
  sesComplaint,
  sesDelivery,
  startSnsEmulator,
  tamper,
} from '../emulators/sns.js';

const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:herald-ses';

let sns: SnsEmulator;
beforeAll(async () => {
  sns = await startSnsEmulator();
});
afterAll(async () => {
  await sns.close();
});

function httpsGet(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { ca, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** Verifies as a subscriber would, written here from the SNS rules rather than reusing the emulator's code. */
async function verifies(body: SnsMessage): Promise<boolean> {
  const fields = body as unknown as Record<string, string | undefined>;
  const keys =
    fields.Type === 'Notification'
      ? ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type']
      : ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'];
  const canonical = keys
    .filter((k) => fields[k] !== undefined)
    .map((k) => `${k}\n${fields[k]}\n`)
    .join('');
  const certUrl = new URL(fields.SigningCertURL ?? '');
  if (certUrl.protocol !== 'https:' || !certUrl.pathname.endsWith('.pem')) return false;
  const { status, body: pem } = await httpsGet(certUrl.href, sns.ca);
  if (status !== 200) return false;
  const algorithm = { '1': 'RSA-SHA1', '2': 'RSA-SHA256' }[fields.SignatureVersion ?? ''];
  if (algorithm === undefined) return false;
  const verifier = createVerify(algorithm);
  verifier.update(canonical, 'utf8');
  return verifier.verify(new X509Certificate(pem).publicKey, fields.Signature ?? '', 'base64');
}

describe('SNS emulator', () => {
  it('serves an RSA 2048 signing certificate over its own TLS and counts fetches', async () => {
    expect(sns.host).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(sns.signingCertUrl).toMatch(
      new RegExp(`^https://${sns.host.replace(/\./g, '\\.')}/SimpleNotificationService-[0-9a-f]+\\.pem$`),
    );
    const before = sns.certFetches();
    const { status, body } = await httpsGet(sns.signingCertUrl, sns.ca);
    expect(status).toBe(200);
    expect(body).toBe(sns.signingCert);
    const key = new X509Certificate(body).publicKey;
    expect(key.asymmetricKeyType).toBe('rsa');
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(sns.certFetches()).toBe(before + 1);
    // Without trusting the emulator's CA the TLS handshake fails.
    await expect(httpsGet(sns.signingCertUrl, '')).rejects.toThrow();
  });

  for (const signatureVersion of ['1', '2'] as const) {
    it(`signs notifications with SignatureVersion ${signatureVersion}`, async () => {
      const withSubject = sns.notification({
        topicArn: TOPIC,
        subject: 'Amazon SES Email Event Notification',
        message: sesBounce({
          messageId: 'ses-1',
          recipients: ['gone@example.test'],
          bounceType: 'Permanent',
          bounceSubType: 'General',
        }),
        signatureVersion,
      });
      expect(withSubject).toMatchObject({
        Type: 'Notification',
        TopicArn: TOPIC,
        SignatureVersion: signatureVersion,
        SigningCertURL: sns.signingCertUrl,
      });
      expect(JSON.parse(withSubject.Message)).toMatchObject({
        notificationType: 'Bounce',
        mail: { messageId: 'ses-1', destination: ['gone@example.test'] },
        bounce: { bounceType: 'Permanent', bouncedRecipients: [{ emailAddress: 'gone@example.test' }] },
      });
      expect(await verifies(withSubject)).toBe(true);

      const noSubject = sns.notification({ topicArn: TOPIC, message: 'plain', signatureVersion });
      expect(noSubject).not.toHaveProperty('Subject');
      expect(noSubject.Message).toBe('plain');
      expect(await verifies(noSubject)).toBe(true);
    });

    it(`signs subscription confirmations with SignatureVersion ${signatureVersion}`, async () => {
      const body = sns.subscriptionConfirmation({ topicArn: TOPIC, signatureVersion });
      expect(body.Type).toBe('SubscriptionConfirmation');
      expect(body.SubscribeURL).toBe(`https://${sns.host}/confirm?Token=${body.Token}`);
      expect(await verifies(body)).toBe(true);
    });
  }

  it('rejects tampered bodies and foreign signatures', async () => {
    const note = sns.notification({
      topicArn: TOPIC,
      subject: 's',
      message: sesComplaint({ messageId: 'ses-2', recipients: ['angry@example.test'] }),
      signatureVersion: '2',
    });
    expect(await verifies(tamper(note, 'Message', '{}'))).toBe(false);
    expect(await verifies(tamper(note, 'TopicArn', 'arn:aws:sns:eu-west-1:1:other'))).toBe(false);
    expect(await verifies(tamper(note, 'Subject', undefined))).toBe(false);
    expect(await verifies(tamper(note, 'SignatureVersion', '1'))).toBe(false);
    expect(await verifies(note)).toBe(true);

    const foreign = sns.signWithForeignKey(note);
    expect(foreign.SigningCertURL).toBe(sns.signingCertUrl);
    expect(foreign.Signature).not.toBe(note.Signature);
    expect(await verifies(foreign)).toBe(false);

    const confirmation = sns.subscriptionConfirmation({ topicArn: TOPIC });
    expect(await verifies(tamper(confirmation, 'SubscribeURL', 'https://evil.test/confirm'))).toBe(false);
    expect(await verifies(sns.signWithForeignKey(confirmation))).toBe(false);
  });

  it('records SubscribeURL confirmations', async () => {
    const body = sns.subscriptionConfirmation({ topicArn: TOPIC });
    const { status, body: xml } = await httpsGet(body.SubscribeURL, sns.ca);
    expect(status).toBe(200);
    expect(xml).toContain('<ConfirmSubscriptionResponse>');
    expect(sns.confirmations()).toContain(body.Token);

    const unknown = await httpsGet(`${sns.url}/confirm?Token=never-issued`, sns.ca);
    expect(unknown.status).toBe(404);
    expect(sns.confirmations()).toContain('never-issued');
  });

  it('builds SES payloads', () => {
    const delivery = sesDelivery({ messageId: 'ses-3', recipients: ['a@example.test', 'b@example.test'] });
    expect(delivery).toMatchObject({
      notificationType: 'Delivery',
      mail: {
        messageId: 'ses-3',
        destination: ['a@example.test', 'b@example.test'],
        source: expect.any(String),
      },
      delivery: { recipients: ['a@example.test', 'b@example.test'], timestamp: expect.any(String) },
    });
    const transient = sesBounce({
      messageId: 'ses-4',
      recipients: ['full@example.test'],
      bounceType: 'Transient',
      bounceSubType: 'MailboxFull',
    });
    expect(transient.bounce).toMatchObject({ bounceType: 'Transient', bounceSubType: 'MailboxFull' });
    expect(sesComplaint({ messageId: 'ses-5', recipients: ['x@example.test'] }).complaint).toMatchObject({
      complainedRecipients: [{ emailAddress: 'x@example.test' }],
    });
  });
});
