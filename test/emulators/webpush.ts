// A browser push service for tests (Mozilla autopush, FCM's Web Push endpoint): HTTPS on 127.0.0.1 with a
// self-signed certificate, and browser-like subscriptions whose private keys it keeps, so it can check each
// `POST /push/:id` as a push service does and decrypt the payload as the browser would see it.
// Checks, in order: the subscription exists (404); TTL is a non-negative integer, Urgency and Topic are
// well-formed (400); `Authorization: vapid t=<ES256 JWT>, k=<public key>` is present (401) and verifies
// against k with aud = this origin, exp in the future and at most 24 h ahead, sub mailto: or https: (403);
// the body is at most 4096 bytes (413), `aes128gcm`-encoded and decrypts with the subscription's keys (400).
// A request that passes gets the scripted reply for its subscription (default 201, empty body).
import { createECDH, type ECDH, randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import { createRequire } from 'node:module';
import { importJWK, jwtVerify } from 'jose';
import { testCertificate } from '../support/tls.js';
import { arrivals } from './arrivals.js';

/** What a browser's `PushSubscription.toJSON()` gives, plus the id used in the endpoint. */
export interface TestSubscription {
  id: string;
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export interface VapidClaims {
  aud: string;
  exp: number;
  sub: string;
  /** The `k` parameter, base64url. */
  publicKey: string;
}

export interface WebPushRequest {
  /** The `:id` of `/push/:id` ('' for any other path). */
  subscriptionId: string;
  /** Lower-case names; repeated headers joined with ', '. */
  headers: Record<string, string>;
  ttl: number | null;
  urgency: string | null;
  topic: string | null;
  contentEncoding: string | null;
  /** Only when the VAPID header verified. */
  vapid: VapidClaims | null;
  /** The decrypted payload; null without a body or when it was rejected before or at decryption. */
  plaintext: string | null;
  bodyBytes: number;
  /** The status answered. */
  status: number;
  /** Why the emulator refused it (null when the checks passed and the scripted reply was sent). */
  rejectedBecause: string | null;
  /** Date.now() when the request line and headers arrived. */
  receivedAt: number;
}

export interface WebPushReply {
  status: number;
  retryAfterSeconds?: number;
  delayMs?: number;
  body?: string;
}

export interface WebPushEmulator {
  /** https://127.0.0.1:PORT, also the VAPID audience it expects. */
  readonly origin: string;
  /** PEM of the self-signed certificate a client must trust. */
  readonly ca: string;
  readonly caFile: string;
  readonly received: WebPushRequest[];
  /** A new subscription, as a browser would create one. */
  subscribe(): TestSubscription;
  /** Replies for requests that pass the checks, consumed in order; then the default. */
  script(subscriptionId: string, replies: WebPushReply[]): void;
  setDefault(reply: WebPushReply): void;
  /** Resolves once the predicate holds for what has arrived; rejects after timeoutMs. */
  waitFor(predicate: (received: readonly WebPushRequest[]) => boolean, timeoutMs: number): Promise<void>;
  /** Stops listening, ends connections and removes the certificate folder. */
  close(): Promise<void>;
}

// http_ece ships no types; this is the one call used.
const ece: {
  decrypt(content: Buffer, params: { version: 'aes128gcm'; privateKey: ECDH; authSecret: Buffer }): Buffer;
} = createRequire(import.meta.url)('http_ece');

const MAX_BODY_BYTES = 4096;
const MAX_VAPID_LIFETIME_SECONDS = 24 * 60 * 60;
const URGENCIES = new Set(['very-low', 'low', 'normal', 'high']);

interface Keys {
  privateKey: ECDH;
  authSecret: Buffer;
}

class Rejection extends Error {
  constructor(
    readonly status: number,
    reason: string,
  ) {
    super(reason);
  }
}

export async function startWebPushEmulator(): Promise<WebPushEmulator> {
  const cert = testCertificate();
  const subscriptions = new Map<string, Keys>();
  const log = arrivals<WebPushRequest>('web push emulator');
  const scripts = new Map<string, WebPushReply[]>();
  let defaultReply: WebPushReply = { status: 201 };
  const timers = new Set<NodeJS.Timeout>();
  let origin = '';

  const handle = async (req: IncomingMessage, body: Buffer, record: WebPushRequest): Promise<void> => {
    const keys = subscriptions.get(record.subscriptionId);
    if (req.method !== 'POST') throw new Rejection(405, 'only POST');
    if (keys === undefined) throw new Rejection(404, 'no such subscription');
    if (record.ttl === null) throw new Rejection(400, 'TTL must be a non-negative integer');
    if (record.urgency !== null && !URGENCIES.has(record.urgency)) throw new Rejection(400, 'bad Urgency');
    if (record.topic !== null && !/^[A-Za-z0-9_-]{1,32}$/.test(record.topic))
      throw new Rejection(400, 'bad Topic');
    record.vapid = await verifyVapid(record.headers.authorization, origin);
    if (body.length > MAX_BODY_BYTES) throw new Rejection(413, `body of ${body.length} bytes`);
    if (body.length === 0) return;
    if (record.contentEncoding !== 'aes128gcm')
      throw new Rejection(400, 'Content-Encoding must be aes128gcm');
    try {
      record.plaintext = ece.decrypt(body, { version: 'aes128gcm', ...keys }).toString('utf8');
    } catch (err) {
      throw new Rejection(400, `cannot decrypt: ${messageOf(err)}`);
    }
  };

  const answer = (res: ServerResponse, record: WebPushRequest, reply: WebPushReply): void => {
    record.status = reply.status;
    log.record(record);
    const send = () => {
      const headers =
        reply.retryAfterSeconds === undefined ? {} : { 'retry-after': String(reply.retryAfterSeconds) };
      res.writeHead(reply.status, headers);
      res.end(reply.body ?? '');
    };
    const timer = setTimeout(() => {
      timers.delete(timer);
      send();
    }, reply.delayMs ?? 0);
    timers.add(timer);
  };

  const server = createServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    const receivedAt = Date.now();
    const headers = flattenHeaders(req);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const record: WebPushRequest = {
        subscriptionId: /^\/push\/([^/?]+)$/.exec(req.url ?? '')?.[1] ?? '',
        headers,
        ttl: headers.ttl !== undefined && /^\d+$/.test(headers.ttl) ? Number(headers.ttl) : null,
        urgency: headers.urgency ?? null,
        topic: headers.topic ?? null,
        contentEncoding: headers['content-encoding'] ?? null,
        vapid: null,
        plaintext: null,
        bodyBytes: body.length,
        status: 0,
        rejectedBecause: null,
        receivedAt,
      };
      handle(req, body, record).then(
        () => answer(res, record, scripts.get(record.subscriptionId)?.shift() ?? defaultReply),
        (err: unknown) => {
          const status = err instanceof Rejection ? err.status : 500;
          record.rejectedBecause = messageOf(err);
          answer(res, record, { status, body: record.rejectedBecause });
        },
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string')
    throw new Error('web push emulator: not on a TCP port');
  origin = `https://127.0.0.1:${address.port}`;

  return {
    origin,
    ca: cert.cert,
    caFile: cert.certFile,
    received: log.received,
    subscribe() {
      const id = randomUUID();
      const privateKey = createECDH('prime256v1');
      const publicKey = privateKey.generateKeys(); // the uncompressed point, 65 bytes
      const authSecret = randomBytes(16);
      subscriptions.set(id, { privateKey, authSecret });
      return {
        id,
        endpoint: `${origin}/push/${id}`,
        keys: { p256dh: publicKey.toString('base64url'), auth: authSecret.toString('base64url') },
      };
    },
    script(subscriptionId, replies) {
      scripts.set(subscriptionId, [...replies]);
    },
    setDefault(reply) {
      defaultReply = reply;
    },
    waitFor: log.waitFor,
    close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      return new Promise<void>((resolve, reject) => {
        server.close((err) => {
          cert.remove();
          if (err) reject(err);
          else resolve();
        });
        server.closeAllConnections();
      });
    },
  };
}

/** Verifies `vapid t=<jwt>, k=<key>` as a push service does; throws a Rejection (401 or 403) otherwise. */
async function verifyVapid(authorization: string | undefined, audience: string): Promise<VapidClaims> {
  if (authorization === undefined) throw new Rejection(401, 'no Authorization header');
  if (!/^vapid\s/i.test(authorization)) throw new Rejection(403, 'Authorization is not the vapid scheme');
  const param = (name: string) => new RegExp(`[\\s,]${name}=([^,\\s]+)`, 'i').exec(authorization)?.[1];
  const token = param('t');
  const k = param('k');
  const point = Buffer.from(k ?? '', 'base64url');
  if (!token || !k || point.length !== 65 || point[0] !== 0x04)
    throw new Rejection(403, 'vapid t or k missing or malformed');
  try {
    const x = point.subarray(1, 33).toString('base64url');
    const y = point.subarray(33, 65).toString('base64url');
    const key = await importJWK({ kty: 'EC', crv: 'P-256', x, y }, 'ES256');
    const { payload } = await jwtVerify(token, key, {
      algorithms: ['ES256'],
      audience,
      requiredClaims: ['exp'],
    });
    const exp = payload.exp ?? 0;
    if (exp - Date.now() / 1000 > MAX_VAPID_LIFETIME_SECONDS) throw new Error('exp more than 24 h ahead');
    const sub = payload.sub ?? '';
    if (!/^(mailto|https):/.test(sub)) throw new Error(`sub ${JSON.stringify(sub)} is not mailto: or https:`);
    return { aud: audience, exp, sub, publicKey: k };
  } catch (err) {
    throw new Rejection(403, `VAPID: ${messageOf(err)}`);
  }
}

function flattenHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
