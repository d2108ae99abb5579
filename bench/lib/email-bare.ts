// The baseline: e-mails sent straight from this process with a bare nodemailer pooled transport configured
// as Herald's smtp adapter configures its own (src/channels/email/smtp.ts: pool, STARTTLS required, AUTH, the
// emulator's certificate as `tls.ca`, the same maxConnections and timeouts, nodemailer's other defaults),
// `concurrency` sendMail calls in flight, each message the one Herald builds (email-workload.ts); no
// database, no queue. Send time = when sendMail was called; arrival = when the emulator recorded the message.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import nodemailer from 'nodemailer';
import type SMTPPool from 'nodemailer/lib/smtp-pool/index.js';
import type { BenchDatabase } from './bench-database.js';
import { epochNow } from './dispatch-child.js';
import { startCpuWindow } from './dispatch-measure.js';
import type { EmailEmulator } from './email-emulator.js';
import {
  EMAIL_SUBJECT,
  emailAddress,
  emailHeaders,
  emailHtml,
  emailText,
  emailUser,
  FROM,
  messageId,
  messageLinks,
  REPLY_TO,
  SMTP_PASSWORD,
  SMTP_USER,
} from './email-workload.js';
import { MAX_FAILURES, type PushPhase, PushSendLog } from './push-measure.js';

/** Herald's e-mail attempt budget when the providers file sets none; the Herald phase sets it explicitly. */
export const EMAIL_TIMEOUT_MS = 30_000;

/** What every e-mail phase shares: the amount of work, the concurrency, the emulator, the database. */
export interface EmailSetup {
  notifications: number;
  /** SMTP connections in the pool (nodemailer maxConnections; Herald: the smtp provider's `connections`). */
  connections: number;
  /** sendMail calls in flight at most (Herald: HERALD_DISPATCH_CONCURRENCY_EMAIL). */
  concurrency: number;
  /** Notifications per SendBatch call. */
  batchSize: number;
  /** SendBatch calls in flight while handing over. */
  senders: number;
  /** Each phase gives up this long after its first send. */
  timeoutMs: number;
  emulator: EmailEmulator;
  database: BenchDatabase;
  /** Directory for a V8 CPU profile of each Herald child, or undefined. */
  cpuProfDir: string | undefined;
}

/** Per-phase SMTP facts that the shared push figures have no place for. */
export interface EmailPhase extends PushPhase {
  /** SMTP connections the emulator saw opened during the phase. */
  sessions: number;
}

/** The transport Herald's smtp adapter creates, pointed at the emulator. */
function createTransport(setup: EmailSetup, ca: string) {
  return nodemailer.createTransport({
    pool: true,
    host: '127.0.0.1',
    port: setup.emulator.port,
    secure: false,
    requireTLS: true,
    auth: { user: SMTP_USER, pass: SMTP_PASSWORD },
    tls: { ca },
    maxConnections: setup.connections,
    connectionTimeout: EMAIL_TIMEOUT_MS,
    greetingTimeout: EMAIL_TIMEOUT_MS,
    socketTimeout: EMAIL_TIMEOUT_MS,
  } as SMTPPool.Options);
}

/** `notifications` e-mails to recipients 0..n-1, `concurrency` sendMail calls at a time. */
export async function bareNodemailerPhase(setup: EmailSetup, label: string): Promise<EmailPhase> {
  const { emulator } = setup;
  const transport = createTransport(setup, readFileSync(emulator.caFile, 'utf8'));
  try {
    const log = new PushSendLog();
    emulator.expect(setup.notifications);
    const endCpu = startCpuWindow({ database: setup.database.name }, emulator.pid);
    const deadline = performance.now() + setup.timeoutMs;
    let next = 0;
    async function worker(): Promise<void> {
      while (next < setup.notifications && performance.now() < deadline && log.failureCount < MAX_FAILURES) {
        const index = next++;
        const to = emailAddress(index);
        // Built per message, as Herald's driver builds each one: a signed unsubscribe link for the recipient.
        const links = messageLinks(emailUser(index));
        const key = messageId(randomUUID());
        const startedAt = epochNow();
        try {
          const info = await transport.sendMail({
            from: FROM,
            replyTo: REPLY_TO,
            to,
            subject: EMAIL_SUBJECT,
            html: emailHtml(links),
            text: emailText(links),
            headers: emailHeaders(randomUUID(), links.unsubscribe),
            messageId: key,
          });
          if (info.rejected.length > 0) throw new Error(`recipient refused: ${info.response}`);
          log.log([{ key, destination: to }], startedAt, epochNow());
        } catch (error) {
          log.failed(error);
        }
      }
    }
    await Promise.all(Array.from({ length: setup.concurrency }, worker));
    const complete = await emulator.waitComplete(Math.max(1, deadline - performance.now()));
    const cpu = endCpu();
    const arrivals = await emulator.collect();
    const phase = log.summarize(label, setup.notifications, 250, arrivals, cpu);
    if (!complete) phase.notes.unshift(`timed out after ${setup.timeoutMs / 1000} s`);
    return { ...phase, sessions: arrivals.sessions };
  } finally {
    transport.close();
  }
}
