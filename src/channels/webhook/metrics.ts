// Webhooks' own metric: endpoints disabled, by who disabled them — Herald (a run of failures longer than
// HERALD_WEBHOOK_DISABLE_AFTER_HOURS, or 410 Gone: both leave a disabled_reason) or an admin (no reason). It
// is read from the shared database, so every instance reports the same figure whichever one disabled the
// endpoint; one query per scrape at most, cached like the queue figures.
import { Gauge, type Registry } from 'prom-client';
import { cachedRead } from '../../observability/metrics.js';
import type { SqlRunner } from '../../store/index.js';

/** A scrape within this long of the last reuses its figures. */
const ENDPOINTS_CACHE_MS = 5_000;

type DisabledBy = 'herald' | 'admin';

export function createWebhookMetrics(registry: Registry, sql: SqlRunner): void {
  const disabledCounts = cachedRead(() => readDisabled(sql), ENDPOINTS_CACHE_MS);
  new Gauge({
    name: 'herald_webhook_endpoints_disabled',
    help: 'Webhook endpoints disabled, by who disabled them (herald: failing or gone; admin), in the shared database.',
    labelNames: ['disabled_by'] as const,
    registers: [registry],
    async collect() {
      // A database that does not answer keeps the last counts: /metrics must not fail with it.
      const counts = await disabledCounts().catch(() => null);
      if (!counts) return;
      for (const [disabledBy, n] of Object.entries(counts)) this.set({ disabled_by: disabledBy }, n);
    },
  });
}

async function readDisabled(sql: SqlRunner): Promise<Record<DisabledBy, number>> {
  // Herald writes a disabled_reason when it disables an endpoint; an admin's UpdateWebhookEndpoint does not,
  // and enabling one clears it.
  const [row] = await sql.query<{ herald: number; admin: number }>(
    `select count(*) filter (where disabled_reason is not null)::int as herald,
            count(*) filter (where disabled_reason is null)::int as admin
     from webhook_endpoints where not enabled`,
    [],
  );
  return { herald: row?.herald ?? 0, admin: row?.admin ?? 0 };
}
