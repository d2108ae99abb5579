// Replacing the providers while an attempt is in flight (what SIGHUP does): the attempt finishes on the
// provider it started with, which is closed only after that attempt; new attempts use the new providers.
// Runs on every available engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel, DeliveryStatus } from '../../clients/node/index.js';
import type { ProviderAdapter } from '../../src/delivery/provider.js';
import { startWebhookReceiver, type WebhookReceiver } from '../emulators/webhook-receiver.js';
import { engines } from '../support/engines.js';
import { httpTestProvider } from '../support/http-provider.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

/** The provider, recording when it was closed. */
function observed(provider: ProviderAdapter, closes: string[]): ProviderAdapter {
  return { ...provider, close: async () => void closes.push(provider.name) };
}

describe.each(engines())('providers replaced while an attempt is in flight, on $name', (engine) => {
  let receiver: WebhookReceiver;
  let server: TestServer;
  const closes: string[] = [];
  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    server = await startTestServer(engine, {
      overrides: { HERALD_DISPATCH_POLL_MS: '200' },
      providers: {
        email: [observed(httpTestProvider('old-mailer', 'email', `${receiver.url}/old`), closes)],
      },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await receiver?.close();
  });

  async function final(notificationId: string) {
    return until('the e-mail final', 10_000, async () => {
      const { notification } = await server.admin().getNotification({ notificationId });
      const d = notification!.deliveries[0]!;
      return d.status === DeliveryStatus.QUEUED || d.status === DeliveryStatus.SENDING ? undefined : d;
    });
  }

  it('finishes the attempt on the old provider, closes it after, and sends the next on the new one', async () => {
    receiver.script('/old', [{ status: 200, delayMs: 1_500 }]);
    const admin = server.admin();
    const first = await admin.send({
      userId: 'reload',
      type: 'reload',
      title: 'During',
      recipient: { email: 'reload@example.com' },
      channels: [Channel.EMAIL],
    });
    await receiver.waitFor((r) => r.some((w) => w.path === '/old'), 5_000);
    server.herald.delivery.replaceProviders({
      email: [observed(httpTestProvider('new-mailer', 'email', `${receiver.url}/new`), closes)],
    });
    expect(closes).toEqual([]);
    const during = await final(first.notificationId);
    expect([during.status, during.provider]).toEqual([DeliveryStatus.SENT, 'old-mailer']);
    await until('the old provider closed', 2_000, () => (closes.includes('old-mailer') ? true : undefined));
    expect(closes).toEqual(['old-mailer']);

    const next = await admin.send({
      userId: 'reload',
      type: 'reload',
      title: 'After',
      channels: [Channel.EMAIL],
    });
    const after = await final(next.notificationId);
    expect([after.status, after.provider]).toEqual([DeliveryStatus.SENT, 'new-mailer']);
  });

  it('refuses a set whose slowest provider does not fit the lease, keeping the current one', () => {
    const slow = { ...httpTestProvider('slow', 'email', `${receiver.url}/slow`), timeoutMs: 600_000 };
    expect(() => server.herald.delivery.replaceProviders({ email: [slow] })).toThrow(
      /HERALD_DELIVERY_LEASE_MS \(60000\) must be at least the slowest provider's timeout/,
    );
    expect(server.herald.delivery.providers().email?.map((p) => p.name)).toEqual(['new-mailer']);
  });
});
