// An Apple Push Notification service imitation for tests: HTTP/2 over TLS on 127.0.0.1 (self-signed
// certificate, no HTTP/1.1 fallback) answering `POST /3/device/<token>`, so the real `@parse/node-apn`
// Provider can be pointed at it with `address`, `port` and `ca`.
//
// Before a scripted reply is used, each request is checked the way APNs checks it (other paths: 404
// BadPath; other methods: 405 MethodNotAllowed):
// - authentication: a bearer ES256 JWT (kid = keyId, iss = teamId, signed by the key whose public half the
//   test passes in, iat at most one hour old and at most a minute ahead) → 403 MissingProviderToken,
//   InvalidProviderToken or ExpiredProviderToken; or, with `requireClientCertificate`, a TLS client
//   certificate carrying Apple's development push extension → 403 BadCertificate;
// - the device token (64 hex digits), apns-topic, apns-push-type, apns-priority (background needs 5; an
//   absent priority counts as 10), apns-expiration, apns-collapse-id (<= 64 bytes) and apns-id (a UUID);
// - the body: present (PayloadEmpty), at most 4096 bytes (413 PayloadTooLarge), a JSON object (400
//   BadPayload, a reason of this emulator's own, as APNs documents none for it).
// Requests that pass get the next scripted reply for their token, else the default (200, empty body).
// Every request is recorded, refused ones included, with the status and reason it was answered.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import {
  createSecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type ServerHttp2Session,
} from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import { decodeJwt, decodeProtectedHeader, importSPKI, jwtVerify } from 'jose';
import { testCertificate } from '../support/tls.js';
import { arrivals } from './arrivals.js';

export interface ApnsEmulatorOptions {
  keyId: string;
  teamId: string;
  /** PEM (SPKI) of the ES256 key whose private half signs the provider JWTs. */
  publicKey: string;
  /** Accepted apns-topic values; any topic when absent. */
  topics?: string[];
  /** Certificate auth: the TLS client certificate must carry Apple's push OID; no bearer token needed. */
  requireClientCertificate?: boolean;
}

export interface ApnsRequest {
  /** The device token as it appeared in the path ('' when the path was not /3/device/...). */
  token: string;
  /** Lower-case names, pseudo-headers left out; repeated headers joined with ', '. */
  headers: Record<string, string>;
  body: string;
  /** The body parsed as JSON, or null when it was not JSON. */
  payload: unknown;
  /** Claims of the bearer token as sent (decoded whether or not it verified), or null without one. */
  jwt: { kid: string | undefined; iss: string | undefined; iat: number | undefined } | null;
  /** What the emulator answered. */
  status: number;
  reason: string | null;
  /** Date.now() when the request ended. */
  receivedAt: number;
}

export interface ApnsReply {
  status: number;
  reason?: string;
  /** Milliseconds since the epoch; sent only with 410, as APNs does. */
  timestamp?: number;
  retryAfterSeconds?: number;
  delayMs?: number;
}

export interface ApnsEmulator {
  readonly port: number;
  /** PEM of the server certificate: the `ca` a client must trust. */
  readonly ca: string;
  readonly caFile: string;
  readonly received: ApnsRequest[];
  /** Replies for a device token, consumed in order by requests that pass the checks; then the default. */
  script(token: string, replies: ApnsReply[]): void;
  setDefault(reply: ApnsReply): void;
  /** How many HTTP/2 sessions (connections) were opened so far. */
  sessions(): number;
  /** Resolves once the predicate holds for what has arrived; rejects after timeoutMs. */
  waitFor(predicate: (received: readonly ApnsRequest[]) => boolean, timeoutMs: number): Promise<void>;
  /** Closes every session, stops listening and removes the certificate folder. */
  close(): Promise<void>;
}

/** A fresh P-256 key pair: the private half as in a .p8 file from Apple (PKCS#8), the public half as SPKI. */
export function apnsSigningKey(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', {
    namedCurve: 'P-256',
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

const PUSH_TYPES = new Set(
  'alert background voip complication fileprovider mdm liveactivity location pushtotalk'.split(' '),
);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/**
 * OID 1.2.840.113635.100.6.3.1 (Apple push, development) as DER (tag, length, contents). Node does not
 * expose unknown extensions, so the client certificate's raw DER is searched for it.
 */
const APPLE_PUSH_OID = Buffer.from('060a2a864886f76364060301', 'hex');
const MAX_PAYLOAD_BYTES = 4096;
const refuse = (reason: string, status = 400): ApnsReply => ({ status, reason });

export async function startApnsEmulator(options: ApnsEmulatorOptions): Promise<ApnsEmulator> {
  const publicKey = await importSPKI(options.publicKey, 'ES256');
  const certificate = testCertificate();
  const log = arrivals<ApnsRequest>('APNs emulator');
  const scripts = new Map<string, ApnsReply[]>();
  let defaultReply: ApnsReply = { status: 200 };
  let sessionCount = 0;
  const openSessions = new Set<ServerHttp2Session>();
  const closing = new AbortController();

  /** The reason to refuse the request's credentials with, or null when they hold. */
  const authenticate = async (req: Http2ServerRequest): Promise<string | null> => {
    if (options.requireClientCertificate) {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      return peer?.raw?.includes(APPLE_PUSH_OID) ? null : 'BadCertificate';
    }
    const jwt = bearer(req);
    if (jwt === undefined) return 'MissingProviderToken';
    try {
      const verified = await jwtVerify(jwt, publicKey, { algorithms: ['ES256'], issuer: options.teamId });
      const age = Date.now() / 1000 - (verified.payload.iat ?? Number.NaN);
      // NaN (no iat) fails this comparison too.
      if (verified.protectedHeader.kid !== options.keyId || !(age >= -60)) return 'InvalidProviderToken';
      return age > 3600 ? 'ExpiredProviderToken' : null;
    } catch {
      return 'InvalidProviderToken';
    }
  };

  /** The refusal for the first APNs check the request fails, or null when it passes them all. */
  const check = async (req: Http2ServerRequest, token: string | undefined, body: Buffer) => {
    const header = (name: string) => req.headers[name] as string | undefined;
    if (token === undefined) return refuse('BadPath', 404);
    if (req.method !== 'POST') return refuse('MethodNotAllowed', 405);
    const credentials = await authenticate(req);
    if (credentials) return refuse(credentials, 403);
    if (token === '') return refuse('MissingDeviceToken');
    if (!/^[0-9a-f]{64}$/i.test(token)) return refuse('BadDeviceToken');
    const topic = header('apns-topic');
    if (!topic) return refuse('MissingTopic');
    if (options.topics && !options.topics.includes(topic)) return refuse('BadTopic');
    const pushType = header('apns-push-type');
    if (pushType !== undefined && !PUSH_TYPES.has(pushType)) return refuse('InvalidPushType');
    const priority = header('apns-priority') ?? '10';
    if (!['10', '5', '1'].includes(priority) || (pushType === 'background' && priority !== '5')) {
      return refuse('BadPriority');
    }
    const expiration = header('apns-expiration');
    if (expiration !== undefined && !/^\d+$/.test(expiration)) return refuse('BadExpirationDate');
    const collapseId = header('apns-collapse-id');
    if (collapseId !== undefined && Buffer.byteLength(collapseId) > 64) return refuse('BadCollapseId');
    const apnsId = header('apns-id');
    if (apnsId !== undefined && !UUID.test(apnsId)) return refuse('BadMessageId');
    if (body.length === 0) return refuse('PayloadEmpty');
    if (body.length > MAX_PAYLOAD_BYTES) return refuse('PayloadTooLarge', 413);
    const payload = parseJson(body.toString('utf8'));
    const isObject = typeof payload === 'object' && payload !== null && !Array.isArray(payload);
    return isObject ? null : refuse('BadPayload');
  };

  const respond = async (req: Http2ServerRequest, res: Http2ServerResponse, body: Buffer) => {
    const receivedAt = Date.now();
    const token = /^\/3\/device\/([^/?]*)$/.exec(req.url)?.[1];
    const reply = (await check(req, token, body)) ?? scripts.get(token ?? '')?.shift() ?? defaultReply;
    const text = body.toString('utf8');
    log.record({
      token: token ?? '',
      headers: plainHeaders(req),
      body: text,
      payload: parseJson(text),
      jwt: decodedClaims(bearer(req)),
      status: reply.status,
      reason: reply.status === 200 ? null : (reply.reason ?? null),
      receivedAt,
    });
    if (reply.delayMs) await sleep(reply.delayMs, undefined, { signal: closing.signal });
    answer(req, res, reply);
  };

  const server = createSecureServer(
    {
      cert: certificate.cert,
      key: certificate.key,
      allowHTTP1: false,
      ...(options.requireClientCertificate ? { requestCert: true, rejectUnauthorized: false } : {}),
    },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        respond(req, res, Buffer.concat(chunks)).catch(() => res.stream.destroy());
      });
    },
  );
  server.on('session', (session) => {
    sessionCount += 1;
    openSessions.add(session);
    session.once('close', () => openSessions.delete(session));
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('APNs emulator: not on a TCP port');

  return {
    port: address.port,
    ca: certificate.cert,
    caFile: certificate.certFile,
    received: log.received,
    script(token, replies) {
      scripts.set(token, [...replies]);
    },
    setDefault(reply) {
      defaultReply = reply;
    },
    sessions: () => sessionCount,
    waitFor: log.waitFor,
    async close() {
      closing.abort();
      for (const session of openSessions) session.destroy();
      await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
      certificate.remove();
    },
  };
}

/** Answers like APNs: apns-id echoed (or made up), and a JSON reason for anything but 200. */
function answer(req: Http2ServerRequest, res: Http2ServerResponse, reply: ApnsReply): void {
  if (res.stream.destroyed) return;
  const apnsId = req.headers['apns-id'];
  res.setHeader('apns-id', typeof apnsId === 'string' && UUID.test(apnsId) ? apnsId : randomUUID());
  if (reply.retryAfterSeconds !== undefined) res.setHeader('retry-after', String(reply.retryAfterSeconds));
  if (reply.status === 200) return void res.writeHead(200).end();
  const timestamp = reply.status === 410 ? reply.timestamp : undefined;
  res.writeHead(reply.status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ reason: reply.reason, timestamp }));
}

function bearer(req: Http2ServerRequest): string | undefined {
  return /^bearer (\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
}

function decodedClaims(jwt: string | undefined): ApnsRequest['jwt'] {
  if (jwt === undefined) return null;
  try {
    const { iss, iat } = decodeJwt(jwt);
    return { kid: decodeProtectedHeader(jwt).kid, iss, iat };
  } catch {
    return null;
  }
}

function plainHeaders(req: Http2ServerRequest): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (!name.startsWith(':') && value !== undefined) {
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
  }
  return headers;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}
