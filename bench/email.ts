// `npm run bench -- email`: how fast Herald's dispatcher turns queued EMAIL deliveries into SMTP submissions,
// against the same messages sent with a bare nodemailer pooled transport (the limit), with the same pool
// size and the same sendMail calls in flight, to the same SMTP emulator, in the same run.
//
//   npm run bench -- email [--notifications 5000] [--connections 10] [--concurrency 32]
//                          [--phases bare,herald] [--timeout 120] [--batch 500] [--senders 4] [--cpu-prof DIR]
//   BENCH_DATABASE_URL=postgres://... (else TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test)
//
// Phases: bare = nodemailer (pool: true, maxConnections = --connections, STARTTLS with the emulator's CA,
// AUTH) sending N messages shaped as Herald's (from, reply-to, to, subject, HTML, text, List-Unsubscribe,
// List-Unsubscribe-Post, X-Herald-Notification-Id, Message-ID), --concurrency sendMail calls in flight;
// herald = Herald (child process, providers file with only `smtp` pointed at the emulator, `connections` =
// --connections, HERALD_DISPATCH_CONCURRENCY_EMAIL = --concurrency) delivering N EMAIL notifications to N
// distinct recipients handed over with SendBatch. e-mails/s = N / (last arrival at the emulator - first
// send); latency = send to arrival per message. Environment variables the server understands
// (HERALD_DB_POOL_MAX, ...) are passed on to it; --cpu-prof writes a V8 CPU profile of the Herald child
// into DIR.
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type BenchDatabase, createBenchDatabase } from './lib/bench-database.js';
import { Cleanup } from './lib/cleanup.js';
import { backgroundLoad } from './lib/cpu.js';
import { bareNodemailerPhase, type EmailPhase, type EmailSetup } from './lib/email-bare.js';
import { type EmailEmulator, startEmailEmulator } from './lib/email-emulator.js';
import { heraldEmailPhase } from './lib/email-herald.js';
import { emailTable, emailTargetTable } from './lib/email-report.js';
import { FROM, SMTP_PASSWORD, SMTP_USER } from './lib/email-workload.js';
import { benchServerUrl, positiveInteger } from './lib/options.js';

const TARGET_HERALD_OVER_BARE = 0.6;
/** Bare messages sent before the phases so the emulator's code is compiled for every phase alike. */
const EMULATOR_WARMUP = 1_000;

const PHASES = ['bare', 'herald'] as const;
type PhaseName = (typeof PHASES)[number];

function isPhaseName(value: string): value is PhaseName {
  return PHASES.some((name) => name === value);
}

interface Options {
  phases: PhaseName[];
  notifications: number;
  connections: number;
  concurrency: number;
  batchSize: number;
  senders: number;
  timeoutMs: number;
  cpuProfDir: string | undefined;
  serverUrl: string;
}

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      notifications: { type: 'string' },
      connections: { type: 'string' },
      concurrency: { type: 'string' },
      batch: { type: 'string' },
      senders: { type: 'string' },
      timeout: { type: 'string' },
      phases: { type: 'string' },
      'cpu-prof': { type: 'string' },
    },
  });
  const phases = (values.phases ?? PHASES.join(',')).split(',').map((name) => name.trim());
  const unknown = phases.filter((name) => !isPhaseName(name));
  if (unknown.length > 0)
    throw new Error(`--phases: unknown ${unknown.join(', ')} (known: ${PHASES.join(', ')})`);
  return {
    phases: phases.filter(isPhaseName),
    notifications: positiveInteger('--notifications', values.notifications, 5_000),
    // The smtp provider's default is min(HERALD_DISPATCH_CONCURRENCY, 10); set explicitly for both phases.
    connections: positiveInteger('--connections', values.connections, 10),
    // sendMail calls in flight: by default the e-mail lane's own default (HERALD_DISPATCH_CONCURRENCY's 32).
    concurrency: positiveInteger(
      '--concurrency',
      values.concurrency ?? process.env.HERALD_DISPATCH_CONCURRENCY_EMAIL,
      32,
    ),
    batchSize: positiveInteger('--batch', values.batch, 500),
    senders: positiveInteger('--senders', values.senders, 4),
    timeoutMs: positiveInteger('--timeout', values.timeout, 120) * 1000,
    cpuProfDir: values['cpu-prof'] ? path.resolve(values['cpu-prof']) : undefined,
    serverUrl: benchServerUrl(),
  };
}

function progress(message: string): void {
  process.stderr.write(`${message}\n`);
}

interface Run {
  bare?: EmailPhase;
  herald?: EmailPhase;
  serverLog: string[];
}

async function runPhases(setup: EmailSetup, which: PhaseName[], cleanup: Cleanup): Promise<Run> {
  const n = setup.notifications;
  const warmup = Math.min(n, EMULATOR_WARMUP);
  progress(`  emulator warm-up: ${warmup} bare e-mails (not reported)`);
  await bareNodemailerPhase({ ...setup, notifications: warmup }, 'warm-up');
  const run: Run = { serverLog: [] };
  if (which.includes('bare')) {
    progress(`  bare nodemailer: ${n} e-mails`);
    run.bare = await bareNodemailerPhase(setup, 'bare nodemailer');
  }
  if (which.includes('herald')) {
    progress(`  Herald: ${n} notifications`);
    const { phase, serverLog } = await heraldEmailPhase(setup, 'Herald smtp', cleanup);
    run.herald = phase;
    run.serverLog.push(...serverLog);
  }
  return run;
}

interface Environment {
  postgresVersion: string;
  backgroundLoad: number;
}

// Above this, other processes are competing for the cores and the figures are not representative.
const BUSY_MACHINE = 0.1;

function printReport(options: Options, env: Environment, run: Run): void {
  const cpus = os.cpus();
  const phases = [run.bare, run.herald].filter((p): p is EmailPhase => p !== undefined);
  const out = [
    '',
    `Herald e-mail benchmark — ${cpus.length} CPUs (${cpus[0]?.model ?? 'unknown'}), Node ${process.version}, ` +
      `PostgreSQL ${env.postgresVersion}`,
    `machine busy before the run: ${Math.round(env.backgroundLoad * 100)}% of all cores` +
      (env.backgroundLoad > BUSY_MACHINE ? ' — OTHER PROCESSES ARE COMPETING; see "other CPU"' : ''),
    `work:   ${options.notifications} e-mails per phase, one address per recipient, ` +
      `${options.connections} SMTP connections, ${options.concurrency} sendMail calls in flight at most`,
    '        e-mails/s = delivered / (last arrival - first send); p50/p99/max = send-to-arrival; ' +
      'hand-over = first send to last call acknowledged',
    'emulator: test/emulators SMTP (smtp-server, STARTTLS with a self-signed certificate, AUTH PLAIN/LOGIN ' +
      `as ${SMTP_USER}, each message parsed by mailparser before 250), in a child process, bound to 127.0.0.1`,
    `bare nodemailer: in this process, pool: true, maxConnections ${options.connections}, requireTLS, ` +
      `tls.ca, AUTH, ${options.concurrency} closed-loop workers; each message from ${FROM}, reply-to, ` +
      'subject, HTML and text with signed unsubscribe and preferences links, List-Unsubscribe(-Post), Message-ID <uuid@herald>',
    `Herald: child process (dist/src/main.js serve, the compiled build), HERALD_DISPATCH_CONCURRENCY_EMAIL=${options.concurrency}, ` +
      `providers file with only smtp (nodemailer, connections ${options.connections}), HERALD_PUBLIC_URL and ` +
      `HERALD_LINK_SECRET set; EMAIL notifications with Recipient.email, SendBatch of ${options.batchSize} ` +
      `over gRPC, ${options.senders} calls at a time`,
    '        checks ok = delivered messages over TLS, AUTH as the relay user, with the sender, reply-to, ' +
      'subject, HTML and text as Herald builds them, List-Unsubscribe-Post and a List-Unsubscribe link that ' +
      'verifies for the recipient; recorded sent = e-mail deliveries the database holds as sent afterwards; ' +
      'SMTP conns = connections the emulator saw opened (nodemailer closes one after 100 messages)',
    '        CPU columns: share of one core over the phase: gen = this process, server = Herald child, ' +
      'emu = emulator child, pg = backends of the bench database, other = the rest',
    '',
    emailTable(phases),
    '',
    'Targets (PostgreSQL, same emulator, same run):',
    emailTargetTable(run.herald, run.bare, TARGET_HERALD_OVER_BARE),
  ];
  const notes = phases.flatMap((p) => p.notes.map((n) => `  ${p.label}: ${n}`));
  if (notes.length > 0) out.push('', 'Problems:', ...notes);
  if (run.serverLog.length > 0) {
    out.push('', 'Server warnings/errors (stderr):', ...run.serverLog.map((l) => `  ${l}`));
  }
  if (options.cpuProfDir) out.push('', `Herald CPU profiles: ${options.cpuProfDir}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

async function openEmulator(cleanup: Cleanup): Promise<EmailEmulator> {
  const emulator = await startEmailEmulator({ user: SMTP_USER, password: SMTP_PASSWORD });
  cleanup.add('stop SMTP emulator', () => emulator.stop());
  return emulator;
}

async function openDatabase(options: Options, cleanup: Cleanup): Promise<BenchDatabase> {
  const database = await createBenchDatabase(options.serverUrl);
  cleanup.add(`drop database ${database.name}`, () => database.drop());
  return database;
}

export async function main(args: string[] = []): Promise<void> {
  const options = parseOptions(args);
  if (options.cpuProfDir) mkdirSync(options.cpuProfDir, { recursive: true });
  const cleanup = new Cleanup();
  const detach = cleanup.onInterrupt();
  try {
    const load = await backgroundLoad(1_000);
    const database = await openDatabase(options, cleanup);
    progress(`PostgreSQL: database ${database.name}`);
    const emulator = await openEmulator(cleanup);
    const setup: EmailSetup = { ...options, emulator, database };
    const env = { postgresVersion: await database.serverVersion(), backgroundLoad: load };
    const run = await runPhases(setup, options.phases, cleanup);
    printReport(options, env, run);
  } finally {
    await cleanup.runAll();
    detach();
  }
}
