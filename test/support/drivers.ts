// Every channel's driver as the server composes them, for tests that run the delivery runner themselves:
// fresh metrics registries, links signed with a secret of the test's own, no per-type e-mail sender.
import { randomBytes } from 'node:crypto';
import { Registry } from 'prom-client';
import { createChannelDrivers } from '../../src/channels/drivers.js';
import { createEmailMetrics } from '../../src/channels/email/metrics.js';
import { createPushMetrics } from '../../src/channels/push/metrics.js';
import { createSmsMetrics } from '../../src/channels/sms/metrics.js';
import type { ChannelDrivers } from '../../src/delivery/channel.js';
import type { ConfigCache } from '../../src/delivery/config-cache.js';
import { createMessageLinks } from '../../src/server/message-links.js';
import type { SqlRunner } from '../../src/store/index.js';

export function testChannelDrivers(sql: SqlRunner, config: ConfigCache): ChannelDrivers {
  return createChannelDrivers({
    sql,
    disableAfterMs: 60_000,
    pushMetrics: createPushMetrics(new Registry(), sql),
    emailMetrics: createEmailMetrics(new Registry()),
    links: createMessageLinks({
      secret: randomBytes(32),
      base: () => 'http://localhost',
      mailto: null,
      now: () => new Date(),
    }),
    emailSender: () => null,
    smsMetrics: createSmsMetrics(new Registry()),
    smsMaxSegments: () => 1,
    refreshConfig: () => config.refresh(),
  });
}
