// The delivery engine's metrics: attempts by outcome, attempt latency per provider, how long a first step
// waited for its first attempt, each provider's circuit state, and the queue — deliveries queued per channel
// and the age of the oldest one that is due. The queue figures come from one indexed query per scrape at
// most, cached for QUEUE_CACHE_MS, and read the shared database, so every instance reports the same queue.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ChannelName } from '../core/channels.js';
import { cachedRead } from '../observability/metrics.js';
import type { SqlRunner } from '../store/index.js';
import type { AttemptReport } from './attempt.js';
import type { CircuitBreakers, CircuitState } from './circuit-breaker.js';
import type { ProviderSet } from './provider.js';
import { providerCircuitStates } from './provider-health.js';

/** A scrape within this long of the last reuses its queue figures. */
export const QUEUE_CACHE_MS = 5_000;
const CIRCUIT_VALUES: Record<CircuitState, number> = { closed: 0, half_open: 1, open: 2 };

export interface EngineMetricsDeps {
  registry: Registry;
  sql: SqlRunner;
  circuits: CircuitBreakers;
  providers: () => ProviderSet;
  channels: readonly ChannelName[];
}

export function createEngineMetrics(deps: EngineMetricsDeps): {
  attempt(report: AttemptReport): void;
  misfire(channel: ChannelName): void;
} {
  const { registry } = deps;
  const attempts = new Counter({
    name: 'herald_delivery_attempts_total',
    help: 'Provider calls made by the dispatcher, by channel, provider and outcome.',
    labelNames: ['channel', 'provider', 'outcome'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'herald_delivery_attempt_duration_seconds',
    help: 'How long one provider call took, by channel and provider.',
    labelNames: ['channel', 'provider'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const firstAttempt = new Histogram({
    name: 'herald_delivery_first_attempt_delay_seconds',
    help: 'From a notification being due (send_at, or stored) to its first attempt on a channel, deferrals included.',
    labelNames: ['channel'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 3600],
    registers: [registry],
  });
  const misfires = new Counter({
    name: 'herald_delivery_deferral_misfires_total',
    help: 'Deferrals that were not in the future of their claim and were backed off (a bug: see the error log).',
    labelNames: ['channel'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'herald_circuit_state',
    help: "Each provider's circuit in this instance: 0 closed, 1 half-open, 2 open (the worst of its circuits, e.g. per webhook host or APNs environment).",
    labelNames: ['channel', 'provider'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const { channel, provider, state } of providerCircuitStates(
        deps.circuits,
        deps.providers(),
        performance.now(),
      )) {
        this.set({ channel, provider }, CIRCUIT_VALUES[state]);
      }
    },
  });
  const queue = cachedRead(() => readQueue(deps.sql), QUEUE_CACHE_MS);
  new Gauge({
    name: 'herald_delivery_queue_depth',
    help: 'Deliveries queued per channel (due now or later), in the shared database.',
    labelNames: ['channel'] as const,
    registers: [registry],
    async collect() {
      const figures = await queue();
      for (const channel of deps.channels) this.set({ channel }, figures.get(channel)?.queued ?? 0);
    },
  });
  new Gauge({
    name: 'herald_delivery_queue_oldest_due_seconds',
    help: 'Per channel, how long the oldest due queued delivery has been due; 0 when none is.',
    labelNames: ['channel'] as const,
    registers: [registry],
    async collect() {
      const figures = await queue();
      for (const channel of deps.channels) this.set({ channel }, figures.get(channel)?.oldestDueSeconds ?? 0);
    },
  });
  return {
    attempt(report) {
      attempts.inc({ channel: report.channel, provider: report.provider, outcome: report.outcome });
      latency.observe({ channel: report.channel, provider: report.provider }, report.latencyMs / 1000);
      if (report.firstAttemptDelayMs !== null) {
        firstAttempt.observe({ channel: report.channel }, report.firstAttemptDelayMs / 1000);
      }
    },
    misfire: (channel) => misfires.inc({ channel }),
  };
}

interface QueueFigures {
  queued: number;
  oldestDueSeconds: number;
}

/** The queue per channel, read at most once per QUEUE_CACHE_MS (concurrent scrapes share one query). */
async function readQueue(sql: SqlRunner): Promise<Map<string, QueueFigures>> {
  // Both figures from the partial index deliveries_due_by_channel (status = 'queued', by channel, then
  // next_attempt_at).
  const rows = await sql.query<{ channel: string; queued: number; oldest_due_seconds: number | null }>(
    `select channel, count(*)::int as queued,
            extract(epoch from now() - min(next_attempt_at) filter (where next_attempt_at <= now()))::float8
              as oldest_due_seconds
     from deliveries where status = 'queued' group by channel`,
    [],
  );
  return new Map(
    rows.map((r) => [
      r.channel,
      { queued: r.queued, oldestDueSeconds: Math.max(0, r.oldest_due_seconds ?? 0) },
    ]),
  );
}
