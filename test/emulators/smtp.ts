// A mail submission server for tests: `smtp-server` on 127.0.0.1 with a fresh self-signed certificate
// (STARTTLS offered, or TLS from the start), so the real `nodemailer` transport can be pointed at it with
// `host`, `port` and `tls: { ca }`. It checks what a submission server checks: AUTH PLAIN/LOGIN against the
// configured users (wrong credentials → 535; MAIL before AUTH → 530; AUTH before TLS refused), and answers
// RCPT and DATA from per-recipient scripts (e.g. 550 at RCPT, 451 at DATA), else accepts. Every accepted
// message is recorded as `mailparser` parses it, with its envelope, raw text, TLS state and AUTH user.
// `verifyDkim` independently checks the rsa-sha256, relaxed/relaxed DKIM signature nodemailer produces.
import { createHash, verify } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { type AddressObject, type EmailAddress, type HeaderValue, simpleParser } from 'mailparser';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { testCertificate } from '../support/tls.js';
import { arrivals } from './arrivals.js';

export interface SmtpEmulatorOptions {
  /** username → password; when given, AUTH PLAIN/LOGIN is required before MAIL. */
  users?: Record<string, string>;
  /** TLS from the first byte (port 465 style) instead of STARTTLS. */
  implicitTls?: boolean;
  /** false: a plaintext-only server that neither offers nor accepts STARTTLS. Default true. */
  starttls?: boolean;
}

export type Mailbox = { name: string; address: string };

export interface ReceivedEmail {
  /** MAIL FROM ('' for the null sender) and the accepted RCPT TO addresses. */
  envelope: { from: string; to: string[] };
  subject: string | null;
  from: Mailbox | null;
  to: Mailbox[];
  replyTo: Mailbox | null;
  html: string | null;
  text: string | null;
  /** mailparser's headers by lower-case name; List-* headers also as unfolded strings (mailparser: 'list'). */
  headers: Record<string, HeaderValue>;
  /** The Message-ID header, angle brackets included. */
  messageId: string | null;
  /** The message as received after DATA (RFC 5322 text, CRLF line ends, dot-stuffing removed). */
  raw: string;
  /** Whether the session was encrypted (STARTTLS or implicit TLS) when DATA arrived. */
  secure: boolean;
  /** The AUTH username, or null for an unauthenticated session. */
  user: string | null;
  receivedAt: number;
}

/** A scripted answer: a code >= 400 refuses (RCPT for that recipient, or DATA of a message to it); below accepts. */
export interface SmtpReply {
  stage: 'rcpt' | 'data';
  code: number;
  message?: string;
}

export interface SmtpEmulator {
  readonly port: number;
  /** PEM of the server certificate: the `ca` a client must trust. */
  readonly ca: string;
  readonly caFile: string;
  readonly received: ReceivedEmail[];
  /**
   * Replies for a recipient (case-insensitive), consumed in order: RCPT takes the head when it is a 'rcpt'
   * reply, DATA when it is a 'data' reply; otherwise the default applies (accept, unless setDefault).
   */
  script(address: string, replies: SmtpReply[]): void;
  /** The reply for every recipient without a matching scripted one; null accepts. */
  setDefault(reply: SmtpReply | null): void;
  /** The next n connections get `421` instead of the 220 greeting and are closed. */
  failNextConnections(n: number): void;
  /** How many TCP connections were opened so far. */
  sessions(): number;
  /** Resolves once the predicate holds for what has arrived; rejects after timeoutMs. */
  waitFor(predicate: (received: readonly ReceivedEmail[]) => boolean, timeoutMs: number): Promise<void>;
  /** Drops every connection, stops listening and removes the certificate folder. */
  close(): Promise<void>;
}

const smtpError = (code: number, message: string) =>
  Object.assign(new Error(message), { responseCode: code });

export async function startSmtpEmulator(options: SmtpEmulatorOptions = {}): Promise<SmtpEmulator> {
  const certificate = testCertificate();
  const log = arrivals<ReceivedEmail>('SMTP emulator');
  const scripts = new Map<string, SmtpReply[]>();
  let defaultReply: SmtpReply | null = null;
  let failing = 0;
  let connections = 0;
  const sockets = new Set<Socket>();
  const users = options.users;

  /** The scripted (or default) reply for a recipient at this stage, or null to accept. */
  const take = (address: string, stage: SmtpReply['stage']): SmtpReply | null => {
    const queue = scripts.get(address.toLowerCase());
    if (queue?.[0]?.stage === stage) return queue.shift() ?? null;
    return defaultReply?.stage === stage ? defaultReply : null;
  };

  const record = async (raw: Buffer, session: SMTPServerSession) => {
    const parsed = await simpleParser(raw);
    const headers: Record<string, HeaderValue> = Object.fromEntries(parsed.headers);
    for (const { key, line } of parsed.headerLines) {
      if (key.startsWith('list-')) headers[key] = relaxedValue(line);
    }
    const { mailFrom, rcptTo } = session.envelope;
    log.record({
      envelope: { from: mailFrom ? mailFrom.address : '', to: rcptTo.map((r) => r.address) },
      subject: parsed.subject ?? null,
      from: mailboxes(parsed.from)[0] ?? null,
      to: mailboxes(parsed.to),
      replyTo: mailboxes(parsed.replyTo)[0] ?? null,
      html: parsed.html || null,
      text: parsed.text ?? null,
      headers,
      messageId: parsed.messageId ?? null,
      raw: raw.toString('utf8'),
      secure: session.secure,
      user: typeof session.user === 'string' ? session.user : null,
      receivedAt: Date.now(),
    });
  };

  const server = new SMTPServer({
    key: certificate.key,
    cert: certificate.cert,
    secure: options.implicitTls ?? false,
    name: 'smtp.emulator.test',
    logger: false,
    disableReverseLookup: true,
    authMethods: ['PLAIN', 'LOGIN'],
    disabledCommands: [...(users ? [] : ['AUTH']), ...(options.starttls === false ? ['STARTTLS'] : [])],
    onConnect(_session, callback) {
      if (failing <= 0) return callback();
      failing -= 1;
      callback(smtpError(421, 'smtp.emulator.test Service not available, closing transmission channel'));
    },
    onAuth(auth, _session, callback) {
      const name = auth.username ?? '';
      if (users && Object.hasOwn(users, name) && users[name] === auth.password) {
        return callback(null, { user: name });
      }
      callback(smtpError(535, '5.7.8 Authentication credentials invalid'));
    },
    onRcptTo(address, _session, callback) {
      const reply = take(address.address, 'rcpt');
      if (reply && reply.code >= 400) return callback(smtpError(reply.code, reply.message ?? 'Rejected'));
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        // Every recipient's scripted DATA reply is consumed; the first refusal answers for the message.
        const replies = session.envelope.rcptTo.map((r) => take(r.address, 'data'));
        const refusal = replies.find((r) => r !== null && r.code >= 400);
        if (refusal) return callback(smtpError(refusal.code, refusal.message ?? 'Rejected'));
        const accepted = replies.find((r) => r?.message !== undefined)?.message ?? 'OK: queued';
        record(Buffer.concat(chunks), session).then(() => callback(null, accepted), callback);
      });
    },
  });
  server.server.on('connection', (socket: Socket) => {
    connections += 1;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('error', () => {}); // client-side resets and failed handshakes are the tests' business
  await new Promise<void>((resolve, reject) =>
    server.server.once('error', reject).listen(0, '127.0.0.1', resolve),
  );
  const { port } = server.server.address() as AddressInfo;

  return {
    port,
    ca: certificate.cert,
    caFile: certificate.certFile,
    received: log.received,
    script(recipient, replies) {
      scripts.set(recipient.toLowerCase(), [...replies]);
    },
    setDefault(reply) {
      defaultReply = reply;
    },
    failNextConnections(n) {
      failing = n;
    },
    sessions: () => connections,
    waitFor: log.waitFor,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(resolve));
      for (const socket of sockets) socket.destroy();
      await closed;
      certificate.remove();
    },
  };
}

/** The mailboxes of an address header, groups replaced by their members. */
function mailboxes(header: AddressObject | AddressObject[] | undefined): Mailbox[] {
  const flat = (list: EmailAddress[]): Mailbox[] =>
    list.flatMap((a) => (a.group ? flat(a.group) : [{ name: a.name, address: a.address ?? '' }]));
  return [header ?? []].flat().flatMap((h) => flat(h.value));
}

export type DkimResult =
  | { valid: true; domain: string; selector: string; signedHeaders: string[] }
  | { valid: false; reason: string };

/**
 * Verifies the first DKIM-Signature of a raw message (RFC 6376: rsa-sha256, relaxed/relaxed, no l=) with the
 * given PEM public key instead of the DNS record at `<s>._domainkey.<d>`, independently of nodemailer's signer.
 */
export function verifyDkim(raw: string | Buffer, publicKeyPem: string): DkimResult {
  // Byte-preserving ('latin1') strings throughout: hashes are over the octets as sent.
  const text = (Buffer.isBuffer(raw) ? raw : Buffer.from(raw, 'utf8')).toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  const body = end < 0 ? '' : text.slice(end + 4);
  const fields = head
    .split(/\r\n(?![ \t])/)
    .filter((line) => line.includes(':'))
    .map((line) => ({ name: line.slice(0, line.indexOf(':')).trim().toLowerCase(), line }));
  const signature = fields.find((f) => f.name === 'dkim-signature');
  if (!signature) return { valid: false, reason: 'no DKIM-Signature header' };
  const tags = new Map<string, string>();
  for (const part of relaxedValue(signature.line).split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) tags.set(part.slice(0, eq).trim(), part.slice(eq + 1).replace(/[ \t]/g, ''));
  }
  const tag = (name: string) => tags.get(name) ?? '';
  const [domain, selector, b] = [tag('d'), tag('s'), tag('b')];
  if (tag('v') !== '1' || tag('a') !== 'rsa-sha256') return { valid: false, reason: 'not v=1 rsa-sha256' };
  if (tag('c') !== 'relaxed/relaxed' || tags.has('l')) return { valid: false, reason: 'unsupported c=/l=' };
  const signedHeaders = tag('h')
    .toLowerCase()
    .split(':')
    .map((name) => name.trim());
  if (!domain || !selector || !b || !signedHeaders.includes('from')) {
    return { valid: false, reason: 'missing d=, s=, b= or From in h=' };
  }
  const lines = body.split('\r\n').map((line) => line.replace(/[ \t]+/g, ' ').replace(/ $/, ''));
  while (lines.length > 0 && lines.at(-1) === '') lines.pop();
  const canonicalBody = lines.length > 0 ? `${lines.join('\r\n')}\r\n` : '';
  if (createHash('sha256').update(canonicalBody, 'latin1').digest('base64') !== tag('bh')) {
    return { valid: false, reason: 'body hash mismatch' };
  }
  // Each name in h= takes the last not-yet-used instance of that header, counting from the bottom.
  const unused = fields.filter((f) => f !== signature);
  let signed = '';
  for (const name of signedHeaders) {
    const index = unused.findLastIndex((f) => f.name === name);
    if (index < 0) continue;
    const [field] = unused.splice(index, 1);
    signed += `${name}:${relaxedValue(field?.line ?? '')}\r\n`;
  }
  const withoutB = relaxedValue(signature.line).replace(/(^|;)(\s*b\s*=)[^;]*/, '$1$2');
  signed += `dkim-signature:${withoutB}`;
  const ok = verify('sha256', Buffer.from(signed, 'latin1'), publicKeyPem, Buffer.from(b, 'base64'));
  return ok
    ? { valid: true, domain, selector, signedHeaders }
    : { valid: false, reason: 'signature mismatch' };
}

/** Relaxed header canonicalization of a field's value: unfolded, runs of SP/HTAB as one SP, trimmed. */
function relaxedValue(line: string): string {
  return line
    .slice(line.indexOf(':') + 1)
    .replace(/\r?\n/g, '')
    .replace(/[ \t]+/g, ' ')
    .trim();
}
