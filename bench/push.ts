// `npm run bench -- push`: how fast Herald's dispatcher turns queued PUSH deliveries into APNs and Web Push
// requests, against the same APNs requests made with a bare node:http2 client (the limit), at the same
// concurrency against the same emulator, in the same run.
//
//   npm run bench -- push [--notifications 10000] [--concurrency 128] [--phases bare,apns,webpush]
//                         [--timeout 120] [--batch 500] [--senders 4] [--cpu-prof DIR]
//   BENCH_DATABASE_URL=postgres://... (else TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test)
//
// Phases: bare = node:http2 posting N APNs requests exactly as @parse/node-apn sends them (one session,
// --concurrency in flight); apns = Herald (child process, providers file with only `apns` pointed at the
// emulator) delivering N PUSH notifications handed over with SendBatch, one APNs token per recipient;
// webpush = the same with one Web Push subscription per recipient and only `webpush` in the providers file.
// deliveries/s = N / (last arrival at the emulator - first send); latency = send to arrival per delivery.
// Environment variables the server understands (HERALD_DB_POOL_MAX, ...) are passed on to it; --cpu-prof
// writes a V8 CPU profile of each Herald child into DIR.
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { apnsSigningKey } from '../test/emulators/apns.js';
import { type BenchDatabase, createBenchDatabase } from './lib/bench-database.js';
import { Cleanup } from './lib/cleanup.js';
import { backgroundLoad } from './lib/cpu.js';
import { benchServerUrl, positiveInteger } from './lib/options.js';
import { bareHttp2Phase, type PushSetup } from './lib/push-bare.js';
import { type PushEmulators, startPushEmulators } from './lib/push-emulators.js';
import { heraldPushPhase } from './lib/push-herald.js';
import type { PushPhase } from './lib/push-measure.js';
import { pushTable, pushTargetTable } from './lib/push-report.js';
import { APP_ID, KEY_ID, TEAM_ID } from './lib/push-workload.js';

const TARGET_HERALD_OVER_BARE = 0.5;
/** Bare requests made before the phases so the emulator's code is compiled for every phase alike. */
const EMULATOR_WARMUP = 2_000;

const PHASES = ['bare', 'apns', 'webpush'] as const;
type PhaseName = (typeof PHASES)[number];

function isPhaseName(value: string): value is PhaseName {
  return PHASES.some((name) => name === value);
}

interface Options {
  phases: PhaseName[];
  notifications: number;
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
    notifications: positiveInteger('--notifications', values.notifications, 10_000),
    // Requests in flight, for the bare client and Herald's push lane alike: by default the push lane's own
    // default (four times HERALD_DISPATCH_CONCURRENCY's 32).
    concurrency: positiveInteger(
      '--concurrency',
      values.concurrency ?? process.env.HERALD_DISPATCH_CONCURRENCY_PUSH,
      128,
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
  bare?: PushPhase;
  apns?: PushPhase;
  webPush?: PushPhase;
  serverLog: string[];
}

async function runPhases(setup: PushSetup, which: PhaseName[], cleanup: Cleanup): Promise<Run> {
  const n = setup.notifications;
  const warmup = Math.min(n, EMULATOR_WARMUP);
  progress(`  emulator warm-up: ${warmup} bare APNs requests (not reported)`);
  await bareHttp2Phase({ ...setup, notifications: warmup }, 'warm-up');
  const run: Run = { serverLog: [] };
  if (which.includes('bare')) {
    progress(`  bare http2: ${n} APNs requests`);
    run.bare = await bareHttp2Phase(setup, 'bare http2 (node-apn requests)');
  }
  if (which.includes('apns')) {
    progress(`  Herald APNs: ${n} notifications`);
    const { phase, serverLog } = await heraldPushPhase(setup, 'apns', 'Herald APNs', cleanup);
    run.apns = phase;
    run.serverLog.push(...serverLog.map((line) => `[apns] ${line}`));
  }
  if (which.includes('webpush')) {
    progress(`  Herald Web Push: ${n} notifications`);
    const { phase, serverLog } = await heraldPushPhase(setup, 'webpush', 'Herald Web Push', cleanup);
    run.webPush = phase;
    run.serverLog.push(...serverLog.map((line) => `[webpush] ${line}`));
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
  const phases = [run.bare, run.apns, run.webPush].filter((p): p is PushPhase => p !== undefined);
  const out = [
    '',
    `Herald push benchmark — ${cpus.length} CPUs (${cpus[0]?.model ?? 'unknown'}), Node ${process.version}, ` +
      `PostgreSQL ${env.postgresVersion}`,
    `machine busy before the run: ${Math.round(env.backgroundLoad * 100)}% of all cores` +
      (env.backgroundLoad > BUSY_MACHINE ? ' — OTHER PROCESSES ARE COMPETING; see "other CPU"' : ''),
    `work:   ${options.notifications} push deliveries per phase, one device per recipient, ` +
      `${options.concurrency} requests in flight at most`,
    '        deliv/s = delivered / (last arrival - first send); p50/p99/max = send-to-arrival; ' +
      'hand-over = first send to last call acknowledged',
    'emulators: test/emulators APNs (HTTP/2 + TLS, ES256 provider JWT verified per request) and Web Push ' +
      '(HTTPS, VAPID verified and body decrypted per request), in one child process, bound to 127.0.0.1',
    `bare http2: node:http2 in this process, one session, ${options.concurrency} closed-loop workers, ` +
      `node-apn's headers (apns-topic ${APP_ID}, push-type alert, priority 10, expiration, collapse-id, ` +
      `apns-id), one JWT (kid ${KEY_ID}, iss ${TEAM_ID}) signed once with jose`,
    `Herald: child process (dist/src/main.js serve, the compiled build), HERALD_DISPATCH_CONCURRENCY_PUSH=${options.concurrency}, ` +
      'providers file with only apns (@parse/node-apn) or only webpush (web-push), PUSH notifications at ' +
      `priority HIGH, SendBatch of ${options.batchSize} over gRPC, ${options.senders} calls at a time; ` +
      'devices inserted into push_tokens with SQL before the child starts',
    '        checks ok = delivered requests whose status, headers, JWT and payload (Web Push: decrypted ' +
      'plaintext) are as sent; recorded sent = deliveries the database holds as sent afterwards',
    '        CPU columns: share of one core over the phase: gen = this process, server = Herald child, ' +
      'emu = emulator child, pg = backends of the bench database, other = the rest',
    '',
    pushTable(phases),
    '',
    'Targets (PostgreSQL, same emulator, same run):',
    pushTargetTable(run.apns, run.bare, TARGET_HERALD_OVER_BARE),
  ];
  const notes = phases.flatMap((p) => p.notes.map((n) => `  ${p.label}: ${n}`));
  if (notes.length > 0) out.push('', 'Problems:', ...notes);
  if (run.serverLog.length > 0) {
    out.push('', 'Server warnings/errors (stderr):', ...run.serverLog.map((l) => `  ${l}`));
  }
  if (options.cpuProfDir) out.push('', `Herald CPU profiles: ${options.cpuProfDir}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

async function openEmulators(publicKey: string, cleanup: Cleanup): Promise<PushEmulators> {
  const emulators = await startPushEmulators({ keyId: KEY_ID, teamId: TEAM_ID, publicKey, topic: APP_ID });
  cleanup.add('stop push emulators', () => emulators.stop());
  return emulators;
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
    const signing = apnsSigningKey();
    const emulators = await openEmulators(signing.publicKeyPem, cleanup);
    const setup: PushSetup = {
      ...options,
      emulators,
      database,
      apnsPrivateKeyPem: signing.privateKeyPem,
    };
    const env = { postgresVersion: await database.serverVersion(), backgroundLoad: load };
    const run = await runPhases(setup, options.phases, cleanup);
    printReport(options, env, run);
  } finally {
    await cleanup.runAll();
    detach();
  }
}
