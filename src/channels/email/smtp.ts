// E-mail over SMTP with `nodemailer`: pooled connections, STARTTLS required unless told otherwise (or TLS
// from the first byte), optional AUTH and DKIM signing. The message is built from the task's content (subject,
// HTML, text and the headers every e-mail carries: List-Unsubscribe among them) and the sender's settings.
// Classification by the server's answer: 2xx sent; a recipient refused with 5xx at RCPT is the address gone
// (invalid_destination); other 5xx are permanent for this message; 535 (and other AUTH failures) are the
// provider's credentials; 4xx, greeting failures, timeouts and connection errors are retried.
import nodemailer from 'nodemailer';
import type SMTPPool from 'nodemailer/lib/smtp-pool/index.js';
import type { DeliveryTask, Outcome, ProviderAdapter } from '../../delivery/provider.js';
import { channelAdapter } from '../adapter.js';
import { withinBudget } from '../budget.js';
import { type EmailSender, mailOptions } from './message.js';

export interface SmtpAdapterOptions {
  name?: string;
  timeoutMs: number;
  host: string;
  port: number;
  /** TLS from the first byte (usually port 465); otherwise STARTTLS. */
  secure: boolean;
  /** Refuse to send over a connection that did not upgrade to TLS (default true). */
  requireTls: boolean;
  auth?: { user: string; pass: string } | undefined;
  /** Extra certificate authority to trust, PEM (a private relay, or a test server). */
  ca?: string | undefined;
  dkim?: { domainName: string; keySelector: string; privateKey: string } | undefined;
  sender: EmailSender;
  /** Connections kept open. */
  connections: number;
}

const ADDRESS_WORDS =
  /user unknown|unknown user|no such (user|mailbox|recipient)|does not exist|mailbox unavailable|address rejected|invalid (recipient|address)/i;
const RELAY_WORDS = /relay|authenticat|not permitted|policy|spam|blocked|sender/i;

/** Errors nodemailer gives for answers that are about the connection, not the message. */
const TRANSIENT_CODES = new Set(['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EPROTOCOL', 'EDNS', 'ETLS']);

export function createSmtpAdapter(options: SmtpAdapterOptions): ProviderAdapter {
  const name = options.name ?? 'smtp';
  const transport = nodemailer.createTransport({
    pool: true,
    host: options.host,
    port: options.port,
    secure: options.secure,
    requireTLS: !options.secure && options.requireTls,
    ...(options.auth ? { auth: options.auth } : {}),
    ...(options.ca ? { tls: { ca: options.ca } } : {}),
    ...(options.dkim ? { dkim: options.dkim } : {}),
    maxConnections: options.connections,
    connectionTimeout: options.timeoutMs,
    greetingTimeout: options.timeoutMs,
    socketTimeout: options.timeoutMs,
  } as SMTPPool.Options);

  async function send(task: DeliveryTask, signal: AbortSignal): Promise<Outcome> {
    // nodemailer's timeouts are per step and a pooled send cannot be cut: the attempt ends at its budget
    // (or at shutdown) whatever the relay does, so the delivery's lease always outlives it.
    return withinBudget(attempt(task), options.timeoutMs, signal);
  }

  async function attempt(task: DeliveryTask): Promise<Outcome> {
    const mail = mailOptions(task, options.sender);
    if (!mail) return { kind: 'failed', reason: 'SMTP delivery without an e-mail address and content' };
    try {
      const info = await transport.sendMail(mail);
      // A partly refused message resolves: with one recipient, a refusal here is that address's.
      if (info.rejected.length > 0) {
        const refused = (info as { rejectedErrors?: { response?: string; responseCode?: number }[] })
          .rejectedErrors?.[0];
        return refusedRecipient(refused?.responseCode ?? 550, refused?.response ?? 'recipient refused');
      }
      return {
        kind: 'sent',
        providerMessageId: info.messageId ?? null,
        statusCode: 250,
        response: info.response,
      };
    } catch (error) {
      return classify(error);
    }
  }

  return channelAdapter('email', {
    name,
    timeoutMs: options.timeoutMs,
    send,
    close: async () => transport.close(),
  });
}

interface SmtpError {
  code?: string;
  command?: string;
  responseCode?: number;
  response?: string;
}

function classify(error: unknown): Outcome {
  const e = (error ?? {}) as SmtpError;
  const status = e.responseCode;
  const said =
    `SMTP ${e.command ?? ''} ${e.response ?? (error instanceof Error ? error.message : String(error))}`
      .replace(/\s+/g, ' ')
      .trim()
      .slice(0, 500);
  const detail = { statusCode: status, response: e.response?.slice(0, 1000), code: e.code };
  if (e.code === 'EENVELOPE' && e.command === 'RCPT TO' && status !== undefined) {
    return refusedRecipient(status, e.response ?? said);
  }
  // The relay refusing us (AUTH, authentication required, our sender refused at MAIL FROM) is the provider's
  // problem, not the message's: it trips the circuit, so traffic fails over.
  if (
    e.code === 'EAUTH' ||
    status === 530 ||
    /\b5\.7\.0\b/.test(e.response ?? '') ||
    (e.command === 'MAIL FROM' && status !== undefined && status >= 500)
  ) {
    return { kind: 'failed', reason: said, credentials: true, ...detail };
  }
  if (status !== undefined && status >= 500 && !TRANSIENT_CODES.has(e.code ?? '')) {
    return { kind: 'failed', reason: said, ...detail };
  }
  return { kind: 'retry', reason: said, ...detail };
}

/**
 * A recipient refused at RCPT. 5xx about the address itself (enhanced status 5.1.x: no such user, no such
 * domain, bad syntax; or 550/551/553 without one) means the address is gone; other 5xx (5.7.x policy, 5.2.x
 * mailbox full) are permanent for this message only; 4xx try again later.
 */
function refusedRecipient(status: number, response: string): Outcome {
  const reason = `SMTP RCPT TO ${response}`.slice(0, 500);
  const detail = { statusCode: status, response: response.slice(0, 1000) };
  if (status < 500) return { kind: 'retry', reason, ...detail };
  const enhanced = /\b5\.(\d{1,3})\.\d{1,3}\b/.exec(response);
  // Without an enhanced code, only the answer's words tell an unknown address from a relay's refusal.
  const aboutAddress = enhanced
    ? enhanced[1] === '1'
    : [550, 551, 553].includes(status) && ADDRESS_WORDS.test(response) && !RELAY_WORDS.test(response);
  return aboutAddress
    ? { kind: 'invalid_destination', reason, code: enhanced?.[0] ?? String(status), ...detail }
    : { kind: 'failed', reason, ...detail };
}
