// `npm run bench -- fanout`: 10,000 WebSocket connections (one user each) on one Herald instance — server
// RSS per idle connection, a unicast burst (one notification per user) and a broadcast burst — against a bare
// `ws` server with the same clients in the same run.
//
//   npm run bench -- fanout [--connections 10000] [--processes 4] [--broadcasts 20] [--batch 500]
//                           [--senders 4] [--connect-concurrency 50] [--settle 2] [--timeout 120]
//                           [--servers herald,bare] [--pglite] [--cpu-prof (Herald, per phase)]
//   BENCH_DATABASE_URL=postgres://... (else TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test)
//
// Clients: --processes child processes (at least one per 2,500 sockets), child k connecting from 127.0.0.(k+2),
// each user with a JWT in the subprotocol and `resume after_seq 0`, as a browser would. Herald: unicast by
// SendBatch (--batch per call, --senders calls at a time, IN_APP), broadcast by BroadcastSystemMessage (all
// --broadcasts started at once). Bare ws: one frame per connection, each encoded for its user; broadcast frames
// encoded once and written to every connection (as Socket.IO does). Latency = hand-over (call start) to
// arrival; rate = arrivals / (first hand-over - last arrival). RSS is read after a forced full GC (Herald:
// over its inspector, started with --inspect=127.0.0.1:0) and --settle seconds. Environment variables the
// server understands (HERALD_DB_POOL_MAX, HERALD_STREAM_HEARTBEAT_MS, REDIS_URL, ...) are passed on to it.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Cleanup } from './lib/cleanup.js';
import { benchServerUrl, listOption, positiveInteger } from './lib/options.js';
import type { ClientGroup } from './lib/realtime-fanout-clients.js';
import {
  type DeliveryResult,
  deliveriesPerSecond,
  type FanoutSettings,
  measureServer,
  type ServerRun,
} from './lib/realtime-fanout-measure.js';
import { startBareFanoutServer } from './lib/realtime-fanout-servers.js';
import type { MemoryBreakdown } from './lib/realtime-memory.js';
import {
  CPU_HEADER,
  CPU_LEGEND,
  cpuCells,
  integer,
  kib,
  latencyCells,
  mib,
  percent,
  renderTable,
} from './lib/realtime-report.js';
import { CLIENT_OPTIONS, clientCounts, startHerald, withClientGroups } from './lib/realtime-setup.js';
import { type Target, targetTable } from './lib/report.js';

const TARGET_RATIO = 0.7;
const TARGET_RSS_PER_CONNECTION = 12 * 1024;
const USER_PREFIX = 'fan-user-';
const SERVERS = ['herald', 'bare'] as const;
type ServerName = (typeof SERVERS)[number];

interface Options extends FanoutSettings {
  processes: number;
  batchSize: number;
  senders: number;
  connectConcurrency: number;
  servers: ServerName[];
  pglite: boolean;
  cpuProfDir: string | undefined;
  serverUrl: string;
}

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      ...CLIENT_OPTIONS,
      broadcasts: { type: 'string' },
      batch: { type: 'string' },
      senders: { type: 'string' },
      settle: { type: 'string' },
      pglite: { type: 'boolean', default: false },
    },
  });
  const timeoutMs = positiveInteger('--timeout', values.timeout, 120) * 1000;
  return {
    ...clientCounts(values),
    broadcasts: positiveInteger('--broadcasts', values.broadcasts, 20),
    batchSize: positiveInteger('--batch', values.batch, 500),
    senders: positiveInteger('--senders', values.senders, 4),
    connectConcurrency: positiveInteger('--connect-concurrency', values['connect-concurrency'], 50),
    settleMs: positiveInteger('--settle', values.settle, 2) * 1000,
    connectTimeoutMs: timeoutMs,
    phaseTimeoutMs: timeoutMs,
    servers: listOption('--servers', values.servers, SERVERS),
    pglite: values.pglite ?? false,
    cpuProfDir: values['cpu-prof'] ? mkdtempSync(path.join(os.tmpdir(), 'herald-bench-prof-')) : undefined,
    serverUrl: benchServerUrl(),
  };
}

function progress(message: string): void {
  process.stderr.write(`${message}\n`);
}

async function runServer(
  name: ServerName,
  options: Options,
  groups: ClientGroup[],
  cleanup: Cleanup,
): Promise<{ run: ServerRun; engine: string | undefined }> {
  const { server, engine } =
    name === 'herald'
      ? await startHerald({ ...options, userPrefix: USER_PREFIX }, cleanup, progress)
      : { server: await startBareFanoutServer(), engine: undefined };
  cleanup.add(`stop ${server.label}`, () => server.stop());
  try {
    return { run: await measureServer(server, groups, options, progress), engine };
  } finally {
    await server.stop();
  }
}

function idleTable(runs: ServerRun[]): string {
  const header = [
    'server',
    'connected',
    'failed',
    'connect s',
    'conn/s',
    'RSS before',
    'RSS after',
    'per connection',
    'V8 heap per connection',
  ];
  const rows = runs.map(({ label, idle }) => [
    label,
    integer(idle.connected),
    integer(idle.failed),
    (idle.connectMs / 1000).toFixed(1),
    integer(idle.connected / (idle.connectMs / 1000)),
    mib(idle.rssBefore),
    mib(idle.rssAfter),
    kib(rssPerConnection(idle)),
    kib(idle.connected > 0 ? (idle.heapAfter - idle.heapBefore) / idle.connected : Number.NaN),
  ]);
  return renderTable(header, rows, 1);
}

/** What the idle connections' RSS is made of (Herald): V8's heap pages, young generation apart, and the rest. */
function memoryLines(runs: ServerRun[]): string[] {
  return runs.flatMap(({ label, idle }) => {
    const { memoryBefore: a, memoryAfter: b } = idle;
    if (!a || !b || idle.connected === 0) return [];
    const per = (f: (m: MemoryBreakdown) => number) => kib((f(b) - f(a)) / idle.connected);
    return [
      `${label} RSS per connection by kind: V8 heap pages ${per((m) => m.heapTotal - m.newSpace)} + young ` +
        `generation ${per((m) => m.newSpace)} (${mib(a.newSpace)} -> ${mib(b.newSpace)}) + external ` +
        `${per((m) => m.external)} + native (sockets, malloc) ${per((m) => m.rss - m.heapTotal - m.external)}`,
    ];
  });
}

function rssPerConnection(idle: ServerRun['idle']): number {
  return idle.connected > 0 ? (idle.rssAfter - idle.rssBefore) / idle.connected : Number.NaN;
}

function deliveryTable(runs: ServerRun[]): string {
  const header = ['server', 'phase', 'delivered', 'frames/s', 'p50 ms', 'p99 ms', 'max ms', ...CPU_HEADER];
  const rows = runs.flatMap((run) =>
    [run.unicast, run.broadcast].map((d) => [
      run.label,
      d.kind,
      `${integer(d.received)}/${integer(d.expected)}`,
      integer(deliveriesPerSecond(d)),
      ...latencyCells(d.latenciesMs),
      ...cpuCells(d.cpu),
    ]),
  );
  return renderTable(header, rows, 2);
}

/** A rate only counts when everything arrived. */
function rateRatio(a: DeliveryResult | undefined, b: DeliveryResult | undefined): number | undefined {
  if (!a || !b || a.received < a.expected || b.received < b.expected) return undefined;
  return deliveriesPerSecond(a) / deliveriesPerSecond(b);
}

/** Herald's unicast against its own ceiling: the same SendBatch calls, stored with nobody connected. */
function ceilingRatio(herald: ServerRun | undefined): number | undefined {
  const alone = herald?.storeOnly;
  if (!herald || !alone || alone.failures.length > 0 || herald.unicast.received < herald.unicast.expected) {
    return undefined;
  }
  return deliveriesPerSecond(herald.unicast) / (alone.notifications / (alone.elapsedMs / 1000));
}

function targets(herald: ServerRun | undefined, bare: ServerRun | undefined): Target[] {
  const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
  return [
    {
      label: 'unicast deliveries/s, Herald / its Send-only ceiling',
      value: ceilingRatio(herald),
      format: pct,
      pass: (v) => v >= TARGET_RATIO,
      target: `>= ${TARGET_RATIO * 100}%`,
    },
    {
      label: 'unicast deliveries/s, Herald / bare ws',
      value: rateRatio(herald?.unicast, bare?.unicast),
      format: pct,
      pass: (v) => v >= TARGET_RATIO,
      target: `>= ${TARGET_RATIO * 100}%`,
    },
    {
      label: 'broadcast frames/s, Herald / bare ws',
      value: rateRatio(herald?.broadcast, bare?.broadcast),
      format: pct,
      pass: (v) => v >= TARGET_RATIO,
      target: `>= ${TARGET_RATIO * 100}%`,
    },
    {
      label: 'Herald RSS per idle connection',
      value: herald ? rssPerConnection(herald.idle) : undefined,
      format: kib,
      pass: (v) => v <= TARGET_RSS_PER_CONNECTION,
      target: `<= ${kib(TARGET_RSS_PER_CONNECTION)}`,
    },
  ];
}

function problems(runs: ServerRun[]): string[] {
  return runs.flatMap((run) => {
    const notes: string[] = [];
    if (run.idle.failed > 0)
      notes.push(`${run.idle.failed} connections failed; first: ${run.idle.firstError}`);
    if (!run.idle.forcedGc) notes.push('RSS read without a forced GC (settle wait only)');
    for (const d of [run.unicast, run.broadcast]) {
      if (!d.quiet) notes.push(`${d.kind}: the server was still busy when the phase started`);
      if (!d.completed) notes.push(`${d.kind}: not everything arrived within --timeout`);
      if (d.received < d.expected) notes.push(`${d.kind}: ${d.expected - d.received} never arrived`);
      if (d.duplicates > 0) notes.push(`${d.kind}: ${d.duplicates} duplicates`);
      if (d.unexpected > 0) notes.push(`${d.kind}: ${d.unexpected} frames for the wrong user or malformed`);
      if (d.failures.length > 0)
        notes.push(`${d.kind}: ${d.failures.length} failed calls; first: ${d.failures[0]}`);
    }
    if (run.closed > 0)
      notes.push(`${run.closed} connections closed by the server; first: ${run.firstClose}`);
    return notes.map((n) => `${run.label}: ${n}`);
  });
}

/** The unicast's ceiling: Herald's Sends alone, with nobody connected, against bare ws's unicast. */
function storeOnlyLines(herald: ServerRun | undefined, bare: ServerRun | undefined): string[] {
  const alone = herald?.storeOnly;
  if (!herald || !alone) return [];
  const rate = alone.notifications / (alone.elapsedMs / 1000);
  const ratio = bare ? percent(rate / deliveriesPerSecond(bare.unicast)) : '-';
  const failed =
    alone.failures.length > 0 ? ` (${alone.failures.length} failed; first: ${alone.failures[0]})` : '';
  /** CPU per notification over a phase, in microseconds of one core. */
  const perNotification = (share: number | undefined, cpu: { wallMs: number }, n: number) =>
    share === undefined ? '-' : `${integer((share * cpu.wallMs * 1000) / n)} µs`;
  const { unicast } = herald;
  return [
    '',
    `Herald's unicast ceiling: the same SendBatch calls to ${integer(alone.notifications)} users with nobody ` +
      `connected (stored, written to no socket) took ${integer(alone.elapsedMs)} ms = ` +
      `${integer(rate)} notifications/s = ${ratio} of bare ws unicast${failed}`,
    `CPU per notification: server ${perNotification(alone.cpu.server, alone.cpu, alone.notifications)} ` +
      `alone vs ${perNotification(unicast.cpu.server, unicast.cpu, unicast.expected)} in the unicast; ` +
      `PostgreSQL ${perNotification(alone.cpu.postgres, alone.cpu, alone.notifications)} alone vs ` +
      `${perNotification(unicast.cpu.postgres, unicast.cpu, unicast.expected)}; load generator ` +
      `${perNotification(unicast.cpu.generator, unicast.cpu, unicast.expected)} in the unicast ` +
      `(machine ${percent(alone.cpu.machine)} busy alone, ${percent(unicast.cpu.machine)} in the unicast)`,
  ];
}

// Above this, other processes are competing for the cores and the figures are not representative.
const BUSY_MACHINE = 0.1;

function printReport(
  options: Options,
  env: { backgroundLoad: number; engine: string | undefined },
  runs: ServerRun[],
) {
  const cpus = os.cpus();
  const herald = runs.find((r) => r.label === 'Herald');
  const bare = runs.find((r) => r.label === 'bare ws');
  const per = Math.ceil(options.connections / options.processes);
  const out = [
    '',
    `Herald WebSocket fanout benchmark — ${cpus.length} CPUs (${cpus[0]?.model ?? 'unknown'}), Node ${process.version}`,
    `machine busy before the run: ${percent(env.backgroundLoad)} of all cores` +
      (env.backgroundLoad > BUSY_MACHINE ? ' — OTHER PROCESSES ARE COMPETING; see "other CPU"' : ''),
    `Herald: child process (dist/src/main.js serve, the compiled build, --inspect=127.0.0.1:0 for GC) on ${env.engine ?? '-'}, ` +
      `bus ${process.env.REDIS_URL ? 'Redis (REDIS_URL)' : 'in memory'}, ` +
      `HERALD_DB_POOL_MAX=${process.env.HERALD_DB_POOL_MAX ?? '10 (default)'}, ` +
      `HERALD_STREAM_HEARTBEAT_MS=${process.env.HERALD_STREAM_HEARTBEAT_MS ?? '20000 (default)'}; ` +
      `unicast by SendBatch of ${options.batchSize} (${options.senders} at a time), broadcast by ` +
      `BroadcastSystemMessage (${options.broadcasts} at once)`,
    'bare ws: ws 8 in a child process, same handshake; unicast = one frame per connection, encoded per user; ' +
      'broadcast = each frame encoded once, the same bytes written to every connection',
    `clients: ${options.connections} WebSockets, one user each (JWT subprotocol, resume after_seq 0), in ` +
      `${options.processes} child processes of <= ${per} from 127.0.0.2 .. 127.0.0.${options.processes + 1}, ` +
      `${options.connectConcurrency} handshakes at a time per process`,
    `RSS: VmRSS of the server process after a forced full GC and ${options.settleMs / 1000} s, before connecting ` +
      '(after 100 connections opened and closed as a warm-up) and with every connection idle (session live); ' +
      'per connection = difference / connections (V8 heap in use after the same GCs, for reference: RSS also ' +
      'moves with heap pages kept from earlier garbage)',
    '',
    idleTable(runs),
    ...memoryLines(runs),
    '',
    'frames/s = frames received / (first hand-over - last arrival); latency = hand-over to arrival',
    deliveryTable(runs),
    CPU_LEGEND,
    '',
    ...storeOnlyLines(herald, bare),
    '',
    'Targets (same clients, same run):',
    targetTable(targets(herald, bare)),
  ];
  const notes = problems(runs);
  if (notes.length > 0) out.push('', 'Problems:', ...notes.map((n) => `  ${n}`));
  const serverLog = herald?.serverLog ?? [];
  if (serverLog.length > 0)
    out.push('', 'Herald warnings/errors (stderr):', ...serverLog.map((l) => `  ${l}`));
  process.stdout.write(`${out.join('\n')}\n`);
}

export async function main(args: string[] = []): Promise<void> {
  const options = parseOptions(args);
  await withClientGroups({ ...options, userPrefix: USER_PREFIX }, async (groups, cleanup, load) => {
    const runs: ServerRun[] = [];
    let engine: string | undefined;
    for (const name of options.servers) {
      const result = await runServer(name, options, groups, cleanup);
      runs.push(result.run);
      engine ??= result.engine;
    }
    printReport(options, { backgroundLoad: load, engine }, runs);
    if (options.cpuProfDir)
      process.stdout.write(
        `\nCPU profiles of Herald, one per phase: ${options.cpuProfDir}/herald-*.cpuprofile\n`,
      );
  });
}
