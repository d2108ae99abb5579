// E-mail's own metrics: sends, bounces, complaints and deliveries by provider and notification type; bounce
// and complaint rates are these divided by the sends.
import { Counter, type Registry } from 'prom-client';

export type EmailEvent = 'sent' | 'bounce' | 'complaint' | 'delivery';

export interface EmailMetrics {
  count(event: EmailEvent, provider: string, type: string): void;
}

export function createEmailMetrics(registry: Registry): EmailMetrics {
  const events = new Counter({
    name: 'herald_email_events_total',
    help: 'E-mails sent, and the bounces, complaints and deliveries providers reported, by provider and type.',
    labelNames: ['event', 'provider', 'type'] as const,
    registers: [registry],
  });
  return { count: (event, provider, type) => events.inc({ event, provider, type }) };
}
