// The Herald side of the workload: Send and SendBatch over gRPC with the typed Node client.
import { createHeraldClient, type HeraldClient } from '../../clients/node/index.js';
import type { Call } from './load.js';
import type { NotificationSpec, Workload } from './workload.js';

// Far above any healthy latency; a call that hangs fails the phase instead of stalling it.
const CALL_TIMEOUT_MS = 30_000;

/**
 * One client per worker: each gRPC transport opens its own HTTP/2 connection, so the workers are
 * `count` independent gRPC clients, as a fleet of sending services would be.
 */
export function createClients(count: number, baseUrl: string, apiKey: string): HeraldClient[] {
  return Array.from({ length: count }, () =>
    createHeraldClient({ baseUrl, apiKey, defaultTimeoutMs: CALL_TIMEOUT_MS }),
  );
}

function toRequest(spec: NotificationSpec) {
  // No channels: Herald's default is IN_APP only, so each notification stores exactly one delivery.
  return { userId: spec.userId, type: spec.type, title: spec.title, body: spec.body, data: spec.data };
}

export function heraldSend(clients: HeraldClient[], workload: Workload): Call {
  return async (worker) => {
    const response = await clients[worker]!.send(toRequest(workload.one()));
    if (response.deliveries.length !== 1) {
      throw new Error(`expected 1 delivery, got ${response.deliveries.length}`);
    }
    return 1;
  };
}

export function heraldSendBatch(clients: HeraldClient[], workload: Workload, batchSize: number): Call {
  return async (worker) => {
    const requests = workload.batch(batchSize).map(toRequest);
    const response = await clients[worker]!.sendBatch({ requests });
    if (response.results.length !== batchSize) {
      throw new Error(`expected ${batchSize} results, got ${response.results.length}`);
    }
    return batchSize;
  };
}
