// Every channel's driver, for the composition root to hand to the delivery engine.
import type { ChannelDrivers } from '../delivery/channel.js';
import type { SqlRunner } from '../store/index.js';
import { createEmailDriver, type EmailDriverDeps } from './email/driver.js';
import { createPushDriver } from './push/driver.js';
import type { PushMetrics } from './push/metrics.js';
import { createSmsDriver, type SmsDriverDeps } from './sms/driver.js';
import { createWebhookDriver, type WebhookDriverDeps } from './webhook/driver.js';

export function createChannelDrivers(
  deps: { sql: SqlRunner; pushMetrics: PushMetrics } & WebhookDriverDeps &
    Pick<EmailDriverDeps, 'links'> & {
      emailMetrics: EmailDriverDeps['metrics'];
      emailSender: EmailDriverDeps['sender'];
      smsMetrics: SmsDriverDeps['metrics'];
      smsMaxSegments: SmsDriverDeps['maxSegments'];
    },
): ChannelDrivers {
  return {
    push: createPushDriver({ sql: deps.sql, metrics: deps.pushMetrics }),
    email: createEmailDriver({
      sql: deps.sql,
      links: deps.links,
      sender: deps.emailSender,
      metrics: deps.emailMetrics,
    }),
    sms: createSmsDriver({ sql: deps.sql, maxSegments: deps.smsMaxSegments, metrics: deps.smsMetrics }),
    webhook: createWebhookDriver(deps),
  };
}
