// The signed POST the baselines make: the body Herald's webhook adapter would send for the same
// notification (webhookPayload), the same headers, the same Standard Webhooks signature (signWebhook), made
// with undici as Herald does; only the database work around it is left out.
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'undici';
import { webhookPayload } from '../../src/channels/webhook/adapter.js';
import { signWebhook } from '../../src/channels/webhook/signature.js';
import type { DeliveryTask } from '../../src/delivery/provider.js';
import { isObject } from './dispatch-child.js';
import { BODY, NORMAL_PRIORITY, NOTIFICATION_TYPE, TITLE, type Workload } from './workload.js';

// Herald's default HERALD_WEBHOOK_TIMEOUT_MS.
const WEBHOOK_TIMEOUT_MS = 15_000;

/** What a baseline keeps per delivery (pg-boss stores it as the job's data); the rest is constant. */
export interface WebhookJob {
  deliveryId: string;
  notificationId: string;
  userId: string;
  orderId: string;
  n: number;
  /** ISO time the notification was handed over. */
  createdAt: string;
}

export function isWebhookJob(value: unknown): value is WebhookJob {
  return (
    isObject(value) &&
    typeof value.deliveryId === 'string' &&
    typeof value.notificationId === 'string' &&
    typeof value.userId === 'string' &&
    typeof value.orderId === 'string' &&
    typeof value.n === 'number' &&
    typeof value.createdAt === 'string'
  );
}

/** `count` jobs from the same workload Herald is sent, with fresh ids standing in for Herald's. */
export function webhookJobs(workload: Workload, count: number, createdAt: Date): WebhookJob[] {
  return workload.batch(count).map((spec) => ({
    deliveryId: randomUUID(),
    notificationId: randomUUID(),
    userId: spec.userId,
    orderId: spec.data.orderId,
    n: spec.data.n,
    createdAt: createdAt.toISOString(),
  }));
}

function deliveryTask(job: WebhookJob, url: string, secret: string): DeliveryTask {
  const createdAt = new Date(job.createdAt);
  return {
    deliveryId: job.deliveryId,
    notificationId: job.notificationId,
    userId: job.userId,
    seq: job.n + 1,
    type: NOTIFICATION_TYPE,
    priority: NORMAL_PRIORITY,
    data: { orderId: job.orderId, n: job.n },
    createdAt,
    sendAt: createdAt,
    expiresAt: null,
    destination: { channel: 'webhook', endpointId: 'bench', url, secrets: [secret] },
    content: {
      channel: 'webhook',
      type: NOTIFICATION_TYPE,
      data: {
        notification_id: job.notificationId,
        user_id: job.userId,
        seq: job.n + 1,
        type: NOTIFICATION_TYPE,
        priority: NORMAL_PRIORITY,
        title: TITLE,
        body: BODY,
        data: { orderId: job.orderId, n: job.n },
        created_at: createdAt.toISOString(),
        send_at: createdAt.toISOString(),
      },
    },
  };
}

export interface WebhookPoster {
  /** One signed POST; throws unless the receiver answered 2xx. */
  post(job: WebhookJob): Promise<void>;
  close(): Promise<void>;
}

/** `connections` kept to the receiver, as Herald's adapter keeps HERALD_DISPATCH_CONCURRENCY per origin. */
export function createWebhookPoster(url: string, secret: string, connections: number): WebhookPoster {
  const agent = new Agent({
    connections,
    headersTimeout: WEBHOOK_TIMEOUT_MS,
    bodyTimeout: WEBHOOK_TIMEOUT_MS,
  });
  const target = new URL(url);
  return {
    async post(job) {
      const at = new Date();
      const body = webhookPayload(deliveryTask(job, url, secret), at);
      const timestamp = Math.floor(at.getTime() / 1000);
      const res = await request(target, {
        method: 'POST',
        dispatcher: agent,
        signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Herald-Webhooks/1',
          'webhook-id': job.deliveryId,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signWebhook([secret], job.deliveryId, timestamp, body),
        },
        body,
      });
      await res.body.dump();
      if (res.statusCode < 200 || res.statusCode >= 300) {
        throw new Error(`receiver answered HTTP ${res.statusCode}`);
      }
    },
    close: () => agent.close(),
  };
}
