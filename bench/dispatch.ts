// `npm run bench -- dispatch`: how fast Herald's dispatcher turns queued webhook deliveries into signed
// POSTs, against (a) the same signed POSTs made with raw undici (the limit) and (b) pg-boss doing the same
// job on the same PostgreSQL database, all at the same concurrency against the same local receiver.
//
//   npm run bench -- dispatch [--notifications 20000] [--concurrency 32] [--batch 500] [--senders 4]
//                             [--pgboss-batch 16] [--verify-every 50] [--timeout 120] [--users 10000]
//                             [--phases raw,herald,pgboss]
//   BENCH_DATABASE_URL=postgres://... (else TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test)
//
// Each phase hands all its deliveries over as fast as it can (Herald: SendBatch; pg-boss: insert; raw:
// nothing to hand over) and measures deliveries/s from the first send to the last arrival at the receiver,
// and send-to-arrival latency per delivery (send = when the call carrying it started). Environment
// variables the server understands (HERALD_DB_POOL_MAX, ...) are passed on to it.
import os from 'node:os';
import { parseArgs } from 'node:util';
import { type BenchDatabase, createBenchDatabase } from './lib/bench-database.js';
import { Cleanup } from './lib/cleanup.js';
import { backgroundLoad } from './lib/cpu.js';
import { heraldPhase } from './lib/dispatch-herald.js';
import type { DispatchPhase, DispatchSetup } from './lib/dispatch-measure.js';
import {
  PGBOSS_SCHEMA,
  type PgBossLayout,
  POLLING_INTERVAL_SECONDS,
  pgBossLayout,
  pgBossPhase,
} from './lib/dispatch-pgboss.js';
import { rawUndiciPhase } from './lib/dispatch-raw.js';
import { startWebhookReceiver, type WebhookReceiver } from './lib/dispatch-receiver.js';
import { dispatchTable, dispatchTargetTable } from './lib/dispatch-report.js';
import { benchServerUrl, positiveInteger } from './lib/options.js';

const TARGETS = { heraldOverPgBoss: 1, heraldOverRaw: 0.25 };
/** POSTs made before the phases so the receiver's code is compiled for every phase alike. */
const RECEIVER_WARMUP = 2_000;

const PHASES = ['raw', 'herald', 'pgboss'] as const;
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
  pgBossBatch: number;
  verifyEvery: number;
  timeoutMs: number;
  users: number;
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
      'pgboss-batch': { type: 'string' },
      'verify-every': { type: 'string' },
      timeout: { type: 'string' },
      users: { type: 'string' },
      phases: { type: 'string' },
    },
  });
  const phases = (values.phases ?? PHASES.join(',')).split(',').map((name) => name.trim());
  const unknown = phases.filter((name) => !isPhaseName(name));
  if (unknown.length > 0)
    throw new Error(`--phases: unknown ${unknown.join(', ')} (known: ${PHASES.join(', ')})`);
  return {
    phases: phases.filter(isPhaseName),
    notifications: positiveInteger('--notifications', values.notifications, 20_000),
    // The dispatcher's own default unless the environment already sets one.
    concurrency: positiveInteger(
      '--concurrency',
      values.concurrency ?? process.env.HERALD_DISPATCH_CONCURRENCY,
      32,
    ),
    batchSize: positiveInteger('--batch', values.batch, 500),
    senders: positiveInteger('--senders', values.senders, 4),
    pgBossBatch: positiveInteger('--pgboss-batch', values['pgboss-batch'], 16),
    verifyEvery: positiveInteger('--verify-every', values['verify-every'], 50),
    timeoutMs: positiveInteger('--timeout', values.timeout, 120) * 1000,
    users: positiveInteger('--users', values.users, 10_000),
    serverUrl: benchServerUrl(),
  };
}

function progress(message: string): void {
  process.stderr.write(`${message}\n`);
}

interface Run {
  phases: { raw?: DispatchPhase; herald?: DispatchPhase; pgBoss?: DispatchPhase };
  serverLog: readonly string[];
}

async function runPhases(
  setup: DispatchSetup,
  layout: PgBossLayout,
  which: PhaseName[],
  cleanup: Cleanup,
): Promise<Run> {
  const n = setup.notifications;
  progress(`  receiver warm-up: ${Math.min(n, RECEIVER_WARMUP)} raw POSTs (not reported)`);
  await rawUndiciPhase({ ...setup, notifications: Math.min(n, RECEIVER_WARMUP) }, 'warm-up');
  const run: Run = { phases: {}, serverLog: [] };
  // Every phase starts from empty Herald tables and a fresh checkpoint, as in bench/send.ts.
  if (which.includes('raw')) {
    progress(`  raw undici: ${n} POSTs`);
    await setup.database.reset();
    run.phases.raw = await rawUndiciPhase(setup, 'raw undici (limit)');
  }
  if (which.includes('herald')) {
    progress(`  Herald: ${n} notifications`);
    await setup.database.reset();
    const { phase, serverLog } = await heraldPhase(setup, 'Herald dispatcher', cleanup);
    run.phases.herald = phase;
    run.serverLog = serverLog;
  }
  if (which.includes('pgboss')) {
    progress(`  pg-boss: ${n} jobs`);
    await setup.database.reset();
    const label = `pg-boss (${layout.workers} x batch ${layout.batchSize})`;
    run.phases.pgBoss = await pgBossPhase(setup, layout, label);
  }
  return run;
}

interface Environment {
  postgresVersion: string;
  backgroundLoad: number;
}

// Above this, other processes are competing for the cores and the figures are not representative.
const BUSY_MACHINE = 0.1;

function printReport(options: Options, layout: PgBossLayout, env: Environment, run: Run): void {
  const cpus = os.cpus();
  const { raw, herald, pgBoss } = run.phases;
  const phases = [raw, herald, pgBoss].filter((p): p is DispatchPhase => p !== undefined);
  const out = [
    '',
    `Herald dispatch benchmark — ${cpus.length} CPUs (${cpus[0]?.model ?? 'unknown'}), Node ${process.version}, ` +
      `PostgreSQL ${env.postgresVersion}`,
    `machine busy before the run: ${Math.round(env.backgroundLoad * 100)}% of all cores` +
      (env.backgroundLoad > BUSY_MACHINE ? ' — OTHER PROCESSES ARE COMPETING; see "other CPU"' : ''),
    `work:   ${options.notifications} webhook deliveries per phase, one endpoint, ${options.concurrency} POSTs ` +
      `in flight at most; ${options.users} users round-robin`,
    `        handed over in calls of ${options.batchSize}, ${options.senders} calls at a time, as fast as they ` +
      'return; send time = when the call carrying the delivery started',
    '        deliv/s = deliveries / (last arrival - first send); p50/p99/max = send-to-arrival; hand-over = ' +
      'first send to last call acknowledged',
    'receiver: node:http in a child process, 200 at once, first arrival per webhook-id; one request in ' +
      `${options.verifyEvery} verified with standardwebhooks`,
    `Herald: child process (dist/src/main.js serve, the compiled build), HERALD_DISPATCH_CONCURRENCY=${options.concurrency}, ` +
      `HERALD_DB_POOL_MAX=${layout.poolMax}, SendBatch over gRPC, woken by NOTIFY`,
    `raw undici: ${options.concurrency} closed-loop workers in this process, Agent with ` +
      `${options.concurrency} connections, the same signed body (webhookPayload + signWebhook)`,
    `pg-boss 10: schema ${PGBOSS_SCHEMA} in the same database, insert() from this process; worker child with ` +
      `${layout.workers} work() loops x batchSize ${layout.batchSize} ` +
      `(= ${layout.workers * layout.batchSize} in flight), pool max ${layout.poolMax}, ` +
      `pollingIntervalSeconds ${POLLING_INTERVAL_SECONDS}, notifyWorker() after a full batch`,
    '        CPU columns: share of one core over the phase: gen = this process, server = Herald child or ' +
      'pg-boss worker child, recv = receiver child, pg = backends of the bench database, other = the rest',
    '',
    dispatchTable(phases),
    '',
    'Targets (PostgreSQL, same database, same receiver, same run):',
    dispatchTargetTable(herald, pgBoss, raw, TARGETS),
  ];
  const notes = phases.flatMap((p) => p.notes.map((n) => `  ${p.label}: ${n}`));
  if (notes.length > 0) out.push('', 'Problems:', ...notes);
  if (run.serverLog.length > 0) {
    out.push('', 'Server warnings/errors (stderr):', ...run.serverLog.map((l) => `  ${l}`));
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

async function openReceiver(cleanup: Cleanup): Promise<WebhookReceiver> {
  const receiver = await startWebhookReceiver();
  cleanup.add('stop webhook receiver', () => receiver.stop());
  return receiver;
}

async function openDatabase(options: Options, cleanup: Cleanup): Promise<BenchDatabase> {
  const database = await createBenchDatabase(options.serverUrl);
  cleanup.add(`drop database ${database.name}`, () => database.drop());
  return database;
}

export async function main(args: string[] = []): Promise<void> {
  const options = parseOptions(args);
  const cleanup = new Cleanup();
  const detach = cleanup.onInterrupt();
  try {
    const load = await backgroundLoad(1_000);
    const database = await openDatabase(options, cleanup);
    progress(`PostgreSQL: database ${database.name}`);
    const receiver = await openReceiver(cleanup);
    const setup: DispatchSetup = { ...options, receiver, database };
    const poolMax = positiveInteger('HERALD_DB_POOL_MAX', process.env.HERALD_DB_POOL_MAX, 10);
    const layout = pgBossLayout(options.concurrency, options.pgBossBatch, poolMax);
    const env = { postgresVersion: await database.serverVersion(), backgroundLoad: load };
    const run = await runPhases(setup, layout, options.phases, cleanup);
    printReport(options, layout, env, run);
  } finally {
    await cleanup.runAll();
    detach();
  }
}
