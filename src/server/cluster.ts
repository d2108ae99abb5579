// `HERALD_WORKERS=N`: N server processes sharing one port through node:cluster, so one machine's cores all
// serve RPCs (a Node process runs its JavaScript on one core). The primary applies migrations and creates
// the bootstrap key once, then forks the workers, forwards SIGTERM/SIGINT (and SIGHUP) to them, waits for them to drain,
// and replaces a worker that dies unexpectedly (with a pause, so a crash loop does not spin).
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import type { Config } from '../config.js';
import type { Logger } from '../observability/logger.js';
import { openDatabase } from '../store/index.js';
import { bootstrapAdminKey } from './bootstrap.js';

const RESPAWN_DELAY_MS = 1_000;

export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

/** A worker whose server has closed lets go of its IPC channel, the last thing keeping it alive. */
export function leaveCluster(): void {
  if (cluster.isWorker) cluster.worker?.disconnect();
}

/** Runs the primary: migrates, hands the bootstrap key (if it created one) to `announce`, forks the workers, and resolves once every worker has exited after a signal. */
export async function runClusterPrimary(
  config: Config,
  logger: Logger,
  announce: (bootstrapKey: string | undefined) => void,
): Promise<void> {
  // Each worker reloads its own providers; installed first, since Node's default for SIGHUP is to exit.
  process.on('SIGHUP', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP');
  });
  const database = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, poolMax: 1 });
  try {
    if (config.migrateOnStart) await database.migrate();
    announce(config.bootstrapAdminKey ? await bootstrapAdminKey(database.db) : undefined);
  } finally {
    await database.close();
  }

  let stopping = false;
  // Workers must not migrate or bootstrap again; everything else comes from the same environment.
  // Without HERALD_LINK_SECRET and without a providers file (only the outbox sends), the workers still share
  // one link secret, this run's, so a link signed by one is valid on all. With a providers file each worker
  // checks for itself that a real e-mail or SMS provider has its secret.
  const workerEnv = {
    HERALD_MIGRATE_ON_START: 'false',
    HERALD_BOOTSTRAP_ADMIN_KEY: 'false',
    ...(config.linkSecret || config.delivery.providersFile
      ? {}
      : { HERALD_LINK_SECRET: randomBytes(32).toString('base64url') }),
  };
  const fork = (): Worker => cluster.fork(workerEnv);
  for (let i = 0; i < config.workers; i++) fork();
  logger.info({ workers: config.workers }, 'cluster started');

  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    logger.error({ pid: worker.process.pid, code, signal }, 'worker died; starting a replacement');
    setTimeout(() => {
      if (!stopping) fork();
    }, RESPAWN_DELAY_MS).unref();
  });

  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'signal received; stopping workers');
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
      if (workers.length === 0) resolve();
      let left = workers.length;
      for (const worker of workers) {
        worker.once('exit', (code) => {
          if (code !== 0) process.exitCode = 1;
          if (--left === 0) resolve();
        });
        worker.process.kill(signal);
      }
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  logger.info('cluster stopped');
}
