// SMS's own metrics: segments sent and their estimated cost by provider and notification type (providers
// bill per segment), and what providers and recipients reported afterwards (delivery receipts, STOP/START).
import { Counter, type Registry } from 'prom-client';

export type SmsEvent = 'delivered' | 'undelivered' | 'failed' | 'stop' | 'start';

export interface SmsMetrics {
  sent(
    provider: string,
    type: string,
    segments: number,
    cost: { amount: number; currency: string } | undefined,
  ): void;
  event(event: SmsEvent, provider: string): void;
}

export function createSmsMetrics(registry: Registry): SmsMetrics {
  const segments = new Counter({
    name: 'herald_sms_segments_total',
    help: 'SMS segments handed to providers (what they bill), by provider and notification type.',
    labelNames: ['provider', 'type'] as const,
    registers: [registry],
  });
  const cost = new Counter({
    name: 'herald_sms_cost_total',
    help: "Estimated cost of the SMS handed to providers, from each provider's configured price per segment.",
    labelNames: ['provider', 'type', 'currency'] as const,
    registers: [registry],
  });
  const events = new Counter({
    name: 'herald_sms_events_total',
    help: 'Delivery receipts (delivered, undelivered, failed) and opt-outs (stop, start) SMS providers reported.',
    labelNames: ['event', 'provider'] as const,
    registers: [registry],
  });
  return {
    sent(provider, type, count, estimate) {
      segments.inc({ provider, type }, count);
      if (estimate) cost.inc({ provider, type, currency: estimate.currency }, estimate.amount);
    },
    event: (event, provider) => events.inc({ event, provider }),
  };
}
