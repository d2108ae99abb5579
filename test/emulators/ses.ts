// An Amazon SES (v1 Query API) stand-in for tests: plain HTTP on 127.0.0.1, reached by `@aws-sdk/client-ses`
// through its `endpoint` option. Each request's AWS Signature Version 4 is recomputed with the configured
// secret (wrong secret → 403 SignatureDoesNotMatch, unknown key → 403 InvalidClientTokenId). SendRawEmail and
// SendEmail are answered from per-recipient scripts (success, an empty 200, an SES error document; optionally
// late), else with success and a fresh MessageId, and recorded: form fields, signature verdict, the answer,
// the MIME and what `mailparser` makes of it.
import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressObject, type EmailAddress, type HeaderValue, simpleParser } from 'mailparser';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';

export interface SesEmulatorOptions {
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

export type SesReply = (
  | { kind: 'ok' }
  /** 200 with an empty body: no MessageId. */
  | { kind: 'empty' }
  | { kind: 'error'; status: number; code: string; message: string; type?: 'Sender' | 'Receiver' }
) & { delayMs?: number };

export type Mailbox = { name: string; address: string };

export interface SesMessage {
  subject: string | null;
  from: Mailbox | null;
  to: Mailbox[];
  replyTo: Mailbox | null;
  html: string | null;
  text: string | null;
  /** mailparser's headers by lower-case name; list-unsubscribe and list-unsubscribe-post as unfolded strings. */
  headers: Record<string, HeaderValue>;
  /** The Message-ID header, angle brackets included. */
  messageId: string | null;
}

export interface SesRequest {
  /** The form's Action ('' when absent). */
  action: string;
  source: string | null;
  /** Destinations.member.N (raw), or the To, Cc and Bcc addresses (SendEmail), in order. */
  destinations: string[];
  configurationSet: string | null;
  tags: Record<string, string>;
  /** From the Authorization header (null without one). */
  accessKeyId: string | null;
  signatureValid: boolean;
  /** The answer (given after a scripted delay: recorded on arrival). */
  status: number;
  code: string | null;
  messageId: string | null;
  /** The decoded RawMessage.Data, or for SendEmail the MIME composed from its fields; null otherwise. */
  raw: string | null;
  /** `raw` as mailparser reads it. */
  parsed: SesMessage | null;
  receivedAt: number;
}

export interface SesEmulator {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly received: SesRequest[];
  /**
   * Replies for a recipient (the first destination, else the first To of the MIME; case-insensitive),
   * consumed in order by correctly signed sends; then the default (success) applies.
   */
  script(address: string, replies: SesReply[]): void;
  setDefault(reply: SesReply): void;
  /** Resolves once the predicate holds for what has arrived; rejects after timeoutMs. */
  waitFor(predicate: (received: readonly SesRequest[]) => boolean, timeoutMs: number): Promise<void>;
  /** Drops every connection (pending delays included) and stops listening. */
  close(): Promise<void>;
}

const XMLNS = 'http://ses.amazonaws.com/doc/2010-12-01/';
const ACTIONS = new Set(['SendRawEmail', 'SendEmail']);

export async function startSesEmulator(options: SesEmulatorOptions): Promise<SesEmulator> {
  const received: SesRequest[] = [];
  const scripts = new Map<string, SesReply[]>();
  let defaultReply: SesReply = { kind: 'ok' };
  const timers = new Set<NodeJS.Timeout>();
  const waiters = new Set<() => void>();

  const handle = async (req: IncomingMessage, body: Buffer, res: ServerResponse) => {
    const receivedAt = Date.now();
    const form = new URLSearchParams(body.toString('utf8'));
    const action = form.get('Action') ?? '';
    const auth = checkSignature(req, body, options);
    const raw = await mimeOf(action, form);
    const destinations =
      action === 'SendEmail'
        ? ['To', 'Cc', 'Bcc'].flatMap((kind) => members(form, `Destination.${kind}Addresses`))
        : members(form, 'Destinations');
    const parsed = raw ? await parseMime(raw) : null;
    const tagNames = members(form, 'Tags', '.Name');
    const tags = Object.fromEntries(
      tagNames.map((name, i) => [name, form.get(`Tags.member.${i + 1}.Value`) ?? '']),
    );

    const recipient = (destinations[0] ?? parsed?.to[0]?.address ?? '').toLowerCase();
    const reply: SesReply = auth.error
      ? { kind: 'error', status: 403, ...auth.error }
      : !ACTIONS.has(action)
        ? { kind: 'error', status: 400, code: 'InvalidAction', message: `Unknown action ${action}` }
        : (scripts.get(recipient)?.shift() ?? defaultReply);
    const messageId = reply.kind === 'ok' ? newMessageId() : null;
    const requestId = randomUUID();
    received.push({
      action,
      source: form.get('Source'),
      destinations,
      configurationSet: form.get('ConfigurationSetName'),
      tags,
      accessKeyId: auth.accessKeyId,
      signatureValid: auth.error === null,
      status: reply.kind === 'error' ? reply.status : 200,
      code: reply.kind === 'error' ? reply.code : null,
      messageId,
      raw: raw ? raw.toString('utf8') : null,
      parsed,
      receivedAt,
    });
    for (const waiter of waiters) waiter();

    const send = () => {
      if (reply.kind === 'empty') return res.writeHead(200, { 'content-length': '0' }).end();
      const xml =
        reply.kind === 'ok'
          ? `<${action}Response xmlns="${XMLNS}"><${action}Result><MessageId>${messageId}</MessageId>` +
            `</${action}Result><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`
          : `<ErrorResponse xmlns="${XMLNS}"><Error><Type>${reply.type ?? 'Sender'}</Type><Code>${escapeXml(reply.code)}` +
            `</Code><Message>${escapeXml(reply.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`;
      const headers = { 'content-type': 'text/xml', 'x-amzn-requestid': requestId };
      res.writeHead(reply.kind === 'ok' ? 200 : reply.status, headers).end(xml);
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
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/') return void res.writeHead(404).end();
      handle(req, Buffer.concat(chunks), res).catch((err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err));
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('SES emulator: not on a TCP port');

  return {
    url: `http://127.0.0.1:${address.port}`,
    received,
    script(recipient, replies) {
      scripts.set(recipient.toLowerCase(), [...replies]);
    },
    setDefault(reply) {
      defaultReply = reply;
    },
    waitFor(predicate, timeoutMs) {
      return new Promise<void>((resolve, reject) => {
        const waiter = () => {
          if (!predicate(received)) return;
          waiters.delete(waiter);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`SES emulator: not met within ${timeoutMs} ms (${received.length} received)`));
        }, timeoutMs);
        waiters.add(waiter);
        waiter();
      });
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

type AuthCheck = { accessKeyId: string | null; error: { code: string; message: string } | null };
const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/[^,]*, ?SignedHeaders=([^,]+), ?Signature=(\w+)$/;

/**
 * SigV4 as the SDK's signer computes it: the canonical request (method, path, empty query, the headers named
 * in SignedHeaders, the payload hash) hashed into the string to sign, HMAC'd with the key derived from the
 * secret, the request's date, the configured region and `ses`. A x-amz-content-sha256 header that does not
 * match the body counts as a bad signature.
 */
function checkSignature(req: IncomingMessage, body: Buffer, options: SesEmulatorOptions): AuthCheck {
  const match = AUTHORIZATION.exec(req.headers.authorization ?? '');
  const missing = 'Request is missing Authentication Token';
  if (!match) return { accessKeyId: null, error: { code: 'MissingAuthenticationToken', message: missing } };
  const [, accessKeyId = '', signedHeaders = '', signature = ''] = match;
  if (accessKeyId !== options.accessKeyId) {
    const message = 'The security token included in the request is invalid.';
    return { accessKeyId, error: { code: 'InvalidClientTokenId', message } };
  }
  const bodyHash = sha256(body);
  const claimedHash = req.headers['x-amz-content-sha256'];
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  const scope = `${amzDate.slice(0, 8)}/${options.region}/ses/aws4_request`;
  const canonicalHeaders = signedHeaders.split(';').map((name) => `${name}:${unfold(req.headers[name])}\n`);
  // Only `POST /` without a query string is served: the canonical path is '/' and the query empty.
  const canonicalRequest = `POST\n/\n\n${canonicalHeaders.join('')}\n${signedHeaders}\n${bodyHash}`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
  let key: Buffer = Buffer.from(`AWS4${options.secretAccessKey}`);
  for (const part of [amzDate.slice(0, 8), options.region, 'ses', 'aws4_request']) key = hmac(key, part);
  const expected = Buffer.from(hmac(key, stringToSign).toString('hex'));
  const given = Buffer.from(signature);
  const valid =
    (claimedHash === undefined || claimedHash === bodyHash) &&
    expected.length === given.length &&
    timingSafeEqual(expected, given);
  if (valid) return { accessKeyId, error: null };
  const message =
    'The request signature we calculated does not match the signature you provided. ' +
    'Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';
  return { accessKeyId, error: { code: 'SignatureDoesNotMatch', message } };
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: Buffer, data: string) => createHmac('sha256', key).update(data, 'utf8').digest();
/** A header value on one line, runs of white space as one space, trimmed. */
const unfold = (value: string | string[] | undefined) => `${value ?? ''}`.replace(/\s+/g, ' ').trim();

/** `prefix.member.1<suffix>`, `prefix.member.2<suffix>`, … up to the first gap. */
function members(form: URLSearchParams, prefix: string, suffix = ''): string[] {
  const values: string[] = [];
  for (let n = 1; form.has(`${prefix}.member.${n}${suffix}`); n++) {
    values.push(form.get(`${prefix}.member.${n}${suffix}`) ?? '');
  }
  return values;
}

async function parseMime(raw: Buffer): Promise<SesMessage> {
  const parsed = await simpleParser(raw);
  const headers: Record<string, HeaderValue> = Object.fromEntries(parsed.headers);
  // mailparser folds List-* into one structured 'list' header; tests want each as sent, unfolded.
  for (const { key, line } of parsed.headerLines) {
    if (key.startsWith('list-')) headers[key] = unfold(line.slice(line.indexOf(':') + 1));
  }
  return {
    subject: parsed.subject ?? null,
    from: mailboxes(parsed.from)[0] ?? null,
    to: mailboxes(parsed.to),
    replyTo: mailboxes(parsed.replyTo)[0] ?? null,
    html: parsed.html || null,
    text: parsed.text ?? null,
    headers,
    messageId: parsed.messageId ?? null,
  };
}

/** The message: decoded from a raw send; for SendEmail composed from the fields, as SES itself does. */
async function mimeOf(action: string, form: URLSearchParams): Promise<Buffer | null> {
  if (action === 'SendRawEmail') return Buffer.from(form.get('RawMessage.Data') ?? '', 'base64');
  if (action !== 'SendEmail') return null;
  const field = (name: string) => form.get(name) ?? undefined;
  const addresses = (kind: string) => members(form, `Destination.${kind}Addresses`);
  return new MailComposer({
    from: field('Source'),
    to: addresses('To'),
    cc: addresses('Cc'),
    replyTo: members(form, 'ReplyToAddresses'),
    subject: field('Message.Subject.Data'),
    html: field('Message.Body.Html.Data'),
    text: field('Message.Body.Text.Data'),
  })
    .compile()
    .build();
}

/** The mailboxes of an address header, groups replaced by their members. */
function mailboxes(header: AddressObject | AddressObject[] | undefined): Mailbox[] {
  const flat = (list: EmailAddress[]): Mailbox[] =>
    list.flatMap((a) => (a.group ? flat(a.group) : [{ name: a.name, address: a.address ?? '' }]));
  return [header ?? []].flat().flatMap((h) => flat(h.value));
}

/** Shaped like SES's: 16 hex digits (a millisecond clock inside), a UUID, a counter. */
const newMessageId = () => `010f${Date.now().toString(16).padStart(12, '0')}-${randomUUID()}-000000`;
const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
