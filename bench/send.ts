// `npm run bench -- send`: Herald's Send and SendBatch throughput and latency over native gRPC (the gRPC port),
// against the same rows inserted with raw postgres.js into the same database in the same run, and Herald's
// server CPU per Send against the floor measured in the same run: a bare node:http2 gRPC handler's server CPU
// plus the raw transaction's client CPU; then the same Herald phases on the embedded PGlite engine, for
// information.
//
//   npm run bench -- send [--seconds 8] [--warmup 2] [--concurrency 16] [--connections N] [--users 10000] [--batch 500]
//                         [--no-pglite] [--cpu-prof]
//   BENCH_SECONDS=4 npm run bench -- send
//   BENCH_DATABASE_URL=postgres://... (else TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test)
//
// Environment variables the server understands (HERALD_DB_POOL_MAX, ...) are passed on to it.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type BenchDatabase, createBenchDatabase } from './lib/bench-database.js';
import { Cleanup } from './lib/cleanup.js';
import { backgroundLoad } from './lib/cpu.js';
import { createClients, heraldSend, heraldSendBatch } from './lib/herald-calls.js';
import { type HeraldChild, startHeraldChild } from './lib/herald-child.js';
import { type Call, percentile, runLoad } from './lib/load.js';
import { benchServerUrl, positiveNumber } from './lib/options.js';
import { openRawPglite, rawPgliteSend } from './lib/raw-pglite.js';
import { openRawPool, rawSendBatched, rawSendPerTransaction } from './lib/raw-postgres.js';
import {
  cpuPerCallUs,
  find,
  type PhaseKind,
  type PhaseRow,
  phaseTable,
  ratio,
  ratioTable,
  type Target,
  targetTable,
} from './lib/report.js';
import { startRpcServer } from './lib/rpc-servers.js';
import { Workload } from './lib/workload.js';

interface Options {
  seconds: number;
  warmupSeconds: number;
  concurrency: number;
  /** HTTP/2 connections the workers share; by default one per worker (16 independent clients). */
  connections: number;
  users: number;
  batchSize: number;
  pglite: boolean;
  cpuProfDir: string | undefined;
  serverUrl: string;
}

const TARGET_SEND_RATIO = 0.6;
/** A Send's server CPU at most this many times (a bare gRPC handler's + a raw transaction's client CPU). */
const TARGET_SEND_CPU_RATIO = 2.5;
const TARGET_SEND_P99_MS = 25;
const TARGET_BATCH_RATIO = 0.5;

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      concurrency: { type: 'string' },
      connections: { type: 'string' },
      users: { type: 'string' },
      batch: { type: 'string' },
      'no-pglite': { type: 'boolean', default: false },
      'cpu-prof': { type: 'boolean', default: false },
    },
  });
  const batchSize = Math.floor(positiveNumber('--batch', values.batch, 500));
  const users = Math.floor(positiveNumber('--users', values.users, 10_000));
  // Batches are consecutive round-robin slices; with fewer users than a batch a user would repeat.
  if (users < batchSize) throw new Error('--users must be at least --batch');
  return {
    seconds: positiveNumber('--seconds', values.seconds ?? process.env.BENCH_SECONDS, 8),
    warmupSeconds: positiveNumber('--warmup', values.warmup, 2),
    concurrency: Math.floor(positiveNumber('--concurrency', values.concurrency, 16)),
    connections: Math.floor(positiveNumber('--connections', values.connections, Number.POSITIVE_INFINITY)),
    users,
    batchSize,
    pglite: !values['no-pglite'],
    cpuProfDir: values['cpu-prof'] ? mkdtempSync(path.join(os.tmpdir(), 'herald-bench-prof-')) : undefined,
    serverUrl: benchServerUrl(),
  };
}

function progress(message: string): void {
  process.stderr.write(`${message}\n`);
}

interface PhaseSpec {
  engine: PhaseRow['engine'];
  kind: PhaseKind;
  label: string;
  call: Call;
  serverPid: number | undefined;
  /**
   * PostgreSQL phases start from empty tables, check what they stored afterwards and report the CPU of
   * this database's backends.
   */
  database?: BenchDatabase;
}

/** Warm-up (connections, prepared statements, JIT), then the measured run with the same load. */
async function runPhase(options: Options, spec: PhaseSpec): Promise<PhaseRow> {
  progress(`  ${spec.engine} ${spec.label}: ${options.warmupSeconds} s warm-up + ${options.seconds} s`);
  await spec.database?.reset();
  const subjects = { serverPid: spec.serverPid, database: spec.database?.name };
  const load = { concurrency: options.concurrency, call: spec.call, subjects };
  const warmup = await runLoad({ ...load, durationMs: options.warmupSeconds * 1000 });
  const result = await runLoad({ ...load, durationMs: options.seconds * 1000 });
  const notes = spec.database
    ? await checkStored(spec.database, warmup.notifications + result.notifications)
    : [];
  if (result.firstError) notes.push(`${result.errors} failed calls; first: ${result.firstError}`);
  return { engine: spec.engine, kind: spec.kind, label: spec.label, result, notes };
}

/** Every acknowledged notification must be stored with exactly one delivery (IN_APP only). */
async function checkStored(database: BenchDatabase, acknowledged: number): Promise<string[]> {
  const { notifications, deliveries } = await database.countRows();
  if (notifications === acknowledged && deliveries === acknowledged) return [];
  return [
    `stored ${notifications} notifications and ${deliveries} deliveries for ${acknowledged} acknowledged`,
  ];
}

async function stopServer(server: HeraldChild): Promise<string[]> {
  const logged = [...server.logLines()];
  await server.stop();
  return logged;
}

async function postgresPhases(
  options: Options,
  database: BenchDatabase,
  cleanup: Cleanup,
  log: string[],
): Promise<PhaseRow[]> {
  progress(`PostgreSQL: database ${database.name}`);
  const server = await startHeraldChild({
    databaseUrl: database.url,
    dataDir: undefined,
    cpuProfDir: options.cpuProfDir,
  });
  cleanup.add('stop Herald (postgres)', () => server.stop());
  const raw = openRawPool(database.url, options.concurrency);
  cleanup.add('close raw pool', () => raw.end({ timeout: 5 }));

  const clients = createClients(options.concurrency, options.connections, server.grpcUrl, server.apiKey);
  cleanup.add('close gRPC clients (postgres)', () => {
    for (const client of new Set(clients)) client.close();
  });
  const workload = new Workload(options.users);
  const common = { engine: 'postgres' as const, database, serverPid: server.pid };
  const batch = options.batchSize;
  const specs: PhaseSpec[] = [
    // Each Herald phase is followed by its baseline, so slow drift (autovacuum, checkpoints) hits both.
    { ...common, kind: 'send', label: 'Herald Send', call: heraldSend(clients, workload) },
    { ...common, kind: 'raw-tx', label: 'raw tx/notification', call: rawSendPerTransaction(raw, workload) },
    {
      ...common,
      kind: 'send-batch',
      label: `Herald SendBatch (${batch})`,
      call: heraldSendBatch(clients, workload, batch),
    },
    {
      ...common,
      kind: 'raw-batch',
      label: `raw batched (${batch})`,
      call: rawSendBatched(raw, workload, batch),
    },
  ];
  const rows: PhaseRow[] = [];
  for (const spec of specs) {
    // The raw phases run in this process; the server's CPU is still shown to prove it was idle.
    rows.push(await runPhase(options, spec));
  }
  log.push(...(await stopServer(server)));
  rows.push(await bareRpcPhase(options, workload, cleanup));
  return rows;
}

/**
 * The least a server can spend on a Send RPC: a bare node:http2 handler that parses the request and answers a
 * constant (bench/lib/rpc-servers.ts), driven by the same clients and workload. With the raw transaction's
 * client CPU it is the floor the target puts a full Send's server CPU against.
 */
async function bareRpcPhase(options: Options, workload: Workload, cleanup: Cleanup): Promise<PhaseRow> {
  const bare = await startRpcServer('bare-http2');
  cleanup.add('stop the bare gRPC handler', () => bare.stop());
  const clients = createClients(options.concurrency, options.connections, bare.url, 'none');
  try {
    return await runPhase(options, {
      engine: 'postgres',
      kind: 'bare-rpc',
      label: 'bare gRPC handler (no-op)',
      call: heraldSend(clients, workload),
      serverPid: bare.pid,
    });
  } finally {
    for (const client of new Set(clients)) client.close();
    bare.stop();
  }
}

async function pglitePhases(options: Options, cleanup: Cleanup, log: string[]): Promise<PhaseRow[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'herald-bench-pglite-'));
  cleanup.add(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  progress(`PGlite: data directories under ${dir}`);
  const server = await startHeraldChild({
    databaseUrl: undefined,
    dataDir: path.join(dir, 'herald'),
    cpuProfDir: options.cpuProfDir,
  });
  cleanup.add('stop Herald (pglite)', () => server.stop());
  const clients = createClients(options.concurrency, options.connections, server.grpcUrl, server.apiKey);
  cleanup.add('close gRPC clients (pglite)', () => {
    for (const client of new Set(clients)) client.close();
  });
  const workload = new Workload(options.users);
  const batch = options.batchSize;
  const rows: PhaseRow[] = [];
  const common = { engine: 'pglite' as const, serverPid: server.pid };
  rows.push(
    await runPhase(options, {
      ...common,
      kind: 'send',
      label: 'Herald Send',
      call: heraldSend(clients, workload),
    }),
  );
  rows.push(
    await runPhase(options, {
      ...common,
      kind: 'send-batch',
      label: `Herald SendBatch (${batch})`,
      call: heraldSendBatch(clients, workload, batch),
    }),
  );
  log.push(...(await stopServer(server)));

  // The raw PGlite baseline runs in this process, on its own data directory.
  const pg = await openRawPglite(path.join(dir, 'raw'));
  cleanup.add('close raw PGlite', () => pg.close());
  const raw = { engine: 'pglite' as const, serverPid: undefined };
  rows.push(
    await runPhase(options, {
      ...raw,
      kind: 'raw-tx',
      label: 'raw tx/notification',
      call: rawPgliteSend(pg, workload, 1),
    }),
  );
  rows.push(
    await runPhase(options, {
      ...raw,
      kind: 'raw-batch',
      label: `raw batched (${batch})`,
      call: rawPgliteSend(pg, workload, batch),
    }),
  );
  return rows;
}

function postgresTargets(rows: PhaseRow[]): Target[] {
  const send = find(rows, 'postgres', 'send');
  const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
  return [
    {
      label: 'Send / raw tx per notification',
      value: ratio(send, find(rows, 'postgres', 'raw-tx')),
      format: pct,
      pass: (v) => v >= TARGET_SEND_RATIO,
      target: `>= ${TARGET_SEND_RATIO * 100}%`,
    },
    {
      label: 'Send p99 latency',
      value: send ? percentile(send.latenciesMs, 0.99) : undefined,
      format: (v) => `${v.toFixed(1)} ms`,
      pass: (v) => v < TARGET_SEND_P99_MS,
      target: `< ${TARGET_SEND_P99_MS} ms`,
    },
    {
      label: 'Send server CPU / (bare handler + raw tx client CPU)',
      value: sendCpuRatio(rows),
      format: (v) => `${v.toFixed(2)}×`,
      pass: (v) => v <= TARGET_SEND_CPU_RATIO,
      target: `<= ${TARGET_SEND_CPU_RATIO}×`,
    },
    {
      label: 'SendBatch / raw batched inserts',
      value: ratio(find(rows, 'postgres', 'send-batch'), find(rows, 'postgres', 'raw-batch')),
      format: pct,
      pass: (v) => v >= TARGET_BATCH_RATIO,
      target: `>= ${TARGET_BATCH_RATIO * 100}%`,
    },
  ];
}

/** A Send's server CPU per call against the floor: a bare handler's server CPU plus a raw transaction's client CPU. */
function sendCpuRatio(rows: PhaseRow[]): number | undefined {
  const send = cpuPerCallUs(find(rows, 'postgres', 'send'), 'server');
  const bare = cpuPerCallUs(find(rows, 'postgres', 'bare-rpc'), 'server');
  const raw = cpuPerCallUs(find(rows, 'postgres', 'raw-tx'), 'generator');
  return send === undefined || bare === undefined || raw === undefined ? undefined : send / (bare + raw);
}

function cpuLine(rows: PhaseRow[]): string {
  const us = (v: number | undefined) => (v === undefined ? '-' : `${v.toFixed(0)} µs`);
  return (
    `CPU per call: Herald Send server ${us(cpuPerCallUs(find(rows, 'postgres', 'send'), 'server'))}, ` +
    `bare gRPC handler server ${us(cpuPerCallUs(find(rows, 'postgres', 'bare-rpc'), 'server'))}, ` +
    `raw tx client (this process) ${us(cpuPerCallUs(find(rows, 'postgres', 'raw-tx'), 'generator'))}`
  );
}

function pgliteRatios(rows: PhaseRow[]) {
  const pgliteSend = find(rows, 'pglite', 'send');
  const pgliteBatch = find(rows, 'pglite', 'send-batch');
  return [
    { label: 'PGlite Send / PostgreSQL raw tx', value: ratio(pgliteSend, find(rows, 'postgres', 'raw-tx')) },
    { label: 'PGlite Send / PGlite raw tx', value: ratio(pgliteSend, find(rows, 'pglite', 'raw-tx')) },
    {
      label: 'PGlite SendBatch / PostgreSQL raw batched',
      value: ratio(pgliteBatch, find(rows, 'postgres', 'raw-batch')),
    },
    {
      label: 'PGlite SendBatch / PGlite raw batched',
      value: ratio(pgliteBatch, find(rows, 'pglite', 'raw-batch')),
    },
  ];
}

interface Environment {
  postgresVersion: string;
  /** Busy share of all cores before the benchmark started. */
  backgroundLoad: number;
}

// Above this, other processes are competing for the cores and the figures are not representative.
const BUSY_MACHINE = 0.1;

function printReport(options: Options, env: Environment, rows: PhaseRow[], serverLog: string[]): void {
  const cpus = os.cpus();
  const busy = `${Math.round(env.backgroundLoad * 100)}%`;
  const out = [
    '',
    `Herald send benchmark — ${cpus.length} CPUs (${cpus[0]?.model ?? 'unknown'}), Node ${process.version}, ` +
      `PostgreSQL ${env.postgresVersion}`,
    `machine busy before the run: ${busy} of all cores` +
      (env.backgroundLoad > BUSY_MACHINE ? ' — OTHER PROCESSES ARE COMPETING; see "other CPU"' : ''),
    'server: child process (node dist/src/main.js serve, the compiled build), log level warn, ' +
      `HERALD_DB_POOL_MAX=${process.env.HERALD_DB_POOL_MAX ?? '10 (default)'}, ` +
      `HERALD_SEND_MAX_STATEMENTS=${process.env.HERALD_SEND_MAX_STATEMENTS ?? '4 (default)'}, ` +
      `HERALD_WORKERS=${process.env.HERALD_WORKERS ?? '1 (default)'}`,
    `load:   ${options.concurrency} concurrent workers, ${connectionsText(options)}; ` +
      `${options.users} users round-robin; IN_APP only (1 delivery per notification); ` +
      `batches of ${options.batchSize}`,
    `        ${options.warmupSeconds} s warm-up + ${options.seconds} s measured per phase; ` +
      'raw baselines run in the load generator process with the same concurrency ' +
      `(postgres.js pool of ${options.concurrency}; PGlite in-process)`,
    '        CPU columns: share of one core over the phase (100% = one core busy): gen = this process, ' +
      'server = Herald child, pg = backends of the bench database, other = everything else; machine = all cores',
    '',
    phaseTable(rows),
    '',
    cpuLine(rows),
    '',
    'Targets (PostgreSQL, same database, same run):',
    targetTable(postgresTargets(rows)),
  ];
  if (options.pglite) out.push('', 'PGlite (for information):', ratioTable(pgliteRatios(rows)));
  const notes = rows.flatMap((r) => r.notes.map((n) => `  ${r.engine} ${r.label}: ${n}`));
  if (notes.length > 0) out.push('', 'Problems:', ...notes);
  if (serverLog.length > 0)
    out.push('', 'Server warnings/errors (stderr):', ...serverLog.map((l) => `  ${l}`));
  if (options.cpuProfDir) out.push('', `Server CPU profiles: ${options.cpuProfDir}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

export async function main(args: string[] = []): Promise<void> {
  const options = parseOptions(args);
  const cleanup = new Cleanup();
  const detach = cleanup.onInterrupt();
  const serverLog: string[] = [];
  try {
    const load = await backgroundLoad(1_000);
    const database = await createBenchDatabase(options.serverUrl);
    cleanup.add(`drop database ${database.name}`, () => database.drop());
    const env = { postgresVersion: await database.serverVersion(), backgroundLoad: load };
    const rows = await postgresPhases(options, database, cleanup, serverLog);
    if (options.pglite) rows.push(...(await pglitePhases(options, cleanup, serverLog)));
    printReport(options, env, rows, serverLog);
  } finally {
    await cleanup.runAll();
    detach();
  }
}

function connectionsText(options: Options): string {
  return options.connections >= options.concurrency
    ? 'each its own raw gRPC client (own HTTP/2 connection)'
    : `sharing ${options.connections} raw gRPC client(s) (HTTP/2 connections, streams multiplexed)`;
}
