// What the WebSocket benchmarks (fanout, storm) set up the same way: the client children, each holding a
// slice of the users from its own source address, and Herald on a fresh PostgreSQL database or on PGlite.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createBenchDatabase } from './bench-database.js';
import { Cleanup } from './cleanup.js';
import { backgroundLoad } from './cpu.js';
import { positiveInteger } from './options.js';
import { type ClientGroup, startClientGroup } from './realtime-fanout-clients.js';
import { type FanoutServer, startHeraldFanoutServer } from './realtime-fanout-servers.js';
import { ensureJwtSecret } from './realtime-token.js';

/** One process may hold about 19,900 sockets here (ulimit -n 20000); stay far below. */
export const MAX_SOCKETS_PER_PROCESS = 2_500;

/** The options every WebSocket benchmark's clients take (for node:util parseArgs). */
export const CLIENT_OPTIONS = {
  connections: { type: 'string' },
  processes: { type: 'string' },
  'connect-concurrency': { type: 'string' },
  servers: { type: 'string' },
  timeout: { type: 'string' },
  'cpu-prof': { type: 'boolean', default: false },
} as const;

/** --connections and --processes: at least one process per MAX_SOCKETS_PER_PROCESS, one source address each. */
export function clientCounts(values: { connections?: string | undefined; processes?: string | undefined }): {
  connections: number;
  processes: number;
} {
  const connections = positiveInteger('--connections', values.connections, 10_000);
  const processes = Math.max(
    positiveInteger('--processes', values.processes, 4),
    Math.ceil(connections / MAX_SOCKETS_PER_PROCESS),
  );
  if (processes > 250)
    throw new Error('--processes: at most 250 source addresses (127.0.0.2 .. 127.0.0.251)');
  return { connections, processes: Math.min(processes, connections) };
}

/**
 * Runs `body` with the client children started (after measuring how busy the machine was), and stops
 * everything `cleanup` holds afterwards, Ctrl-C included.
 */
export async function withClientGroups(
  options: Omit<ClientGroupsOptions, 'jwtSecret'>,
  body: (groups: ClientGroup[], cleanup: Cleanup, load: number) => Promise<void>,
): Promise<void> {
  const cleanup = new Cleanup();
  const detach = cleanup.onInterrupt();
  try {
    const load = await backgroundLoad(1_000);
    const groups = startClientGroups({ ...options, jwtSecret: ensureJwtSecret() }, cleanup);
    await body(groups, cleanup, load);
  } finally {
    await cleanup.runAll();
    detach();
  }
}

export interface ClientGroupsOptions {
  connections: number;
  processes: number;
  connectConcurrency: number;
  userPrefix: string;
  jwtSecret: string;
}

/** Client children, child k holding users [k * per, ...) from 127.0.0.(k + 2). */
export function startClientGroups(options: ClientGroupsOptions, cleanup: Cleanup): ClientGroup[] {
  const per = Math.ceil(options.connections / options.processes);
  const groups: ClientGroup[] = [];
  for (let k = 0; k * per < options.connections; k++) {
    const group = startClientGroup({
      userPrefix: options.userPrefix,
      firstUser: k * per,
      count: Math.min(per, options.connections - k * per),
      localAddress: `127.0.0.${k + 2}`,
      jwtSecret: options.jwtSecret,
      concurrency: options.connectConcurrency,
    });
    cleanup.add(`stop ws clients ${group.localAddress}`, () => group.stop());
    groups.push(group);
  }
  return groups;
}

export interface HeraldSetup {
  pglite: boolean;
  userPrefix: string;
  batchSize: number;
  senders: number;
  cpuProfDir: string | undefined;
  /** The PostgreSQL server the bench database is made on. */
  serverUrl: string;
}

/** Herald on a database of its own (dropped, or its PGlite directory removed, by `cleanup`). */
export async function startHerald(
  setup: HeraldSetup,
  cleanup: Cleanup,
  progress: (message: string) => void,
): Promise<{ server: FanoutServer; engine: string }> {
  const common = {
    userPrefix: setup.userPrefix,
    batchSize: setup.batchSize,
    senders: setup.senders,
    cpuProfDir: setup.cpuProfDir,
  };
  if (setup.pglite) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'herald-bench-realtime-'));
    cleanup.add(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
    const server = await startHeraldFanoutServer({
      ...common,
      databaseUrl: undefined,
      dataDir: dir,
      databaseName: undefined,
    });
    return { server, engine: 'PGlite (embedded)' };
  }
  const database = await createBenchDatabase(setup.serverUrl);
  cleanup.add(`drop database ${database.name}`, () => database.drop());
  progress(`PostgreSQL: database ${database.name}`);
  const server = await startHeraldFanoutServer({
    ...common,
    databaseUrl: database.url,
    dataDir: undefined,
    databaseName: database.name,
  });
  return { server, engine: `PostgreSQL ${await database.serverVersion()}` };
}
