// `npm run bench -- storm`: a reconnect storm. 10,000 WebSocket clients (one user each) connect and resume
// at once, as after a deploy or a load-balancer restart, against Herald on PostgreSQL, Herald on PGlite and a
// bare `ws` server answering the same handshake, with the same clients in the same run.
//
//   npm run bench -- storm [--connections 10000] [--processes 4] [--connect-concurrency 50]
//                          [--servers herald,bare] [--engines postgres,pglite] [--probe-ms 20] [--timeout 180]
//                          [--cpu-prof (Herald, over the storm)]
//   BENCH_DATABASE_URL=postgres://... (else TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test)
//
// Clients: as in `fanout` (child processes from 127.0.0.2.., a JWT in the subprotocol, `resume after_seq 0`,
// --connect-concurrency handshakes in flight per process). A client counts as resumed at its first
// `unread_count` (the end of its replay). While the storm runs, one prober asks Herald's /healthz and another
// makes one in-app Send every --probe-ms, each waiting for its answer before the next: how responsive the
// server stays for everything else.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Cleanup } from './lib/cleanup.js';
import { percentile } from './lib/load.js';
import { benchServerUrl, listOption, positiveInteger } from './lib/options.js';
import { type RealtimeCpu, startCpuWindow, waitUntilQuiet } from './lib/realtime-cpu.js';
import type { ClientGroup } from './lib/realtime-fanout-clients.js';
import { type FanoutServer, startBareFanoutServer } from './lib/realtime-fanout-servers.js';
import {
  CPU_HEADER,
  CPU_LEGEND,
  cpuCells,
  integer,
  latencyCells,
  percent,
  renderTable,
} from './lib/realtime-report.js';
import { CLIENT_OPTIONS, clientCounts, startHerald, withClientGroups } from './lib/realtime-setup.js';
import { type Target, targetTable } from './lib/report.js';

const TARGET_RESUMED_RATIO = 3;
const TARGET_HEALTH_P99_MS = 100;
const WARM_UP_CONNECTIONS = 100;
const QUIET_TIMEOUT_MS = 30_000;
const USER_PREFIX = 'storm-user-';
const PROBE_USER = 'storm-probe';
const SERVERS = ['herald', 'bare'] as const;
const ENGINES = ['postgres', 'pglite'] as const;
type ServerName = (typeof SERVERS)[number];
type EngineName = (typeof ENGINES)[number];

interface Options {
  connections: number;
  processes: number;
  connectConcurrency: number;
  servers: ServerName[];
  engines: EngineName[];
  probeMs: number;
  timeoutMs: number;
  serverUrl: string;
  cpuProfDir: string | undefined;
}

interface StormRun {
  label: string;
  connected: number;
  failed: number;
  firstError: string | null;
  /** Start of the storm to the last client resumed. */
  elapsedMs: number;
  ackMs: Float64Array;
  liveMs: Float64Array;
  /** Herald only: probe latencies during the storm, ascending. */
  healthMs: Float64Array | undefined;
  sendMs: Float64Array | undefined;
  probeFailures: string[];
  cpu: RealtimeCpu;
  serverLog: readonly string[];
}

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      ...CLIENT_OPTIONS,
      engines: { type: 'string' },
      'probe-ms': { type: 'string' },
    },
  });
  return {
    ...clientCounts(values),
    connectConcurrency: positiveInteger('--connect-concurrency', values['connect-concurrency'], 50),
    servers: listOption('--servers', values.servers, SERVERS),
    engines: listOption('--engines', values.engines, ENGINES),
    probeMs: positiveInteger('--probe-ms', values['probe-ms'], 20),
    timeoutMs: positiveInteger('--timeout', values.timeout, 180) * 1000,
    serverUrl: benchServerUrl(),
    cpuProfDir: values['cpu-prof'] ? mkdtempSync(path.join(os.tmpdir(), 'herald-bench-prof-')) : undefined,
  };
}

function progress(message: string): void {
  process.stderr.write(`${message}\n`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Calls `probe` one after the other, `everyMs` apart, until stopped: its latencies and failures. */
function startProber(everyMs: number, probe: () => Promise<void>) {
  const latencies: number[] = [];
  const failures: string[] = [];
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      const started = performance.now();
      try {
        await probe();
      } catch (error) {
        failures.push(error instanceof Error ? error.message : String(error));
      }
      latencies.push(performance.now() - started);
      await sleep(everyMs);
    }
  })();
  return async () => {
    stopped = true;
    await done;
    return { latencies: Float64Array.from(latencies).sort(), failures };
  };
}

async function healthProbe(url: string): Promise<void> {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  await response.arrayBuffer();
  if (!response.ok) throw new Error(`/healthz answered ${response.status}`);
}

async function storm(
  label: string,
  server: FanoutServer,
  groups: ClientGroup[],
  options: Options,
): Promise<StormRun> {
  // Code compiled and pools opened on the first connections count as the server's start, not the storm's.
  const first = groups[0]!;
  await first.connect(server.wsUrl, options.timeoutMs, WARM_UP_CONNECTIONS);
  await first.disconnect();
  const subjects = { serverPid: server.pid, database: server.database };
  await waitUntilQuiet(subjects, QUIET_TIMEOUT_MS);

  const { healthUrl, sendOne } = server;
  const stopHealth = healthUrl ? startProber(options.probeMs, () => healthProbe(healthUrl)) : undefined;
  const stopSends = sendOne ? startProber(options.probeMs, () => sendOne(PROBE_USER)) : undefined;
  const stopCpu = startCpuWindow(
    subjects,
    groups.map((g) => g.pid),
  );
  const stopProfile = await server.profile('storm');
  progress(`  ${label}: ${options.connections} clients connecting at once`);
  const started = performance.now();
  const replies = await Promise.all(groups.map((g) => g.connect(server.wsUrl, options.timeoutMs)));
  const elapsedMs = performance.now() - started;
  const cpu = stopCpu();
  await stopProfile();
  const health = await stopHealth?.();
  const sends = await stopSends?.();
  progress(`  ${label}: disconnecting`);
  await Promise.all(groups.map((g) => g.disconnect()));
  const sorted = (pick: (r: (typeof replies)[number]) => number[]) =>
    Float64Array.from(replies.flatMap(pick)).sort();
  return {
    label,
    connected: replies.reduce((sum, r) => sum + r.opened, 0),
    failed: replies.reduce((sum, r) => sum + r.failed, 0),
    firstError: replies.find((r) => r.firstError !== null)?.firstError ?? null,
    elapsedMs,
    ackMs: sorted((r) => r.ackMs),
    liveMs: sorted((r) => r.liveMs),
    healthMs: health?.latencies,
    sendMs: sends?.latencies,
    probeFailures: [
      ...(health?.failures ?? []).map((f) => `/healthz: ${f}`),
      ...(sends?.failures ?? []).map((f) => `Send: ${f}`),
    ],
    cpu,
    serverLog: [...server.logLines()],
  };
}

async function runServer(
  name: ServerName,
  engine: EngineName,
  options: Options,
  groups: ClientGroup[],
  cleanup: Cleanup,
): Promise<StormRun> {
  const setup = {
    pglite: engine === 'pglite',
    userPrefix: USER_PREFIX,
    batchSize: 1,
    senders: 1,
    cpuProfDir: options.cpuProfDir,
    serverUrl: options.serverUrl,
  };
  const { server, label } =
    name === 'herald'
      ? await startHerald(setup, cleanup, progress).then(({ server, engine: e }) => ({
          server,
          label: `Herald (${e})`,
        }))
      : { server: await startBareFanoutServer(), label: 'bare ws' };
  cleanup.add(`stop ${label}`, () => server.stop());
  try {
    return await storm(label, server, groups, options);
  } finally {
    await server.stop();
  }
}

const seconds = (ms: number) => (Number.isFinite(ms) ? (ms / 1000).toFixed(1) : '-');
const isPostgres = (run: StormRun) => run.label.startsWith('Herald (PostgreSQL');

function stormTable(runs: StormRun[]): string {
  const header = [
    'server',
    'resumed',
    'failed',
    'all resumed s',
    'handshakes/s',
    'ack p50',
    'ack p99',
    'resumed p50',
    'resumed p99',
  ];
  const rows = runs.map((run) => {
    const [ackP50, ackP99] = latencyCells(run.ackMs);
    const [liveP50, liveP99] = latencyCells(run.liveMs);
    return [
      run.label,
      integer(run.connected),
      integer(run.failed),
      seconds(run.elapsedMs),
      integer(run.connected / (run.elapsedMs / 1000)),
      ackP50!,
      ackP99!,
      liveP50!,
      liveP99!,
    ];
  });
  return renderTable(header, rows, 1);
}

function probeTable(runs: StormRun[]): string {
  const header = ['server', '/healthz', 'p50 ms', 'p99 ms', 'max ms', 'Sends', 'p50 ms', 'p99 ms', 'max ms'];
  const rows = runs.flatMap((run) =>
    run.healthMs && run.sendMs
      ? [
          [
            run.label,
            integer(run.healthMs.length),
            ...latencyCells(run.healthMs),
            integer(run.sendMs.length),
            ...latencyCells(run.sendMs),
          ],
        ]
      : [],
  );
  return renderTable(header, rows, 1);
}

function cpuTable(runs: StormRun[]): string {
  return renderTable(
    ['server', ...CPU_HEADER],
    runs.map((run) => [run.label, ...cpuCells(run.cpu)]),
    1,
  );
}

function targets(runs: StormRun[]): Target[] {
  const herald = runs.find(isPostgres);
  const bare = runs.find((r) => r.label === 'bare ws');
  const everyone = (run: StormRun | undefined) => run && run.connected + run.failed > 0 && run.failed === 0;
  return [
    {
      label: 'all resumed, Herald on PostgreSQL / bare ws',
      value:
        herald && bare && everyone(herald) && everyone(bare) ? herald.elapsedMs / bare.elapsedMs : undefined,
      format: (v) => `${v.toFixed(2)}x`,
      pass: (v) => v <= TARGET_RESUMED_RATIO,
      target: `<= ${TARGET_RESUMED_RATIO}x`,
    },
    {
      label: 'failed connections, Herald on PostgreSQL',
      value: herald?.failed,
      format: (v) => integer(v),
      pass: (v) => v === 0,
      target: '0',
    },
    {
      label: '/healthz p99 during the storm, Herald on PostgreSQL',
      value: herald?.healthMs && herald.healthMs.length > 0 ? percentile(herald.healthMs, 0.99) : undefined,
      format: (v) => `${v.toFixed(1)} ms`,
      pass: (v) => v < TARGET_HEALTH_P99_MS,
      target: `< ${TARGET_HEALTH_P99_MS} ms`,
    },
  ];
}

function printReport(options: Options, load: number, runs: StormRun[]): void {
  const per = Math.ceil(options.connections / options.processes);
  const out = [
    '',
    `Herald reconnect-storm benchmark — Node ${process.version}; machine busy before the run: ${percent(load)}`,
    `clients: ${options.connections} WebSockets, one user each (JWT subprotocol, resume after_seq 0), in ` +
      `${options.processes} child processes of <= ${per} from 127.0.0.2 .., ${options.connectConcurrency} ` +
      'handshakes at a time per process, all processes starting together; resumed = first unread_count',
    'ack / resumed = socket opened to connection_ack / to the end of the replay (ms); handshakes/s = resumed / ' +
      'all resumed s',
    '',
    stormTable(runs),
    '',
    `During the storm, one request after another, ${options.probeMs} ms apart (Herald):`,
    probeTable(runs),
    '',
    cpuTable(runs),
    CPU_LEGEND,
    '',
    'Targets (Herald on PostgreSQL, same clients, same run):',
    targetTable(targets(runs)),
  ];
  const problems = runs.flatMap((run) => [
    ...(run.failed > 0 ? [`${run.label}: ${run.failed} failed; first: ${run.firstError}`] : []),
    ...run.probeFailures.slice(0, 3).map((f) => `${run.label}: probe failed: ${f}`),
  ]);
  if (problems.length > 0) out.push('', 'Problems:', ...problems.map((p) => `  ${p}`));
  const logs = runs.flatMap((run) => run.serverLog.slice(-5).map((line) => `  ${run.label}: ${line}`));
  if (logs.length > 0) out.push('', 'Server warnings/errors (stderr, last 5 each):', ...logs);
  process.stdout.write(`${out.join('\n')}\n`);
}

export async function main(args: string[] = []): Promise<void> {
  const options = parseOptions(args);
  await withClientGroups({ ...options, userPrefix: USER_PREFIX }, async (groups, cleanup, load) => {
    const runs: StormRun[] = [];
    if (options.servers.includes('bare'))
      runs.push(await runServer('bare', 'postgres', options, groups, cleanup));
    for (const engine of options.servers.includes('herald') ? options.engines : [])
      runs.push(await runServer('herald', engine, options, groups, cleanup));
    printReport(options, load, runs);
    if (options.cpuProfDir)
      process.stdout.write(
        `\nCPU profile of Herald over the storm: ${options.cpuProfDir}/herald-storm.cpuprofile\n`,
      );
  });
}
