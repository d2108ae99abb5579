// The pg-boss worker process (see dispatch-pgboss.ts): `workers` work() loops on the queue, each POSTing
// its batch of jobs to the receiver with the same signed request as the other phases.
import PgBoss from 'pg-boss';
import {
  isWorkerCommand,
  type ReadyMessage,
  type StartWorkersMessage,
  type StoppedMessage,
} from './dispatch-pgboss.js';
import { createWebhookPoster, isWebhookJob, type WebhookPoster } from './dispatch-webhook.js';

const STOP_TIMEOUT_MS = 10_000;

let running: { boss: PgBoss; poster: WebhookPoster } | undefined;
let failures = 0;
let firstFailure: string | null = null;

function send(message: object): void {
  if (process.connected) process.send?.(message);
}

function fail(error: unknown): void {
  failures++;
  firstFailure ??= error instanceof Error ? error.message : String(error);
}

async function start(command: StartWorkersMessage): Promise<void> {
  const boss = new PgBoss({
    connectionString: command.databaseUrl,
    schema: command.schema,
    max: command.poolMax,
    supervise: false,
    schedule: false,
    migrate: false,
  });
  boss.on('error', fail);
  await boss.start();
  const poster = createWebhookPoster(command.receiverUrl, command.secret, command.connections);
  running = { boss, poster };
  const options = { batchSize: command.batchSize, pollingIntervalSeconds: command.pollingIntervalSeconds };
  for (let i = 0; i < command.workers; i++) {
    let workerId: string | undefined;
    workerId = await boss.work<unknown>(command.queue, options, async (jobs) => {
      try {
        await Promise.all(
          jobs.map((job) => {
            if (!isWebhookJob(job.data)) throw new Error(`job ${job.id} has no webhook job data`);
            return poster.post({ ...job.data, deliveryId: job.id });
          }),
        );
      } catch (error) {
        fail(error);
        throw error; // pg-boss fails (and retries) the batch
      }
      // A full batch means more may be waiting: fetch again now instead of after the polling interval.
      if (jobs.length === command.batchSize && workerId) boss.notifyWorker(workerId);
    });
  }
  const ready: ReadyMessage = { kind: 'ready' };
  send(ready);
}

async function stop(): Promise<void> {
  if (running) {
    await running.boss.stop({ graceful: true, wait: true, timeout: STOP_TIMEOUT_MS }).catch(fail);
    await running.poster.close().catch(fail);
  }
  const stopped: StoppedMessage = { kind: 'stopped', failures, firstFailure };
  // Leave once the answer is out; the parent's stop() then finds this process gone.
  if (process.connected) process.send?.(stopped, () => process.exit(0));
  else process.exit(0);
}

process.on('message', (message: unknown) => {
  if (!isWorkerCommand(message)) return;
  if (message.kind === 'start') {
    start(message).catch((error: unknown) => {
      process.stderr.write(`pg-boss worker failed to start: ${String(error)}\n`);
      process.exit(1);
    });
  } else {
    void stop();
  }
});

// The parent gone (even killed) means the benchmark is over. Ctrl-C reaches this process too, but the
// parent decides when it ends, so the phase in progress is not cut from under it.
process.on('disconnect', () => process.exit(0));
process.on('SIGINT', () => {});
