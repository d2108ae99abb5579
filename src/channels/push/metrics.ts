// Push's own metrics: attempts by platform and outcome, tokens deactivated by platform and reason, and active
// tokens by platform (read from the database when scraped).
import { Counter, Gauge, type Registry } from 'prom-client';
import { countActiveTokens, type SqlRunner } from '../../store/index.js';

export interface PushMetrics {
  attempt(platform: string, outcome: string): void;
  deactivated(platform: string, reason: string, count?: number): void;
}

export function createPushMetrics(registry: Registry, sql: SqlRunner): PushMetrics {
  const attempts = new Counter({
    name: 'herald_push_attempts_total',
    help: 'Push provider calls, by platform (apns, fcm, webpush) and outcome.',
    labelNames: ['platform', 'outcome'] as const,
    registers: [registry],
  });
  const deactivated = new Counter({
    name: 'herald_push_tokens_deactivated_total',
    help: 'Push tokens deactivated, by platform and reason (the provider error, or stale).',
    labelNames: ['platform', 'reason'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'herald_push_tokens_active',
    help: 'Active push tokens, by platform.',
    labelNames: ['platform'] as const,
    registers: [registry],
    async collect() {
      // A database that does not answer keeps the last counts: /metrics must not fail with it.
      const counts = await countActiveTokens(sql).catch(() => null);
      if (!counts) return;
      this.reset();
      for (const [platform, n] of counts) this.set({ platform }, n);
    },
  });
  return {
    attempt: (platform, outcome) => attempts.inc({ platform, outcome }),
    deactivated: (platform, reason, count = 1) => deactivated.inc({ platform, reason }, count),
  };
}

/** A provider's error code as a metric label: `BadDeviceToken` -> `bad_device_token`, `UNREGISTERED` -> `unregistered`. */
export function reasonLabel(code: string | undefined): string {
  if (!code) return 'gone';
  return code
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_');
}
