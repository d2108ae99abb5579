// A webhook-like channel provider for tests of the dispatcher's provider handling (failover, circuits,
// rate limits): it POSTs each message as JSON to a URL (a local receiver emulator) and classifies the
// answer the way real adapters do. It is a real HTTP client against a real server, not a stub.
import { request } from 'undici';
import type { ChannelName } from '../../src/core/channels.js';
import { parseRetryAfter } from '../../src/core/retry-policy.js';
import type { DeliveryTask, Outcome, ProviderAdapter } from '../../src/delivery/provider.js';

/** Every attempt ends within this (connect to last byte). */
const TIMEOUT_MS = 5_000;

export function httpTestProvider(name: string, channel: ChannelName, url: string): ProviderAdapter {
  return {
    name,
    channel,
    timeoutMs: TIMEOUT_MS,
    accepts: (task) => task.destination.channel === channel,
    close: async () => {},
    circuitKey: () => name,
    async send(task: DeliveryTask, signal: AbortSignal): Promise<Outcome> {
      try {
        const res = await request(url, {
          method: 'POST',
          signal,
          headersTimeout: TIMEOUT_MS,
          bodyTimeout: TIMEOUT_MS,
          headers: { 'content-type': 'application/json', 'webhook-id': task.deliveryId, 'x-provider': name },
          body: JSON.stringify({
            to: destinationOf(task),
            content: task.content,
            notificationId: task.notificationId,
          }),
        });
        const text = await res.body.text();
        const status = res.statusCode;
        const detail = { statusCode: status, response: text.slice(0, 200) };
        if (status >= 200 && status < 300)
          return { kind: 'sent', providerMessageId: `${name}-${task.deliveryId}`, ...detail };
        if (status === 410) return { kind: 'invalid_destination', reason: 'gone', ...detail };
        if (status === 401)
          return { kind: 'failed', reason: 'credentials refused', credentials: true, ...detail };
        if (status === 429 || status >= 500) {
          const retryAfterMs = parseRetryAfter(res.headers['retry-after'] as string | undefined, new Date());
          return { kind: 'retry', reason: `${name} answered ${status}`, retryAfterMs, ...detail };
        }
        return { kind: 'failed', reason: `${name} answered ${status}`, ...detail };
      } catch (error) {
        return { kind: 'retry', reason: `network: ${(error as Error).message}` };
      }
    },
  };
}

function destinationOf(task: DeliveryTask): string {
  const d = task.destination;
  if (d.channel === 'email') return d.address;
  if (d.channel === 'sms') return d.number;
  if (d.channel === 'push') return d.token;
  return d.url;
}
