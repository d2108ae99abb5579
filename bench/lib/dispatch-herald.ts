// The Herald phase: a Herald child on the bench database with its dispatcher on, one webhook endpoint
// (the receiver), then the notifications sent with SendBatch over gRPC, one webhook delivery each. Send time
// = when the SendBatch call carrying the notification started (the baselines use the start of their call
// too); webhook-id = the delivery id SendBatch returns per notification.
import { create } from '@bufbuild/protobuf';
import {
  AdminService,
  Channel,
  createClient,
  createHeraldTransport,
  DeliveryStatus,
  NotificationService,
  type SendBatchResponse,
  SendRequestSchema,
} from '../../clients/node/index.js';
import type { Cleanup } from './cleanup.js';
import { epochNow } from './dispatch-child.js';
import {
  type DispatchPhase,
  type DispatchSetup,
  finishPhase,
  handOverInBatches,
  SendLog,
  startCpuWindow,
} from './dispatch-measure.js';
import { startHeraldChild } from './herald-child.js';
import { NOTIFICATION_TYPE, Workload } from './workload.js';

const RPC_TIMEOUT_MS = 30_000;
const RECEIVER_NETWORK = '127.0.0.1/32';

/** Herald settings for the child, which inherits this process's environment; returns the restore. */
function heraldEnvironment(concurrency: number): () => void {
  const saved = {
    HERALD_DISPATCHER: process.env.HERALD_DISPATCHER,
    HERALD_DISPATCH_CONCURRENCY: process.env.HERALD_DISPATCH_CONCURRENCY,
    HERALD_WEBHOOK_ALLOW_NETWORKS: process.env.HERALD_WEBHOOK_ALLOW_NETWORKS,
  };
  const allowed = saved.HERALD_WEBHOOK_ALLOW_NETWORKS;
  process.env.HERALD_DISPATCHER = 'true';
  process.env.HERALD_DISPATCH_CONCURRENCY = String(concurrency);
  // The SSRF guard refuses loopback unless told otherwise; the receiver listens there.
  process.env.HERALD_WEBHOOK_ALLOW_NETWORKS = allowed ? `${allowed},${RECEIVER_NETWORK}` : RECEIVER_NETWORK;
  return () => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}

/** The webhook delivery id of each notification; throws unless each has exactly one, queued. */
function webhookDeliveryIds(response: SendBatchResponse, expected: number): string[] {
  if (response.results.length !== expected) {
    throw new Error(`expected ${expected} results, got ${response.results.length}`);
  }
  return response.results.map((result) => {
    const [delivery, ...others] = result.deliveries;
    if (!delivery || others.length > 0 || delivery.channel !== Channel.WEBHOOK) {
      throw new Error(`expected one webhook delivery, got ${result.deliveries.length}`);
    }
    if (delivery.status !== DeliveryStatus.QUEUED) {
      throw new Error(`webhook delivery not queued: ${delivery.reason || delivery.status}`);
    }
    return delivery.deliveryId;
  });
}

export interface HeraldPhaseResult {
  phase: DispatchPhase;
  serverLog: readonly string[];
}

/** The child is stopped when the phase ends and, if interrupted, by `cleanup` (it has no IPC to notice). */
export async function heraldPhase(
  setup: DispatchSetup,
  label: string,
  cleanup: Cleanup,
): Promise<HeraldPhaseResult> {
  const restore = heraldEnvironment(setup.concurrency);
  const server = await startHeraldChild({
    databaseUrl: setup.database.url,
    dataDir: undefined,
    cpuProfDir: undefined,
  }).finally(restore);
  cleanup.add('stop Herald', () => server.stop());
  try {
    const options = { baseUrl: server.grpcUrl, apiKey: server.apiKey, defaultTimeoutMs: RPC_TIMEOUT_MS };
    const { secret } = await createClient(AdminService, createHeraldTransport(options)).createWebhookEndpoint(
      {
        url: setup.receiver.url,
        description: 'dispatch benchmark receiver',
        eventTypes: [NOTIFICATION_TYPE],
      },
    );
    const herald = createClient(NotificationService, createHeraldTransport(options));
    const workload = new Workload(setup.users);
    const log = new SendLog();
    setup.receiver.expect(secret, setup.notifications, setup.verifyEvery);
    const endCpu = startCpuWindow(
      { serverPid: server.pid, database: setup.database.name },
      setup.receiver.pid,
    );
    const deadline = performance.now() + setup.timeoutMs;
    await handOverInBatches(setup, log, deadline, async (count) => {
      const requests = workload
        .batch(count)
        .map((spec) => create(SendRequestSchema, { ...spec, channels: [Channel.WEBHOOK] }));
      const startedAt = epochNow();
      const response = await herald.sendBatch({ requests });
      log.sent(webhookDeliveryIds(response, count), startedAt, epochNow());
    });
    const phase = await finishPhase(setup, log, label, deadline, endCpu);
    return { phase, serverLog: [...server.logLines()] };
  } finally {
    await server.stop();
  }
}
