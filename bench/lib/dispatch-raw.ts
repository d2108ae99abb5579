// Baseline (a), the limit: the same signed POSTs made straight from this process with undici, at the same
// concurrency, against the same receiver; no database, no queue. Send time = when the POST started.
import { generateWebhookSecret } from '../../src/channels/webhook/signature.js';
import { epochNow } from './dispatch-child.js';
import {
  type DispatchPhase,
  type DispatchSetup,
  finishPhase,
  MAX_FAILURES,
  SendLog,
  startCpuWindow,
} from './dispatch-measure.js';
import { createWebhookPoster, webhookJobs } from './dispatch-webhook.js';
import { Workload } from './workload.js';

export async function rawUndiciPhase(setup: DispatchSetup, label: string): Promise<DispatchPhase> {
  const secret = generateWebhookSecret();
  const poster = createWebhookPoster(setup.receiver.url, secret, setup.concurrency);
  try {
    const jobs = webhookJobs(new Workload(setup.users), setup.notifications, new Date());
    const log = new SendLog();
    setup.receiver.expect(secret, setup.notifications, setup.verifyEvery);
    const endCpu = startCpuWindow({ database: setup.database.name }, setup.receiver.pid);
    const deadline = performance.now() + setup.timeoutMs;
    let next = 0;
    let failures = 0;
    async function worker(): Promise<void> {
      while (next < jobs.length && performance.now() < deadline && failures < MAX_FAILURES) {
        const job = jobs[next++]!;
        const startedAt = epochNow();
        try {
          await poster.post(job);
          log.sent([job.deliveryId], startedAt, epochNow());
        } catch (error) {
          failures++;
          log.failed(error);
        }
      }
    }
    await Promise.all(Array.from({ length: setup.concurrency }, worker));
    return await finishPhase(setup, log, label, deadline, endCpu);
  } finally {
    await poster.close();
  }
}
