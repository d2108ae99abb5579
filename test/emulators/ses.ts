// An Amazon SES (v1 Query API) stand-in for tests: plain HTTP on 127.0.0.1, reached by `@aws-sdk/client-ses`
// through its `endpoint` option. Each request's AWS Signature Version 4 is recomputed with the configured
// secret (wrong secret → 403 SignatureDoesNotMatch, unknown key → 403 InvalidClientTokenId). SendRawEmail and
// SendEmail are answered from per-recipient scripts (success, an empty 200, an SES error document; optionally
// late), else with success and a fresh MessageId, and recorded: form fields, signature verdict, the answer,
// the MIME and what `mailparser` makes of it. The Query-API plumbing (server, SigV4, error document) is
// aws-query.ts's, shared with the SNS SMS emulator.
import { randomUUID } from 'node:crypto';
import { type AddressObject, type EmailAddress, type HeaderValue, simpleParser } from 'mailparser';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { arrivals } from './arrivals.js';
import {
  type AwsAccount,
  type AwsQueryError,
  checkSignature,
  errorDocument,
  numbered,
  startQueryServer,
  unfold,
} from './aws-query.js';

export type SesEmulatorOptions = AwsAccount;

export type SesReply = (
  | { kind: 'ok' }
  /** 200 with an empty body: no MessageId. */
  | { kind: 'empty' }
  | ({ kind: 'error' } & AwsQueryError)
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
  const log = arrivals<SesRequest>('SES emulator');
  const scripts = new Map<string, SesReply[]>();
  let defaultReply: SesReply = { kind: 'ok' };

  const server = await startQueryServer('SES emulator', async (req, body, res) => {
    const receivedAt = Date.now();
    const form = new URLSearchParams(body.toString('utf8'));
    const action = form.get('Action') ?? '';
    const auth = checkSignature(req, body, options, 'ses');
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
    const reply: SesReply = auth.refusal
      ? { kind: 'error', ...auth.refusal }
      : !ACTIONS.has(action)
        ? { kind: 'error', status: 400, code: 'InvalidAction', message: `Unknown action ${action}` }
        : (scripts.get(recipient)?.shift() ?? defaultReply);
    const messageId = reply.kind === 'ok' ? newMessageId() : null;
    const requestId = randomUUID();
    log.record({
      action,
      source: form.get('Source'),
      destinations,
      configurationSet: form.get('ConfigurationSetName'),
      tags,
      accessKeyId: auth.accessKeyId,
      signatureValid: auth.refusal === null,
      status: reply.kind === 'error' ? reply.status : 200,
      code: reply.kind === 'error' ? reply.code : null,
      messageId,
      raw: raw ? raw.toString('utf8') : null,
      parsed,
      receivedAt,
    });

    const send = () => {
      if (reply.kind === 'empty') return res.writeHead(200, { 'content-length': '0' }).end();
      const xml =
        reply.kind === 'ok'
          ? `<${action}Response xmlns="${XMLNS}"><${action}Result><MessageId>${messageId}</MessageId>` +
            `</${action}Result><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`
          : errorDocument(XMLNS, reply, requestId);
      const headers = { 'content-type': 'text/xml', 'x-amzn-requestid': requestId };
      res.writeHead(reply.kind === 'ok' ? 200 : reply.status, headers).end(xml);
    };
    if (!reply.delayMs) return send();
    server.later(reply.delayMs, send);
  });

  return {
    url: server.url,
    received: log.received,
    script(recipient, replies) {
      scripts.set(recipient.toLowerCase(), [...replies]);
    },
    setDefault(reply) {
      defaultReply = reply;
    },
    waitFor: log.waitFor,
    close: server.close,
  };
}

/** `prefix.member.1<suffix>`, `prefix.member.2<suffix>`, … up to the first gap. */
const members = (form: URLSearchParams, prefix: string, suffix = '') =>
  numbered(form, `${prefix}.member`, suffix);

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
