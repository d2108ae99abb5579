// An FCM HTTP v1 emulator for tests: plain HTTP/1.1 on 127.0.0.1 playing both Google's OAuth token endpoint
// (it checks the service account's signed JWT assertion with jose and issues bearer tokens) and the FCM send
// endpoint (it checks the bearer token, validates the message the way FCM does, and answers each registration
// token from a script with FCM's own error bodies), recording every request. The real firebase-admin reaches it
// through fcmTestAgent(port): an https.Agent whose connections all go, unencrypted, to the emulator, so the SDK
// keeps addressing oauth2.googleapis.com and fcm.googleapis.com and only the network is redirected.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Agent } from 'node:https';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { decodeJwt, importSPKI, type JWTPayload, type JWTVerifyOptions, jwtVerify } from 'jose';
import { arrivals } from './arrivals.js';

const TOKEN_URI = 'https://oauth2.googleapis.com/token';
const FCM_ERROR_TYPE = 'type.googleapis.com/google.firebase.fcm.v1.FcmError';

/** FCM's error codes, each with the HTTP status, canonical status and usual message FCM answers with. */
const FCM_ERRORS = {
  UNREGISTERED: [404, 'NOT_FOUND', 'Requested entity was not found.'],
  INVALID_ARGUMENT: [400, 'INVALID_ARGUMENT', 'The registration token is not a valid FCM registration token'],
  SENDER_ID_MISMATCH: [403, 'PERMISSION_DENIED', 'SenderId mismatch'],
  QUOTA_EXCEEDED: [429, 'RESOURCE_EXHAUSTED', 'Quota exceeded for the message target.'],
  UNAVAILABLE: [503, 'UNAVAILABLE', 'The service is currently unavailable.'],
  INTERNAL: [500, 'INTERNAL', 'Internal error encountered.'],
  THIRD_PARTY_AUTH_ERROR: [401, 'UNAUTHENTICATED', 'Auth error from APNS or Web Push Service'],
} as const satisfies Record<string, readonly [number, string, string]>;
export type FcmErrorCode = keyof typeof FCM_ERRORS;

/** A service account the emulator trusts: it verifies token-request assertions against this key. */
export type FcmAccount = { clientEmail: string; publicKeyPem: string };
/** A generated service account; `json` is what a downloaded key file holds. */
export type FcmServiceAccount = FcmAccount & { json: Record<string, string> };

export interface FcmScriptedReply {
  /** HTTP status; below 300 answers with a message name. */
  status: number;
  /** Adds FcmError's detail and picks the canonical status and usual message (else `status` picks them). */
  errorCode?: FcmErrorCode;
  message?: string;
  retryAfterSeconds?: number;
  delayMs?: number;
}

export interface FcmRequest {
  kind: 'token' | 'send';
  /** The project in the send URL; for a token request, the asserting account's project ('' if unknown). */
  project: string;
  /** The Host header: the Google host firebase-admin meant to reach. */
  host: string;
  /** Lower-case names; repeated headers joined with ', '. */
  headers: Record<string, string>;
  /** A token request's form fields; a send's parsed JSON (its raw text when not JSON). */
  body: unknown;
  /** A send's `message` object, when the body had one. */
  message?: Record<string, unknown>;
  /** A token request's assertion claims, present only when the assertion verified. */
  claims?: JWTPayload;
  /** The status answered (after any scripted delay). */
  status: number;
  /** Date.now() once the request had fully arrived. */
  receivedAt: number;
}

export interface FcmEmulator {
  readonly port: number;
  readonly received: FcmRequest[];
  /** Only the send requests, in arrival order. */
  sends(): FcmRequest[];
  /** Replies for sends to a registration token, consumed in order; then the default (200). */
  script(registrationToken: string, replies: FcmScriptedReply[]): void;
  setDefault(reply: FcmScriptedReply): void;
  /** Resolves once the predicate holds for what has arrived; rejects after timeoutMs. */
  waitFor(predicate: (received: readonly FcmRequest[]) => boolean, timeoutMs: number): Promise<void>;
  /** Ends every connection and stops listening. */
  close(): Promise<void>;
}

/** A well-formed service account for `projectId` with a freshly generated RSA 2048 key (PKCS#8 PEM). */
export function fcmServiceAccount(projectId: string): FcmServiceAccount {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const clientEmail = `herald-test@${projectId}.iam.gserviceaccount.com`;
  const json = {
    type: 'service_account',
    project_id: projectId,
    private_key_id: randomBytes(20).toString('hex'),
    private_key: privateKey,
    client_email: clientEmail,
    client_id: `1${String(randomBytes(8).readBigUInt64BE()).padStart(20, '0')}`,
    auth_uri: 'https://accounts.google.com/o/oauth2/auth',
    token_uri: TOKEN_URI,
    auth_provider_x509_cert_url: 'https://www.googleapis.com/oauth2/v1/certs',
    client_x509_cert_url: `https://www.googleapis.com/robot/v1/metadata/x509/${encodeURIComponent(clientEmail)}`,
    universe_domain: 'googleapis.com',
  };
  return { json, clientEmail, publicKeyPem: publicKey };
}

/**
 * Writes the account's key file into `dir` and returns its path. firebase-admin 13 routes the OAuth request
 * through cert()'s agent only when cert() gets a path; given an object, it builds its token client without
 * the agent and goes to the real network.
 */
export function writeFcmServiceAccount(account: FcmServiceAccount, dir: string): string {
  const path = join(dir, `${account.json.private_key_id}.json`);
  writeFileSync(path, JSON.stringify(account.json, null, 2), { mode: 0o600 });
  return path;
}

/** Whatever host and port a request names, its connection is plain TCP to 127.0.0.1:port. */
class LoopbackAgent extends Agent {
  readonly #port: number;
  constructor(port: number) {
    super({ keepAlive: true });
    this.#port = port;
  }
  override createConnection(): Socket {
    return connect(this.#port, '127.0.0.1');
  }
}

export function fcmTestAgent(port: number): Agent {
  return new LoopbackAgent(port);
}

type Outcome = { status: number; body: unknown; retryAfterSeconds?: number; delayMs?: number };

const googleError = (code: number, status: string, message: string, details?: object[]): Outcome => ({
  status: code,
  body: { error: { code, message, status, ...(details ? { details } : {}) } },
});

/** A 400 naming the offending field (as FCM's request parsing does), else carrying the FcmError detail. */
function invalidArgument(description: string, field?: string): Outcome {
  const detail = field
    ? { '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [{ field, description }] }
    : { '@type': FCM_ERROR_TYPE, errorCode: 'INVALID_ARGUMENT' };
  return googleError(400, 'INVALID_ARGUMENT', description, [detail]);
}

const badValue = (field: string, type: string, value: unknown): Outcome =>
  invalidArgument(`Invalid value at '${field}' (${type}), ${JSON.stringify(value)}`, field);

/** FCM's own checks on a message; undefined when it is acceptable. */
function refuseMessage(message: Record<string, unknown>): Outcome | undefined {
  const targets = ['token', 'topic', 'condition'].filter((key) => message[key] !== undefined);
  if (targets.length === 0) return invalidArgument('Recipient of the message is not set.');
  if (targets.length > 1) {
    return invalidArgument(`oneof field 'target' is already set. Cannot set '${targets[1]}'`, 'message');
  }
  if (message.data !== undefined) {
    if (!isRecord(message.data)) return badValue('message.data', 'TYPE_MESSAGE', message.data);
    const values = Object.values(message.data);
    const at = values.findIndex((value) => typeof value !== 'string');
    if (at >= 0) return badValue(`message.data[${at}].value`, 'TYPE_STRING', values[at]);
  }
  const { priority, ttl } = isRecord(message.android) ? message.android : {};
  // Enum names are read case-insensitively: firebase-admin sends 'high' / 'normal'.
  if (priority !== undefined && !(typeof priority === 'string' && /^(normal|high)$/i.test(priority))) {
    return badValue('message.android.priority', 'google.firebase.fcm.v1.AndroidMessagePriority', priority);
  }
  if (ttl !== undefined && !(typeof ttl === 'string' && /^\d+(\.\d+)?s$/.test(ttl))) {
    return badValue('message.android.ttl', 'google.protobuf.Duration', ttl);
  }
  // Measured over the whole message as sent, a little stricter than FCM's count of the payload alone.
  if (Buffer.byteLength(JSON.stringify(message)) > 4096) return invalidArgument('Message is too big');
  return undefined;
}

function scriptedOutcome(project: string, reply: FcmScriptedReply, validateOnly: boolean): Outcome {
  const timing = { retryAfterSeconds: reply.retryAfterSeconds, delayMs: reply.delayMs };
  if (reply.status < 300) {
    const id = validateOnly ? 'fake_message_id' : `0:${Date.now()}%${randomBytes(8).toString('hex')}`;
    return { status: reply.status, body: { name: `projects/${project}/messages/${id}` }, ...timing };
  }
  const known = reply.errorCode ? FCM_ERRORS[reply.errorCode] : undefined;
  const [, status = 'UNKNOWN', usual = 'Error.'] =
    known ?? Object.values(FCM_ERRORS).find(([http]) => http === reply.status) ?? [];
  const details = reply.errorCode ? [{ '@type': FCM_ERROR_TYPE, errorCode: reply.errorCode }] : undefined;
  return { ...googleError(reply.status, status, reply.message ?? usual, details), ...timing };
}

const ASSERTION_CHECKS = {
  algorithms: ['RS256'],
  audience: TOKEN_URI,
  requiredClaims: ['iat', 'exp'],
  maxTokenAge: '1h',
  clockTolerance: 60,
} satisfies JWTVerifyOptions;

/** The claims of an assertion signed by a trusted account for the token endpoint, else undefined. */
async function verifyAssertion(assertion: string, accounts: FcmAccount[]): Promise<JWTPayload | undefined> {
  let issuer: string | undefined;
  try {
    issuer = decodeJwt(assertion).iss;
  } catch {
    return undefined;
  }
  for (const account of accounts.filter((a) => a.clientEmail === issuer)) {
    const key = await importSPKI(account.publicKeyPem, 'RS256');
    const verified = await jwtVerify(assertion, key, { ...ASSERTION_CHECKS, issuer }).catch(() => undefined);
    // Google refuses assertions meant to live longer than an hour.
    const { exp = 0, iat = 0 } = verified?.payload ?? {};
    if (verified && exp - iat <= 3600) return verified.payload;
  }
  return undefined;
}

export async function startFcmEmulator(options: { accounts: FcmAccount[] }): Promise<FcmEmulator> {
  const log = arrivals<FcmRequest>(
    'fcm emulator',
    (timeoutMs, count) => `condition not met in ${timeoutMs} ms (${count} received)`,
  );
  const received = log.received;
  const scripts = new Map<string, FcmScriptedReply[]>();
  let defaultReply: FcmScriptedReply = { status: 200 };
  /** Issued bearer token -> the project of the account it was issued to. */
  const issued = new Map<string, string>();
  const timers = new Set<NodeJS.Timeout>();

  const answerToken = async (raw: string, record: FcmRequest): Promise<Outcome> => {
    const form = new URLSearchParams(raw);
    record.body = Object.fromEntries(form);
    const assertion = form.get('assertion') ?? '';
    const isJwtGrant = form.get('grant_type') === 'urn:ietf:params:oauth:grant-type:jwt-bearer';
    const claims = isJwtGrant ? await verifyAssertion(assertion, options.accounts) : undefined;
    if (!claims?.iss)
      return { status: 400, body: { error: 'invalid_grant', error_description: 'Invalid JWT.' } };
    record.claims = claims;
    record.project = /@([^.]+)\./.exec(claims.iss)?.[1] ?? '';
    const accessToken = `ya29.${randomBytes(24).toString('base64url')}`;
    issued.set(accessToken, record.project);
    return { status: 200, body: { access_token: accessToken, expires_in: 3600, token_type: 'Bearer' } };
  };

  const answerSend = (raw: string, record: FcmRequest): Outcome => {
    const granted = issued.get(/^Bearer (.+)$/.exec(record.headers.authorization ?? '')?.[1] ?? '');
    if (granted === undefined) {
      return googleError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.');
    }
    if (granted !== record.project) {
      const resource = `//cloudresourcemanager.googleapis.com/projects/${record.project}`;
      const text = `Permission 'cloudmessaging.messages.create' denied on resource '${resource}'.`;
      return googleError(403, 'PERMISSION_DENIED', text);
    }
    record.body = parseJson(raw);
    const body = isRecord(record.body) ? record.body : {};
    if (!isRecord(body.message)) return invalidArgument('Invalid JSON payload received.', 'message');
    const message = body.message;
    record.message = message;
    const refusal = refuseMessage(message);
    if (refusal) return refusal;
    const queue = typeof message.token === 'string' ? scripts.get(message.token) : undefined;
    return scriptedOutcome(record.project, queue?.shift() ?? defaultReply, body.validate_only === true);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, raw: string): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const sendPath = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(path);
    const kind = path === '/token' ? 'token' : sendPath ? 'send' : undefined;
    if (req.method !== 'POST' || kind === undefined) {
      res.writeHead(404).end();
      return;
    }
    const headers = flattenHeaders(req);
    const record: FcmRequest = {
      kind,
      project: sendPath?.[1] ?? '',
      host: headers.host ?? '',
      headers,
      body: raw,
      status: 0,
      receivedAt: Date.now(),
    };
    const outcome = kind === 'token' ? await answerToken(raw, record) : answerSend(raw, record);
    record.status = outcome.status;
    log.record(record);
    const replyHeaders: Record<string, string> = { 'content-type': 'application/json; charset=UTF-8' };
    if (outcome.retryAfterSeconds !== undefined)
      replyHeaders['retry-after'] = String(outcome.retryAfterSeconds);
    const timer = setTimeout(() => {
      timers.delete(timer);
      res.writeHead(outcome.status, replyHeaders).end(JSON.stringify(outcome.body));
    }, outcome.delayMs ?? 0);
    timers.add(timer);
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      handle(req, res, Buffer.concat(chunks).toString('utf8')).catch((err: unknown) => {
        res.writeHead(500).end(String(err));
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('fcm emulator: not on a TCP port');

  return {
    port: address.port,
    received,
    sends: () => received.filter((r) => r.kind === 'send'),
    script(registrationToken, replies) {
      scripts.set(registrationToken, [...replies]);
    },
    setDefault(reply) {
      defaultReply = reply;
    },
    waitFor: log.waitFor,
    close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      return new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function flattenHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}
