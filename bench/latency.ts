// `npm run bench -- latency`: Send-to-receive latency and loss of Herald's real-time delivery, over the
// WebSocket bridge and over StreamNotifications (gRPC), on PostgreSQL.
//
//   npm run bench -- latency [--rate 500] [--seconds 30] [--warmup 2] [--users 200] [--senders 4]
//                            [--grpc-connections N] [--drain-timeout 15] [--cpu-prof]
//   BENCH_DATABASE_URL=postgres://... (else TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test)
//
// Every user holds one WebSocket and one StreamNotifications stream (two child processes, one per transport),
// so every notification must arrive once on each. An open-loop sender in this process issues Sends (IN_APP)
// at a fixed rate, round-robin over the users, paced by a timer and never waiting for answers; each Send's
// start time is kept by the number it carries in `data.n`. Latency is arrival minus that start; the first
// --warmup seconds are checked for loss but left out of the percentiles. If some have not arrived by the end,
// one more Send goes to each affected user: what arrives then was a lost wake-up, not a lost notification.
// Environment variables the server understands (HERALD_DB_POOL_MAX, REDIS_URL, HERALD_STREAM_HEARTBEAT_MS,
// ...) are passed on to it.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createBenchDatabase } from './lib/bench-database.js';
import { Cleanup } from './lib/cleanup.js';
import { backgroundLoad } from './lib/cpu.js';
import { type HeraldChild, startHeraldChild } from './lib/herald-child.js';
import { percentile } from './lib/load.js';
import { benchServerUrl, positiveNumber } from './lib/options.js';
import { RawGrpcClient } from './lib/raw-grpc.js';
import { type RealtimeCpu, startCpuWindow } from './lib/realtime-cpu.js';
import { analyze, missingUsers, type TransportResult } from './lib/realtime-latency-analysis.js';
import { type Receivers, startReceivers, type Transport } from './lib/realtime-latency-receivers.js';
import {
  createSendLog,
  latencyUserId,
  MAX_IN_FLIGHT,
  NUDGE_WAIT_MS,
  nudge,
  SEND_TIMEOUT_MS,
  type SendLog,
  sendOpenLoop,
} from './lib/realtime-latency-sender.js';
import {
  CPU_HEADER,
  CPU_LEGEND,
  cpuCells,
  integer,
  latencyCells,
  ms,
  percent,
  renderTable,
} from './lib/realtime-report.js';
import { ensureJwtSecret } from './lib/realtime-token.js';
import { type Target, targetTable } from './lib/report.js';

const TARGET_P50_MS = 10;
const TARGET_P99_MS = 50;
const OPEN_TIMEOUT_MS = 60_000;
const OPEN_CONCURRENCY = 32;
const DUPLICATE_GRACE_MS = 500;
const TRANSPORTS: readonly Transport[] = ['websocket', 'grpc'];

interface Options {
  rate: number;
  seconds: number;
  warmupSeconds: number;
  users: number;
  senders: number;
  grpcConnections: number;
  drainTimeoutMs: number;
  cpuProfDir: string | undefined;
  serverUrl: string;
}

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      rate: { type: 'string' },
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      users: { type: 'string' },
      senders: { type: 'string' },
      'grpc-connections': { type: 'string' },
      'drain-timeout': { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
    },
  });
  const users = Math.floor(positiveNumber('--users', values.users, 200));
  return {
    rate: positiveNumber('--rate', values.rate, 500),
    seconds: positiveNumber('--seconds', values.seconds ?? process.env.BENCH_SECONDS, 30),
    warmupSeconds: values.warmup === '0' ? 0 : positiveNumber('--warmup', values.warmup, 2),
    users,
    senders: Math.floor(positiveNumber('--senders', values.senders, 4)),
    grpcConnections: Math.floor(positiveNumber('--grpc-connections', values['grpc-connections'], users)),
    drainTimeoutMs: positiveNumber('--drain-timeout', values['drain-timeout'], 15) * 1000,
    cpuProfDir: values['cpu-prof'] ? mkdtempSync(path.join(os.tmpdir(), 'herald-bench-prof-')) : undefined,
    serverUrl: benchServerUrl(),
  };
}

function progress(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** Waits until every receiver has as many distinct notifications as were acknowledged, or the deadline. */
async function drain(receivers: Receivers[], acknowledged: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const counts = await Promise.all(receivers.map((r) => r.progress()));
    if (counts.every((c) => c >= acknowledged)) {
      // Late duplicates would still be counted.
      await new Promise((resolve) => setTimeout(resolve, DUPLICATE_GRACE_MS));
      return true;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

interface Run {
  log: SendLog;
  results: TransportResult[];
  cpu: RealtimeCpu;
  drained: boolean;
  serverLog: readonly string[];
}

async function openReceivers(
  options: Options,
  server: HeraldChild,
  jwtSecret: string,
  cleanup: Cleanup,
): Promise<Receivers[]> {
  const users = Array.from({ length: options.users }, (_, i) => latencyUserId(i));
  const receivers = TRANSPORTS.map((transport) => {
    const r = startReceivers(transport);
    cleanup.add(`stop ${transport} receivers`, () => r.stop());
    return r;
  });
  const opened = await Promise.all(
    receivers.map((r) =>
      r.open({
        baseUrl: server.url,
        apiKey: server.apiKey,
        jwtSecret,
        users,
        connections: r.transport === 'grpc' ? options.grpcConnections : users.length,
        concurrency: OPEN_CONCURRENCY,
        timeoutMs: OPEN_TIMEOUT_MS,
      }),
    ),
  );
  opened.forEach((o, i) => {
    if (o.failed > 0) {
      throw new Error(
        `${receivers[i]!.transport}: ${o.failed} of ${options.users} failed; first: ${o.firstError}`,
      );
    }
  });
  return receivers;
}

async function run(
  options: Options,
  cleanup: Cleanup,
  database: { name: string; url: string },
): Promise<Run> {
  const jwtSecret = ensureJwtSecret();
  const server = await startHeraldChild({
    databaseUrl: database.url,
    dataDir: undefined,
    cpuProfDir: options.cpuProfDir,
  });
  cleanup.add('stop Herald', () => server.stop());
  progress(`  ${options.users} users x (1 WebSocket + 1 StreamNotifications)`);
  const receivers = await openReceivers(options, server, jwtSecret, cleanup);
  const clients = Array.from(
    { length: options.senders },
    () => new RawGrpcClient(server.grpcUrl, `Bearer ${server.apiKey}`),
  );
  cleanup.add('close sender clients', () => {
    for (const client of clients) client.close();
  });

  const warmupCount = Math.round(options.warmupSeconds * options.rate);
  const total = warmupCount + Math.round(options.seconds * options.rate);
  const log = createSendLog(total, warmupCount);
  progress(
    `  sending ${total} at ${options.rate}/s (${options.warmupSeconds} s warm-up + ${options.seconds} s measured)`,
  );
  const subjects = { serverPid: server.pid, database: database.name };
  const generators = receivers.map((r) => r.pid);
  let stopCpu = startCpuWindow(subjects, generators);
  await sendOpenLoop(clients, options, log, () => {
    stopCpu = startCpuWindow(subjects, generators);
  });
  const cpu = stopCpu();
  const acknowledged = log.ids.filter((id) => id !== undefined).length;
  progress(`  waiting for ${acknowledged} acknowledged notifications on both transports`);
  const drained = await drain(receivers, acknowledged, options.drainTimeoutMs);
  const got = await Promise.all(receivers.map((r) => r.collect()));
  const results = receivers.map((r, i) => analyze(r.transport, options.users, log, got[i]!));
  if (results.some((r) => r.missing > 0)) {
    const affected = missingUsers(log, got, options.users);
    progress(`  ${affected.size} users miss notifications; one more Send to each, then ${NUDGE_WAIT_MS} ms`);
    await nudge(clients, log, affected);
    const again = await Promise.all(receivers.map((r) => r.collect()));
    results.forEach((r, i) => {
      r.arrivedAfterNudge = r.missing - analyze(r.transport, options.users, log, again[i]!).missing;
    });
  }
  await Promise.all(receivers.map((r) => r.close()));
  const serverLog = [...server.logLines()];
  await server.stop();
  return { log, results, cpu, drained, serverLog };
}

const TRANSPORT_LABEL: Record<Transport, string> = {
  websocket: 'WebSocket bridge',
  grpc: 'StreamNotifications (gRPC)',
};

function receiversTable(results: TransportResult[]): string {
  const header = [
    'transport',
    'conns',
    'acknowledged',
    'received',
    'missing',
    'duplicates',
    'p50 ms',
    'p99 ms',
    'max ms',
  ];
  const rows = results.map((r) => [
    TRANSPORT_LABEL[r.transport],
    integer(r.connections),
    integer(r.acknowledged),
    integer(r.received),
    integer(r.missing),
    integer(r.duplicates),
    ...latencyCells(r.latenciesMs),
  ]);
  return renderTable(header, rows, 1);
}

function targets(results: TransportResult[]): Target[] {
  return results.flatMap((r) => {
    const label = TRANSPORT_LABEL[r.transport];
    const format = (v: number) => `${v.toFixed(1)} ms`;
    return [
      {
        label: `${label}: p50 Send-to-receive`,
        value: r.latenciesMs.length > 0 ? percentile(r.latenciesMs, 0.5) : undefined,
        format,
        pass: (v: number) => v < TARGET_P50_MS,
        target: `< ${TARGET_P50_MS} ms`,
      },
      {
        label: `${label}: p99 Send-to-receive`,
        value: r.latenciesMs.length > 0 ? percentile(r.latenciesMs, 0.99) : undefined,
        format,
        pass: (v: number) => v < TARGET_P99_MS,
        target: `< ${TARGET_P99_MS} ms`,
      },
      {
        label: `${label}: missing + duplicate`,
        value: r.missing + r.duplicates + r.mismatched,
        format: (v: number) => integer(v),
        pass: (v: number) => v === 0,
        target: '0',
      },
    ];
  });
}

function problems(run: Run): string[] {
  const { log } = run;
  const notes: string[] = [];
  if (!run.drained) notes.push('not every acknowledged notification arrived before --drain-timeout');
  if (log.failures > 0) {
    notes.push(
      `${log.failures} Sends failed or timed out (${SEND_TIMEOUT_MS / 1000} s); first: ${log.firstFailure}`,
    );
  }
  if (log.skipped > 0) notes.push(`${log.skipped} Sends skipped: ${MAX_IN_FLIGHT} already in flight`);
  for (const r of run.results) {
    const label = TRANSPORT_LABEL[r.transport];
    if (r.mismatched > 0) notes.push(`${label}: ${r.mismatched} arrivals with an id Send did not answer`);
    if (r.unacknowledged > 0) notes.push(`${label}: ${r.unacknowledged} arrivals of Sends that failed`);
    if (r.unexpected > 0)
      notes.push(`${label}: ${r.unexpected} malformed frames or notifications without data.n`);
    if (r.missing > 0) {
      notes.push(
        `${label}: ${r.missing} missing at the end, ${r.missingLastOfUser} of them their user's last Send; ` +
          `${r.arrivedAfterNudge} arrived once one more Send went to the same user (lost wake-up)`,
      );
    }
    if (r.closed > 0) notes.push(`${label}: ${r.closed} connections ended early; first: ${r.firstClose}`);
  }
  return notes;
}

// Above this, other processes are competing for the cores and the figures are not representative.
const BUSY_MACHINE = 0.1;

function printReport(
  options: Options,
  env: { postgresVersion: string; backgroundLoad: number },
  run: Run,
): void {
  const cpus = os.cpus();
  const { log } = run;
  const lag = Float64Array.from(log.lagMs).sort();
  const answers = Float64Array.from(log.answerMs).sort();
  const sent = log.total - log.skipped;
  const out = [
    '',
    `Herald real-time latency benchmark — ${cpus.length} CPUs (${cpus[0]?.model ?? 'unknown'}), Node ${process.version}, ` +
      `PostgreSQL ${env.postgresVersion}`,
    `machine busy before the run: ${percent(env.backgroundLoad)} of all cores` +
      (env.backgroundLoad > BUSY_MACHINE ? ' — OTHER PROCESSES ARE COMPETING; see "other CPU"' : ''),
    'server: child process (dist/src/main.js serve, the compiled build) on PostgreSQL, log level warn, ' +
      `bus ${process.env.REDIS_URL ? 'Redis (REDIS_URL)' : 'in memory (one instance)'}, ` +
      `HERALD_DB_POOL_MAX=${process.env.HERALD_DB_POOL_MAX ?? '10 (default)'}, ` +
      `HERALD_STREAM_HEARTBEAT_MS=${process.env.HERALD_STREAM_HEARTBEAT_MS ?? '20000 (default)'}`,
    `receivers: ${options.users} users, each with one WebSocket (user JWT in the subprotocol, resume after_seq 0) ` +
      'and one StreamNotifications stream (bootstrap API key, read scope); one child process per transport, ' +
      `streams over ${Math.min(options.grpcConnections, options.users)} HTTP/2 connection(s)`,
    `sender: open loop in this process, ${options.rate} Sends/s (IN_APP) round-robin over the users, ` +
      `${options.senders} HTTP/2 connection(s); ${options.warmupSeconds} s warm-up (checked for loss, not in ` +
      `the percentiles) + ${options.seconds} s measured`,
    `        ${integer(sent)} Sends in ${(log.sendingMs / 1000).toFixed(1)} s ` +
      `(${integer((sent / log.sendingMs) * 1000)}/s); start lag against the schedule p99 ${ms(percentile(lag, 0.99))} ms, ` +
      `max ${ms(lag.length > 0 ? lag[lag.length - 1]! : Number.NaN)} ms; Send answered p50 ` +
      `${ms(percentile(answers, 0.5))} ms, p99 ${ms(percentile(answers, 0.99))} ms`,
    '        latency = first arrival at the receiver (child process, epoch clock) - start of the Send call',
    '',
    receiversTable(run.results),
    '',
    `CPU over the measured sending (${options.seconds} s); gen = sender + both receiver children:`,
    renderTable(CPU_HEADER, [cpuCells(run.cpu)], 0),
    CPU_LEGEND,
    '',
    'Targets:',
    targetTable(targets(run.results)),
  ];
  const notes = problems(run);
  if (notes.length > 0) out.push('', 'Problems:', ...notes.map((n) => `  ${n}`));
  if (run.serverLog.length > 0)
    out.push('', 'Server warnings/errors (stderr):', ...run.serverLog.map((l) => `  ${l}`));
  if (options.cpuProfDir) out.push('', `Server CPU profile: ${options.cpuProfDir}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

export async function main(args: string[] = []): Promise<void> {
  const options = parseOptions(args);
  const cleanup = new Cleanup();
  const detach = cleanup.onInterrupt();
  try {
    const load = await backgroundLoad(1_000);
    const database = await createBenchDatabase(options.serverUrl);
    cleanup.add(`drop database ${database.name}`, () => database.drop());
    progress(`PostgreSQL: database ${database.name}`);
    const env = { postgresVersion: await database.serverVersion(), backgroundLoad: load };
    const result = await run(options, cleanup, database);
    printReport(options, env, result);
  } finally {
    await cleanup.runAll();
    detach();
  }
}
