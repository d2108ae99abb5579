// Amazon SNS as an HTTPS subscriber sees it, for tests of the SES bounce/complaint webhook: a local HTTPS
// server (its own self-signed TLS certificate) that serves the SNS signing certificate, counting fetches, and
// answers the SubscribeURL, recording confirmations; builders for the exact JSON bodies SNS POSTs, signed
// with an RSA 2048 key made at start (SignatureVersion 1 = RSA-SHA1, 2 = RSA-SHA256); helpers for forged
// bodies; and builders for the SES payloads carried in `Message`.
import { execFileSync } from 'node:child_process';
import { createSign, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { testCertificate } from '../support/tls.js';

export type SignatureVersion = '1' | '2';

export interface SnsNotification {
  Type: 'Notification';
  MessageId: string;
  TopicArn: string;
  Subject?: string;
  /** The payload as a string (objects are JSON-encoded). */
  Message: string;
  Timestamp: string;
  SignatureVersion: SignatureVersion;
  Signature: string;
  SigningCertURL: string;
  UnsubscribeURL: string;
}

export interface SnsSubscriptionConfirmation {
  Type: 'SubscriptionConfirmation';
  MessageId: string;
  Token: string;
  TopicArn: string;
  Message: string;
  /** https://HOST/confirm?Token=... */
  SubscribeURL: string;
  Timestamp: string;
  SignatureVersion: SignatureVersion;
  Signature: string;
  SigningCertURL: string;
}

export type SnsMessage = SnsNotification | SnsSubscriptionConfirmation;

export interface NotificationOptions {
  topicArn: string;
  /** An object is JSON-encoded; a string is sent as is. */
  message: object | string;
  subject?: string;
  /** Default '1'. */
  signatureVersion?: SignatureVersion;
}

export interface SubscriptionConfirmationOptions {
  topicArn: string;
  /** Default '1'. */
  signatureVersion?: SignatureVersion;
}

export interface SnsEmulator {
  /** 127.0.0.1:PORT */
  readonly host: string;
  /** https://127.0.0.1:PORT */
  readonly url: string;
  /** PEM of the server's self-signed TLS certificate: the CA a client must trust. */
  readonly ca: string;
  /** The same certificate as a file. */
  readonly caFile: string;
  /** https://HOST/SimpleNotificationService-RANDOM.pem */
  readonly signingCertUrl: string;
  /** PEM of the RSA signing certificate served at signingCertUrl. */
  readonly signingCert: string;
  /** How many times the signing certificate was fetched. */
  certFetches(): number;
  /** Tokens of the SubscribeURLs requested, in order (issued or not). */
  confirmations(): string[];
  notification(options: NotificationOptions): SnsNotification;
  subscriptionConfirmation(options: SubscriptionConfirmationOptions): SnsSubscriptionConfirmation;
  /**
   * The body re-signed with a key that is not this emulator's, still pointing at this emulator's
   * SigningCertURL: a signature that must not verify.
   */
  signWithForeignKey<T extends SnsMessage>(body: T): T;
  /** Stops the server and removes the temporary files. */
  close(): Promise<void>;
}

/** A copy of a signed body with one field changed after signing (undefined removes it). */
export function tamper<T extends SnsMessage>(body: T, field: keyof T & string, value: string | undefined): T {
  const copy: Record<string, unknown> = { ...body };
  if (value === undefined) delete copy[field];
  else copy[field] = value;
  return copy as T;
}

/** The string SNS signs for a body: `Key\nValue\n` for the signed fields of its Type, in order. */
export function stringToSign(body: SnsMessage): string {
  const keys =
    body.Type === 'Notification'
      ? ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type']
      : ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'];
  const fields = body as unknown as Record<string, unknown>;
  let out = '';
  for (const key of keys) {
    const value = fields[key];
    if (typeof value === 'string') out += `${key}\n${value}\n`;
  }
  return out;
}

function sign<T extends SnsMessage>(body: T, privateKey: string): T {
  const signer = createSign(body.SignatureVersion === '2' ? 'RSA-SHA256' : 'RSA-SHA1');
  signer.update(stringToSign(body), 'utf8');
  return { ...body, Signature: signer.sign(privateKey, 'base64') };
}

let foreignKey: string | undefined;
function foreignPrivateKey(): string {
  foreignKey ??= generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
  return foreignKey;
}

/** An RSA 2048 key and a self-signed certificate for it, as SNS signs with. */
function signingCertificate(): { dir: string; cert: string; key: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-sns-'));
  const certFile = path.join(dir, 'signing.pem');
  const keyFile = path.join(dir, 'signing-key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '2',
      '-subj',
      '/CN=sns.us-east-1.amazonaws.com',
    ],
    { stdio: 'ignore' },
  );
  return { dir, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}

export async function startSnsEmulator(): Promise<SnsEmulator> {
  const tls = testCertificate();
  const signing = signingCertificate();
  const certPath = `/SimpleNotificationService-${randomBytes(16).toString('hex')}.pem`;
  const issuedTokens = new Set<string>();
  const confirmed: string[] = [];
  let fetches = 0;

  const server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const target = new URL(req.url ?? '/', 'https://sns.invalid');
    if (req.method === 'GET' && target.pathname === certPath) {
      fetches++;
      res.writeHead(200, { 'content-type': 'application/x-pem-file' });
      res.end(signing.cert);
      return;
    }
    if (req.method === 'GET' && target.pathname === '/confirm') {
      const token = target.searchParams.get('Token') ?? '';
      confirmed.push(token);
      res.writeHead(issuedTokens.has(token) ? 200 : 404, { 'content-type': 'text/xml' });
      res.end(
        issuedTokens.has(token)
          ? `<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>arn:aws:sns:us-east-1:000000000000:herald:${randomUUID()}</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>`
          : '<ErrorResponse><Error><Type>Sender</Type><Code>NotFound</Code><Message>Unknown token</Message></Error></ErrorResponse>',
      );
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('sns emulator: not on a TCP port');
  const host = `127.0.0.1:${address.port}`;
  const url = `https://${host}`;
  const signingCertUrl = `${url}${certPath}`;

  return {
    host,
    url,
    ca: tls.cert,
    caFile: tls.certFile,
    signingCertUrl,
    signingCert: signing.cert,
    certFetches: () => fetches,
    confirmations: () => [...confirmed],
    notification({ topicArn, message, subject, signatureVersion = '1' }) {
      const body: SnsNotification = {
        Type: 'Notification',
        MessageId: randomUUID(),
        TopicArn: topicArn,
        ...(subject === undefined ? {} : { Subject: subject }),
        Message: typeof message === 'string' ? message : JSON.stringify(message),
        Timestamp: new Date().toISOString(),
        SignatureVersion: signatureVersion,
        Signature: '',
        SigningCertURL: signingCertUrl,
        UnsubscribeURL: `${url}/?Action=Unsubscribe&SubscriptionArn=${encodeURIComponent(`${topicArn}:${randomUUID()}`)}`,
      };
      return sign(body, signing.key);
    },
    subscriptionConfirmation({ topicArn, signatureVersion = '1' }) {
      const token = randomBytes(64).toString('hex');
      issuedTokens.add(token);
      const body: SnsSubscriptionConfirmation = {
        Type: 'SubscriptionConfirmation',
        MessageId: randomUUID(),
        Token: token,
        TopicArn: topicArn,
        Message: `You have chosen to subscribe to the topic ${topicArn}.\nTo confirm the subscription, visit the SubscribeURL included in this message.`,
        SubscribeURL: `${url}/confirm?Token=${token}`,
        Timestamp: new Date().toISOString(),
        SignatureVersion: signatureVersion,
        Signature: '',
        SigningCertURL: signingCertUrl,
      };
      return sign(body, signing.key);
    },
    signWithForeignKey: (body) => sign({ ...body, SigningCertURL: signingCertUrl }, foreignPrivateKey()),
    close() {
      return new Promise<void>((resolve, reject) => {
        server.close((err) => {
          tls.remove();
          rmSync(signing.dir, { recursive: true, force: true });
          if (err) reject(err);
          else resolve();
        });
        server.closeAllConnections();
      });
    },
  };
}

// SES notification payloads (the SNS `Message`), as SES publishes them.

export interface SesMailOptions {
  /** The MessageId SES returned from SendEmail. */
  messageId: string;
  recipients: string[];
  /** Default 'noreply@herald.test'. */
  source?: string;
  /** Default now. */
  timestamp?: string;
}

function mail({ messageId, recipients, source = 'noreply@herald.test', timestamp }: SesMailOptions) {
  return {
    messageId,
    destination: [...recipients],
    timestamp: timestamp ?? new Date().toISOString(),
    source,
  };
}

export function sesBounce(
  options: SesMailOptions & { bounceType: 'Permanent' | 'Transient'; bounceSubType: string },
) {
  return {
    notificationType: 'Bounce' as const,
    mail: mail(options),
    bounce: {
      bounceType: options.bounceType,
      bounceSubType: options.bounceSubType,
      bouncedRecipients: options.recipients.map((emailAddress) => ({ emailAddress })),
      timestamp: new Date().toISOString(),
      feedbackId: randomUUID(),
    },
  };
}

export function sesComplaint(options: SesMailOptions) {
  return {
    notificationType: 'Complaint' as const,
    mail: mail(options),
    complaint: {
      complainedRecipients: options.recipients.map((emailAddress) => ({ emailAddress })),
      timestamp: new Date().toISOString(),
      feedbackId: randomUUID(),
    },
  };
}

export function sesDelivery(options: SesMailOptions) {
  return {
    notificationType: 'Delivery' as const,
    mail: mail(options),
    delivery: { recipients: [...options.recipients], timestamp: new Date().toISOString() },
  };
}
