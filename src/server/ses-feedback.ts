// `POST /webhooks/ses`: SES bounce, complaint and delivery notifications, delivered by SNS over HTTPS. Every
// message is verified before anything changes: its topic must be one of HERALD_SES_TOPIC_ARNS, its signature
// (SignatureVersion 1, RSA-SHA1, or 2, RSA-SHA256) must verify against the certificate at SigningCertURL,
// which must be https, end in .pem and be on an SNS host (sns.<region>.amazonaws.com) or one of
// HERALD_SNS_CERT_HOSTS; certificates are cached. Subscriptions are confirmed by fetching their SubscribeURL
// (on the same hosts). Then: a permanent bounce suppresses the address and fails the delivery; a transient one
// changes nothing; a complaint suppresses the address and turns the user's e-mail off; a delivery marks the
// delivery DELIVERED. Duplicates and out-of-order events are harmless: a delivery only moves forward.
import { createVerify, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import type http2 from 'node:http2';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { Agent, request } from 'undici';
import {
  type Database,
  type Db,
  type FeedbackDelivery,
  findDeliveryByProviderMessageId,
  markBounced,
  markReported,
  queueStatusEvents,
  type StatusEventDelivery,
  suppressAddress,
  updatePreferences,
} from '../store/index.js';
import type { RequestHandler } from './listener.js';
import { readSmallBody } from './request-body.js';

export interface SesFeedbackDeps {
  db: Db;
  sql: Database['sql'];
  now: () => Date;
  /** The status events a delivery's new state sends to the webhook endpoints that subscribe to them. */
  statusEvents: (
    delivery: FeedbackDelivery,
    status: 'failed' | 'delivered',
    reason: string,
  ) => StatusEventDelivery[];
  topicArns: readonly string[];
  certHosts: readonly string[];
  caFile: string | undefined;
  logger: Logger;
  onEvent?: (event: 'bounce' | 'complaint' | 'delivery', provider: string, type: string) => void;
}

const PATH = '/webhooks/ses';
const MAX_BODY_BYTES = 256 * 1024;
const SNS_HOST = /^sns\.[a-zA-Z0-9-]{3,}\.amazonaws\.com(\.cn)?$/;
const MAX_CACHED_CERTS = 100;
const FETCH_TIMEOUT_MS = 5_000;
/** SES permanent bounces: the address will never take mail. */
const PERMANENT = 'Permanent';

type Response = http.ServerResponse | http2.Http2ServerResponse;

interface SnsMessage {
  Type: string;
  MessageId: string;
  TopicArn: string;
  Message: string;
  Timestamp: string;
  SignatureVersion: string;
  Signature: string;
  SigningCertURL: string;
  Subject?: string;
  SubscribeURL?: string;
  Token?: string;
}

export function withSesFeedback(deps: SesFeedbackDeps, next: RequestHandler): RequestHandler {
  const agent = new Agent({
    // An extra CA is added to the usual ones, so SNS's own hosts keep verifying.
    connect: {
      timeout: FETCH_TIMEOUT_MS,
      ...(deps.caFile ? { ca: [...tls.rootCertificates, readFileSync(deps.caFile, 'utf8')] } : {}),
    },
  });
  const certs = new Map<string, Promise<string>>();

  /** An https URL on SNS's hosts or a configured one. */
  function trustedUrl(raw: string | undefined, pem: boolean): URL | null {
    try {
      const url = new URL(raw ?? '');
      if (url.protocol !== 'https:' || (pem && !url.pathname.endsWith('.pem'))) return null;
      return SNS_HOST.test(url.hostname) || deps.certHosts.includes(url.host) ? url : null;
    } catch {
      return null;
    }
  }

  async function fetchText(url: URL): Promise<string> {
    const res = await request(url, {
      dispatcher: agent,
      headersTimeout: FETCH_TIMEOUT_MS,
      bodyTimeout: FETCH_TIMEOUT_MS,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`${url.host} answered ${res.statusCode}`);
    return text;
  }

  function certificate(url: URL): Promise<string> {
    let cert = certs.get(url.href);
    if (!cert) {
      cert = fetchText(url).then(
        (pem) => new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'pem' }) as string,
      );
      cert.catch(() => certs.delete(url.href));
      if (certs.size >= MAX_CACHED_CERTS) certs.delete(certs.keys().next().value!);
      certs.set(url.href, cert);
    }
    return cert;
  }

  async function verified(message: SnsMessage): Promise<boolean> {
    const url = trustedUrl(message.SigningCertURL, true);
    if (!url) return false;
    const algorithm =
      message.SignatureVersion === '1' ? 'RSA-SHA1' : message.SignatureVersion === '2' ? 'RSA-SHA256' : null;
    if (!algorithm) return false;
    const key = await certificate(url);
    return createVerify(algorithm).update(stringToSign(message)).verify(key, message.Signature, 'base64');
  }

  async function handle(message: SnsMessage): Promise<number> {
    if (!deps.topicArns.includes(message.TopicArn)) return 403;
    if (!(await verified(message))) return 403;
    if (message.Type === 'SubscriptionConfirmation') {
      const url = trustedUrl(message.SubscribeURL, false);
      if (!url) return 403;
      await fetchText(url);
      deps.logger.info({ topicArn: message.TopicArn }, 'SNS subscription confirmed');
      return 200;
    }
    if (message.Type !== 'Notification') return 200;
    let event: unknown;
    try {
      event = JSON.parse(message.Message);
    } catch {
      return 400;
    }
    if (typeof event !== 'object' || event === null) return 400;
    await apply(event as Record<string, unknown>);
    return 200;
  }

  async function apply(event: Record<string, unknown>): Promise<void> {
    const kind = String(event.notificationType ?? event.eventType ?? '');
    const mail = (event.mail ?? {}) as { messageId?: string };
    const delivery = mail.messageId
      ? await findDeliveryByProviderMessageId(deps.sql, 'email', mail.messageId)
      : undefined;
    if (kind === 'Bounce') {
      const bounce = (event.bounce ?? {}) as {
        bounceType?: string;
        bounceSubType?: string;
        bouncedRecipients?: { emailAddress?: string }[];
      };
      if (bounce.bounceType !== PERMANENT) return;
      const reason = `bounced: ${bounce.bounceType} ${bounce.bounceSubType ?? ''}`.trim();
      for (const r of bounce.bouncedRecipients ?? []) {
        if (r.emailAddress) await suppress(r.emailAddress, reason, delivery?.id);
      }
      if (delivery?.current) await moveForward(delivery, 'failed', reason);
      deps.onEvent?.('bounce', delivery?.provider ?? 'ses', delivery?.type ?? 'unknown');
    } else if (kind === 'Complaint') {
      const complaint = (event.complaint ?? {}) as { complainedRecipients?: { emailAddress?: string }[] };
      for (const r of complaint.complainedRecipients ?? []) {
        if (r.emailAddress) await suppress(r.emailAddress, 'complaint', delivery?.id);
      }
      if (delivery) {
        await updatePreferences(deps.db, delivery.user_id, {
          channels: [{ channel: 'email', enabled: false }],
          types: [],
          quietHours: undefined,
        });
      }
      deps.onEvent?.('complaint', delivery?.provider ?? 'ses', delivery?.type ?? 'unknown');
    } else if (kind === 'Delivery' && delivery?.current) {
      await moveForward(delivery, 'delivered', 'delivered: accepted by the recipient\u2019s mail server');
      deps.onEvent?.('delivery', delivery.provider ?? 'ses', delivery.type);
    }
  }

  /** The delivery's new state and the status events it sends, in one transaction (a duplicate changes nothing). */
  async function moveForward(
    delivery: FeedbackDelivery,
    status: 'failed' | 'delivered',
    reason: string,
  ): Promise<void> {
    await deps.sql.transaction(async (tx) => {
      const moved =
        status === 'failed'
          ? await markBounced(tx, delivery.id, reason)
          : await markReported(tx, delivery.id, 'delivered', reason);
      if (moved) await queueStatusEvents(tx, deps.statusEvents(delivery, status, reason), deps.now());
    });
  }

  async function suppress(address: string, reason: string, deliveryId: string | undefined): Promise<void> {
    await suppressAddress(deps.sql, {
      channel: 'email',
      address: address.toLowerCase(),
      reason,
      deliveryId: deliveryId ?? null,
    });
  }

  return (req, res) => {
    const pathname = (req.url ?? '/').split('?', 1)[0];
    if (pathname !== PATH) {
      next(req, res);
      return;
    }
    if (req.method !== 'POST') {
      answer(res, 405);
      req.resume();
      return;
    }
    readSmallBody(req, MAX_BODY_BYTES)
      .then(async (body) => {
        const message = body === null ? null : parseMessage(body);
        if (!message) return answer(res, 400);
        answer(res, await handle(message));
      })
      // A certificate that cannot be fetched or a database error: SNS delivers the message again later.
      .catch((error) => {
        deps.logger.warn({ err: error }, 'SES feedback could not be applied; SNS will deliver it again');
        answer(res, 503);
      });
  };
}

/** The SNS fields that are signed, in order, as `Key\nValue\n`. */
function stringToSign(m: SnsMessage): string {
  const keys =
    m.Type === 'Notification'
      ? ([
          'Message',
          'MessageId',
          ...(m.Subject === undefined ? [] : ['Subject']),
          'Timestamp',
          'TopicArn',
          'Type',
        ] as const)
      : (['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'] as const);
  return keys.map((k) => `${k}\n${m[k as keyof SnsMessage] ?? ''}\n`).join('');
}

function parseMessage(body: string): SnsMessage | null {
  try {
    const m = JSON.parse(body) as Record<string, unknown>;
    const strings = [
      'Type',
      'MessageId',
      'TopicArn',
      'Message',
      'Timestamp',
      'SignatureVersion',
      'Signature',
      'SigningCertURL',
    ];
    if (strings.some((k) => typeof m[k] !== 'string')) return null;
    return m as unknown as SnsMessage;
  } catch {
    return null;
  }
}

function answer(res: Response, status: number): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
  res.end(status === 200 ? 'ok\n' : `${status}\n`);
}
