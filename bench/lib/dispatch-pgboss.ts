// Baseline (b): pg-boss 10 on the same PostgreSQL database (its own schema), doing what Herald's dispatcher
// does for these deliveries: jobs are inserted from this process in batches (as Herald is sent SendBatch),
// and a worker child (dispatch-pgboss-worker.ts, its own event loop, as Herald's dispatcher has) makes the
// same signed POST per job with undici.
//
// Concurrency: `workers` work() loops with `batchSize` jobs each, workers x batchSize = the concurrency;
// a loop POSTs its batch at once, pg-boss completes the batch when all answered. pg-boss 10 sleeps
// pollingIntervalSeconds between fetches even when the queue is full, so after a full batch the handler
// calls notifyWorker(), which makes the loop fetch again at once, as Herald's dispatcher claims again
// after a full claim. An empty queue is polled every pollingIntervalSeconds (pg-boss has no wake-up).
import PgBoss from 'pg-boss';
import { generateWebhookSecret } from '../../src/channels/webhook/signature.js';
import { type BenchChild, epochNow, forkBenchChild, isObject } from './dispatch-child.js';
import {
  type DispatchPhase,
  type DispatchSetup,
  finishPhase,
  handOverInBatches,
  SendLog,
  startCpuWindow,
} from './dispatch-measure.js';
import { webhookJobs } from './dispatch-webhook.js';
import { Workload } from './workload.js';

export const PGBOSS_SCHEMA = 'pgboss_bench';
const QUEUE = 'webhook-delivery';
export const POLLING_INTERVAL_SECONDS = 0.5;
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;

export interface StartWorkersMessage {
  kind: 'start';
  databaseUrl: string;
  schema: string;
  queue: string;
  receiverUrl: string;
  secret: string;
  workers: number;
  batchSize: number;
  /** Connections to the receiver (= the concurrency). */
  connections: number;
  /** pg-boss's PostgreSQL pool. */
  poolMax: number;
  pollingIntervalSeconds: number;
}

export interface StopWorkersMessage {
  kind: 'stop';
}

export interface ReadyMessage {
  kind: 'ready';
}

export interface StoppedMessage {
  kind: 'stopped';
  failures: number;
  firstFailure: string | null;
}

export type WorkerCommand = StartWorkersMessage | StopWorkersMessage;

export function isWorkerCommand(value: unknown): value is WorkerCommand {
  if (!isObject(value)) return false;
  if (value.kind === 'stop') return true;
  return (
    value.kind === 'start' &&
    ['databaseUrl', 'schema', 'queue', 'receiverUrl', 'secret'].every((k) => typeof value[k] === 'string') &&
    ['workers', 'batchSize', 'connections', 'poolMax'].every((k) => Number.isSafeInteger(value[k])) &&
    typeof value.pollingIntervalSeconds === 'number'
  );
}

function isReady(value: unknown): value is ReadyMessage {
  return isObject(value) && value.kind === 'ready';
}

function isStopped(value: unknown): value is StoppedMessage {
  return (
    isObject(value) &&
    value.kind === 'stopped' &&
    Number.isSafeInteger(value.failures) &&
    (value.firstFailure === null || typeof value.firstFailure === 'string')
  );
}

export interface PgBossLayout {
  workers: number;
  batchSize: number;
  /** The same pool size Herald gets (HERALD_DB_POOL_MAX). */
  poolMax: number;
}

/** `batchSize` jobs per work() loop and as many loops as fit in the concurrency. */
export function pgBossLayout(concurrency: number, batchSize: number, poolMax: number): PgBossLayout {
  const size = Math.min(batchSize, concurrency);
  return { workers: Math.max(1, Math.floor(concurrency / size)), batchSize: size, poolMax };
}

/** Stops the worker child; what went wrong in it comes back as notes, never as an error. */
async function stopWorkers(worker: BenchChild): Promise<string[]> {
  const message: StopWorkersMessage = { kind: 'stop' };
  worker.send(message);
  try {
    const stopped = await worker.next(isStopped, STOP_TIMEOUT_MS, 'stopped message');
    return stopped.failures > 0
      ? [`${stopped.failures} failed POSTs in the worker; first: ${stopped.firstFailure}`]
      : [];
  } catch (error) {
    return [`the worker did not stop cleanly: ${error instanceof Error ? error.message : String(error)}`];
  } finally {
    await worker.stop();
  }
}

export async function pgBossPhase(
  setup: DispatchSetup,
  layout: PgBossLayout,
  label: string,
): Promise<DispatchPhase> {
  const log = new SendLog();
  const boss = new PgBoss({
    connectionString: setup.database.url,
    schema: PGBOSS_SCHEMA,
    max: setup.senders,
    // Maintenance and cron would only add noise to a run this short.
    supervise: false,
    schedule: false,
  });
  boss.on('error', (error) => log.failed(error));
  await boss.start();
  try {
    await boss.createQueue(QUEUE);
    const worker = forkBenchChild(new URL('./dispatch-pgboss-worker.ts', import.meta.url), 'pg-boss worker');
    const notes: string[] = [];
    let phase: DispatchPhase;
    try {
      const secret = generateWebhookSecret();
      const start: StartWorkersMessage = {
        kind: 'start',
        databaseUrl: setup.database.url,
        schema: PGBOSS_SCHEMA,
        queue: QUEUE,
        receiverUrl: setup.receiver.url,
        secret,
        workers: layout.workers,
        batchSize: layout.batchSize,
        connections: setup.concurrency,
        poolMax: layout.poolMax,
        pollingIntervalSeconds: POLLING_INTERVAL_SECONDS,
      };
      worker.send(start);
      await worker.next(isReady, START_TIMEOUT_MS, 'ready message');
      const workload = new Workload(setup.users);
      setup.receiver.expect(secret, setup.notifications, setup.verifyEvery);
      const endCpu = startCpuWindow(
        { serverPid: worker.pid, database: setup.database.name },
        setup.receiver.pid,
      );
      const deadline = performance.now() + setup.timeoutMs;
      await handOverInBatches(setup, log, deadline, async (count) => {
        const jobs = webhookJobs(workload, count, new Date());
        const startedAt = epochNow();
        await boss.insert(jobs.map((job) => ({ id: job.deliveryId, name: QUEUE, data: job })));
        log.sent(
          jobs.map((job) => job.deliveryId),
          startedAt,
          epochNow(),
        );
      });
      phase = await finishPhase(setup, log, label, deadline, endCpu);
    } finally {
      notes.push(...(await stopWorkers(worker)));
    }
    phase.notes.push(...notes);
    return phase;
  } finally {
    await boss.stop({ graceful: false, wait: true, timeout: STOP_TIMEOUT_MS });
  }
}
