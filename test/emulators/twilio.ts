// A Twilio Programmable Messaging stand-in for tests: plain HTTP on 127.0.0.1 serving the 2010-04-01 REST API's
// `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (and `GET .../Messages/{Sid}.json`), reached by the real
// `twilio` SDK through an `httpClient` that rewrites https://api.twilio.com to this server (`twilioClientFor`).
//
// Each create is checked the way Twilio checks it, in this order, each refusal answered with Twilio's JSON
// error document (`code`, `message`, `more_info`, `status`):
// - HTTP Basic auth: the account sid and auth token, or the optional API key sid and secret → 401 20003;
// - the account in the path is the configured one → 404 20404;
// - To present (21604) and E.164 (21211); From or MessagingServiceSid present (21603), From a phone number,
//   short code or alphanumeric sender ID (21212); Body present unless media or a content template is sent
//   (21602) and at most 1600 characters (21617) → 400.
// Creates that pass get the next scripted reply for their To number (success, a Twilio error, a dropped
// connection; optionally late), else the default (success: 201 and a Message resource, `queued`, or
// `accepted` when sent through a Messaging Service). Every request is recorded, refused ones included.
//
// Towards Herald it plays Twilio's webhooks: status callbacks to a message's StatusCallback and inbound
// messages to an SMS webhook, form-encoded and signed with X-Twilio-Signature (HMAC-SHA1 of the URL and the
// sorted parameters, keyed by the auth token), with overrides for forged signatures and tampered bodies.
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import twilio from 'twilio';
import type RequestClient from 'twilio/lib/base/RequestClient.js';
import { smsShape } from '../../src/core/sms.js';
import { arrivals } from './arrivals.js';

export interface TwilioEmulatorOptions {
  accountSid: string;
  authToken: string;
  /** An API key (SK…) accepted as Basic auth in place of the account sid and auth token. */
  apiKey?: { sid: string; secret: string };
}

export type TwilioReply = (
  | { kind: 'ok' }
  /** A Twilio error document, e.g. 400/21610, 429/20429, 500/20500. */
  | { kind: 'error'; status: number; code: number; message: string }
  /** Destroys the connection without answering. */
  | { kind: 'drop' }
) & { delayMs?: number };

export type TwilioMessageStatus =
  | 'accepted'
  | 'scheduled'
  | 'queued'
  | 'sending'
  | 'sent'
  | 'delivered'
  | 'undelivered'
  | 'failed'
  | 'read'
  | 'canceled'
  | 'receiving'
  | 'received';

/** The Message resource as Twilio's JSON carries it (snake_case; counts as strings; RFC 2822 dates). */
export interface TwilioMessage {
  sid: string;
  account_sid: string;
  messaging_service_sid: string | null;
  to: string;
  /** null while a Messaging Service has not picked a sender yet. */
  from: string | null;
  body: string;
  status: TwilioMessageStatus;
  num_segments: string;
  num_media: string;
  direction: 'outbound-api';
  api_version: '2010-04-01';
  price: string | null;
  price_unit: string;
  error_code: number | null;
  error_message: string | null;
  date_created: string;
  date_updated: string;
  date_sent: string | null;
  uri: string;
  subresource_uris: { media: string; feedback: string };
}

export interface TwilioErrorBody {
  code: number;
  message: string;
  more_info: string;
  status: number;
}

export interface TwilioRequest {
  method: string;
  /** The request target without its query string. */
  path: string;
  /** Lower-case names; repeated headers joined with ', '. */
  headers: Record<string, string>;
  /** The form fields; a repeated field (MediaUrl) keeps its last value. */
  form: Record<string, string>;
  /** The Basic auth user name (an account or API key sid), null without Basic auth. */
  authUser: string | null;
  /** What was answered (recorded on arrival, before a scripted delay); null when the connection was dropped. */
  status: number | null;
  /** The JSON answered, as it was at the time. */
  response: TwilioMessage | TwilioErrorBody | null;
  /** The created message's sid. */
  sid: string | null;
  receivedAt: number;
}

/** How a webhook sent to Herald departs from what Twilio would send. */
export interface TwilioWebhookOverride {
  /** Where to POST instead of the message's StatusCallback (status callbacks only). */
  url?: string;
  /** The URL the signature covers, when it differs from where the request goes (a proxy in between). */
  signedUrl?: string;
  /** Replaces the computed X-Twilio-Signature; null sends none. */
  signature?: string | null;
  /** Changes the fields after they were signed, as a man in the middle would. */
  tamper?: (fields: Record<string, string>) => Record<string, string>;
}

export interface TwilioWebhookResult {
  /** Herald's answer. */
  status: number;
  contentType: string | null;
  body: string;
  /** Where it went, what was sent (after any tampering) and the X-Twilio-Signature header (null: none). */
  url: string;
  fields: Record<string, string>;
  signature: string | null;
}

export interface InboundMessage {
  from: string;
  to: string;
  body: string;
  messagingServiceSid?: string;
}

export interface TwilioEmulator {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly accountSid: string;
  readonly authToken: string;
  readonly requests: TwilioRequest[];
  /** The messages created, in order; sendStatus updates their status. */
  readonly messages: TwilioMessage[];
  /** Replies for a To number, consumed in order by creates that pass the checks; then the default. */
  script(to: string, replies: TwilioReply[]): void;
  setDefault(reply: TwilioReply): void;
  /** Resolves once the predicate holds for what has arrived; rejects after timeoutMs. */
  waitFor(predicate: (requests: readonly TwilioRequest[]) => boolean, timeoutMs: number): Promise<void>;
  /**
   * POSTs a status callback for a created message to its StatusCallback (or `url`), as Twilio does, and
   * records the new status on the message. ErrorCode is sent only when given.
   */
  sendStatus(
    sid: string,
    status: TwilioMessageStatus,
    options?: { errorCode?: number } & TwilioWebhookOverride,
  ): Promise<TwilioWebhookResult>;
  /** POSTs an incoming message to an SMS webhook, as Twilio does. */
  sendInbound(
    url: string,
    message: InboundMessage,
    override?: Omit<TwilioWebhookOverride, 'url'>,
  ): Promise<TwilioWebhookResult>;
  /** Drops every connection (pending delays included) and stops listening. */
  close(): Promise<void>;
}

const API_VERSION = '2010-04-01';
const CREATE_PATH = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/;
const FETCH_PATH = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\/([^/]+)\.json$/;
const E164 = /^\+[1-9]\d{1,14}$/;
const SHORT_CODE = /^\d{3,8}$/;
const ALPHANUMERIC_SENDER = /^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$/;
const MAX_BODY_CHARACTERS = 1600;
/** The sender a Messaging Service "picks" for messages sent without From (Twilio's test number). */
const SERVICE_SENDER = '+15005550006';
const WEBHOOK_TIMEOUT_MS = 10_000;

export async function startTwilioEmulator(options: TwilioEmulatorOptions): Promise<TwilioEmulator> {
  const log = arrivals<TwilioRequest>(
    'Twilio emulator',
    (timeoutMs, count) => `not met within ${timeoutMs} ms (${count} requests)`,
  );
  const messages: TwilioMessage[] = [];
  const callbacks = new Map<string, string>();
  const scripts = new Map<string, TwilioReply[]>();
  let defaultReply: TwilioReply = { kind: 'ok' };
  const timers = new Set<NodeJS.Timeout>();

  const handle = (req: IncomingMessage, body: string, res: ServerResponse) => {
    const receivedAt = Date.now();
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const form = Object.fromEntries(new URLSearchParams(body));
    const authUser = basicAuth(req.headers.authorization)?.user ?? null;
    const record = (status: number | null, response: TwilioMessage | TwilioErrorBody | null) => {
      const sid = response && 'sid' in response ? response.sid : null;
      const snapshot = response === null ? null : structuredClone(response);
      const headers = flatHeaders(req);
      const method = req.method ?? '';
      log.record({ method, path, headers, form, authUser, status, response: snapshot, sid, receivedAt });
    };
    const refusal = refuse(req, path, form, options, messages);
    if (refusal) {
      record(refusal.status, refusal.body);
      return answer(res, refusal.status, refusal.body);
    }
    const fetched = messages.find((m) => req.method === 'GET' && m.sid === FETCH_PATH.exec(path)?.[2]);
    if (fetched) {
      record(200, fetched);
      return answer(res, 200, fetched);
    }

    const to = form.To ?? '';
    const reply = scripts.get(to)?.shift() ?? defaultReply;
    let response: TwilioMessage | TwilioErrorBody | null = null;
    if (reply.kind === 'ok') {
      const message = newMessage(options.accountSid, form);
      messages.push(message);
      if (form.StatusCallback) callbacks.set(message.sid, form.StatusCallback);
      response = message;
    } else if (reply.kind === 'error') {
      response = twilioError(reply.status, reply.code, reply.message);
    }
    record(reply.kind === 'drop' ? null : reply.kind === 'ok' ? 201 : reply.status, response);

    const send = () => {
      if (reply.kind === 'drop' || response === null) return void req.socket.destroy();
      answer(res, reply.kind === 'ok' ? 201 : reply.status, response);
    };
    if (!reply.delayMs) return send();
    const timer = setTimeout(() => {
      timers.delete(timer);
      send();
    }, reply.delayMs);
    timers.add(timer);
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => handle(req, Buffer.concat(chunks).toString('utf8'), res));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('Twilio emulator: not on a TCP port');

  const signed = (url: string, fields: Record<string, string>, override: TwilioWebhookOverride = {}) =>
    sendSigned(options.authToken, url, fields, override);

  return {
    url: `http://127.0.0.1:${address.port}`,
    accountSid: options.accountSid,
    authToken: options.authToken,
    requests: log.received,
    messages,
    script(to, replies) {
      scripts.set(to, [...replies]);
    },
    setDefault(reply) {
      defaultReply = reply;
    },
    waitFor: log.waitFor,
    async sendStatus(sid, status, { errorCode, ...override } = {}) {
      const message = messages.find((m) => m.sid === sid);
      if (!message) throw new Error(`Twilio emulator: no message ${sid}`);
      const url = override.url ?? callbacks.get(sid);
      if (!url) throw new Error(`Twilio emulator: message ${sid} has no StatusCallback`);
      const now = rfc2822(new Date());
      message.from ??= SERVICE_SENDER;
      message.status = status;
      message.error_code = errorCode ?? null;
      message.date_updated = now;
      if (status === 'sent' && message.date_sent === null) message.date_sent = now;
      return signed(url, statusFields(message, errorCode), override);
    },
    sendInbound(url, inbound, override) {
      return signed(url, inboundFields(options.accountSid, inbound), override);
    },
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

/**
 * A `twilio` client whose requests go to the emulator: its RequestClient rewrites https://api.twilio.com to the
 * emulator's URL (and refuses any other host, so a test can never reach Twilio). Test-only: Herald's provider
 * has its own base URL handling. Credentials default to the emulator's account sid and auth token; an API key
 * is passed as `{ username: 'SK…', password: secret }`.
 */
export function twilioClientFor(
  emulator: Pick<TwilioEmulator, 'url' | 'accountSid' | 'authToken'>,
  credentials: { username: string; password: string } = {
    username: emulator.accountSid,
    password: emulator.authToken,
  },
): twilio.Twilio {
  return twilio(credentials.username, credentials.password, {
    accountSid: emulator.accountSid,
    httpClient: new EmulatorRequestClient(emulator.url),
  });
}

class EmulatorRequestClient extends twilio.RequestClient {
  readonly #baseUrl: string;

  constructor(baseUrl: string) {
    super();
    this.#baseUrl = baseUrl;
  }

  override request<TData>(opts: RequestClient.RequestOptions<TData>) {
    const twilioBase = 'https://api.twilio.com/';
    if (!opts.uri.startsWith(twilioBase)) {
      throw new Error(`Twilio emulator client: refusing ${opts.uri} (edge or region set?)`);
    }
    return super.request({ ...opts, uri: `${this.#baseUrl}/${opts.uri.slice(twilioBase.length)}` });
  }
}

/**
 * X-Twilio-Signature: base64 HMAC-SHA1, keyed by the auth token, of the full URL followed by each POST
 * parameter's name and value, in parameter-name order.
 */
export function twilioSignature(authToken: string, url: string, fields: Record<string, string>): string {
  const data = Object.keys(fields)
    .sort()
    .reduce((acc, name) => acc + name + fields[name], url);
  return createHmac('sha1', authToken).update(data, 'utf8').digest('base64');
}

type Refusal = { status: number; body: TwilioErrorBody };

/** The first check a request fails, as Twilio answers it; null when it may go on to the script. */
function refuse(
  req: IncomingMessage,
  path: string,
  form: Record<string, string>,
  options: TwilioEmulatorOptions,
  messages: readonly TwilioMessage[],
): Refusal | null {
  const reject = (status: number, code: number, message: string) => ({
    status,
    body: twilioError(status, code, message),
  });
  const notFound = () => reject(404, 20404, `The requested resource ${path} was not found`);
  const created = CREATE_PATH.exec(path);
  const fetched = FETCH_PATH.exec(path);
  const isCreate = created !== null && req.method === 'POST';
  const isFetch = fetched !== null && req.method === 'GET';
  if (!isCreate && !isFetch) return notFound();
  if (!authenticated(req.headers.authorization, options)) return reject(401, 20003, 'Authenticate');
  if ((created ?? fetched)?.[1] !== options.accountSid) return notFound();
  if (isFetch) return messages.some((m) => m.sid === fetched?.[2]) ? null : notFound();

  const { To: to, From: from, MessagingServiceSid: service, Body: body } = form;
  if (!to) return reject(400, 21604, "A 'To' phone number is required.");
  if (!E164.test(to)) return reject(400, 21211, `The 'To' number ${to} is not a valid phone number.`);
  if (!from && !service) return reject(400, 21603, "A 'From' phone number is required.");
  if (from && !E164.test(from) && !SHORT_CODE.test(from) && !ALPHANUMERIC_SENDER.test(from)) {
    const message = `The 'From' number ${from} is not a valid phone number, shortcode, or alphanumeric sender ID.`;
    return reject(400, 21212, message);
  }
  if (!body && !form.MediaUrl && !form.ContentSid) return reject(400, 21602, 'Message body is required.');
  // Characters as a reader counts them: code points, so an emoji is one.
  if ([...(body ?? '')].length > MAX_BODY_CHARACTERS) {
    return reject(400, 21617, 'The concatenated message body exceeds the 1600 character limit.');
  }
  return null;
}

function authenticated(header: string | undefined, options: TwilioEmulatorOptions): boolean {
  const auth = basicAuth(header);
  if (!auth) return false;
  if (auth.user === options.accountSid) return auth.password === options.authToken;
  return auth.user === options.apiKey?.sid && auth.password === options.apiKey.secret;
}

function basicAuth(header: string | undefined): { user: string; password: string } | null {
  const match = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!match?.[1]) return null;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function newMessage(accountSid: string, form: Record<string, string>): TwilioMessage {
  const sid = `SM${randomBytes(16).toString('hex')}`;
  const uri = `/${API_VERSION}/Accounts/${accountSid}/Messages/${sid}`;
  const now = rfc2822(new Date());
  const body = form.Body ?? '';
  return {
    sid,
    account_sid: accountSid,
    messaging_service_sid: form.MessagingServiceSid || null,
    to: form.To ?? '',
    from: form.From || null,
    body,
    // Twilio answers `accepted` while a Messaging Service has yet to choose the sender.
    status: form.From ? 'queued' : 'accepted',
    num_segments: String(smsShape(body).segments),
    num_media: form.MediaUrl ? '1' : '0',
    direction: 'outbound-api',
    api_version: API_VERSION,
    price: null,
    price_unit: 'USD',
    error_code: null,
    error_message: null,
    date_created: now,
    date_updated: now,
    date_sent: null,
    uri: `${uri}.json`,
    subresource_uris: { media: `${uri}/Media.json`, feedback: `${uri}/Feedback.json` },
  };
}

function statusFields(message: TwilioMessage, errorCode: number | undefined): Record<string, string> {
  return {
    MessageSid: message.sid,
    SmsSid: message.sid,
    AccountSid: message.account_sid,
    ...(message.messaging_service_sid ? { MessagingServiceSid: message.messaging_service_sid } : {}),
    From: message.from ?? SERVICE_SENDER,
    To: message.to,
    MessageStatus: message.status,
    SmsStatus: message.status,
    ApiVersion: API_VERSION,
    ...(errorCode === undefined ? {} : { ErrorCode: String(errorCode) }),
  };
}

function inboundFields(accountSid: string, inbound: InboundMessage): Record<string, string> {
  const sid = `SM${randomBytes(16).toString('hex')}`;
  return {
    MessageSid: sid,
    SmsMessageSid: sid,
    SmsSid: sid,
    AccountSid: accountSid,
    ...(inbound.messagingServiceSid ? { MessagingServiceSid: inbound.messagingServiceSid } : {}),
    From: inbound.from,
    To: inbound.to,
    Body: inbound.body,
    NumMedia: '0',
    NumSegments: String(smsShape(inbound.body).segments),
    SmsStatus: 'received',
    ApiVersion: API_VERSION,
  };
}

/** Signs the fields for the URL (or override.signedUrl), then POSTs them form-encoded as Twilio's proxy does. */
async function sendSigned(
  authToken: string,
  url: string,
  fields: Record<string, string>,
  override: TwilioWebhookOverride,
): Promise<TwilioWebhookResult> {
  const signature =
    override.signature === undefined
      ? twilioSignature(authToken, override.signedUrl ?? url, fields)
      : override.signature;
  const sent = override.tamper ? override.tamper({ ...fields }) : fields;
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    'user-agent': 'TwilioProxy/1.1',
    'i-twilio-idempotency-token': randomUUID(),
    ...(signature === null ? {} : { 'x-twilio-signature': signature }),
  };
  const answer = await postForm(url, headers, new URLSearchParams(sent).toString());
  return { ...answer, url, fields: sent, signature };
}

/** One POST on its own connection (no agent: nothing stays open after the answer). */
function postForm(
  url: string,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; contentType: string | null; body: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const options = {
      method: 'POST',
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      agent: false,
      timeout: WEBHOOK_TIMEOUT_MS,
    };
    const req = send(target, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          contentType: res.headers['content-type'] ?? null,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`Twilio emulator: no answer from ${url}`)));
    req.on('error', reject);
    req.end(body);
  });
}

function answer(res: ServerResponse, status: number, body: TwilioMessage | TwilioErrorBody) {
  const headers: Record<string, string> = {
    'content-type': 'application/json; charset=utf-8',
    'twilio-request-id': `RQ${randomBytes(16).toString('hex')}`,
  };
  if (status === 401) headers['www-authenticate'] = 'Basic realm="Twilio API"';
  res.writeHead(status, headers).end(JSON.stringify(body));
}

function twilioError(status: number, code: number, message: string): TwilioErrorBody {
  return { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status };
}

function flatHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}

/** Twilio's date format: `Thu, 24 Aug 2023 05:01:45 +0000`. */
const rfc2822 = (date: Date) => date.toUTCString().replace('GMT', '+0000');
