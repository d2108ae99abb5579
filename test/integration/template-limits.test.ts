// The rendered size bound (MAX_RENDERED_PART_BYTES, 256 KiB per template part) on the wire: PreviewTemplate
// answers INVALID_ARGUMENT naming the part instead of a huge answer, and a stored template that explodes
// fails its delivery with a clear reason before anything is POSTed. Runs on embedded PGlite.
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel, DeliveryStatus, type Notification } from '../../clients/node/index.js';
import { MAX_RENDERED_PART_BYTES } from '../../src/core/templates.js';
import { startWebhookReceiver, type WebhookReceiver } from '../emulators/webhook-receiver.js';
import { pgliteEngine } from '../support/engines.js';
import { rejection } from '../support/errors.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

const SETTINGS = { HERALD_WEBHOOK_ALLOW_NETWORKS: '127.0.0.1/32', HERALD_DISPATCH_POLL_MS: '200' };

/** 300 bytes that would double a captured string 30 times: a gigabyte if nothing stopped it. */
const EXPLODING =
  '{% capture a %}x{% endcapture %}{% for i in (1..30) %}{% capture a %}{{a}}{{a}}{% endcapture %}{% endfor %}{{a}}';
const TOO_LONG = `template: body renders to more than ${MAX_RENDERED_PART_BYTES} bytes`;
const FINAL = new Set([DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.EXPIRED]);

describe('template rendered size bound', () => {
  let server: TestServer;
  let receiver: WebhookReceiver;

  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    server = await startTestServer(pgliteEngine, { overrides: SETTINGS });
  });
  afterAll(async () => {
    await server?.stop();
    await receiver?.close();
  });

  async function settled(notificationId: string): Promise<Notification> {
    return until(`notification ${notificationId} settled`, 10_000, async () => {
      const n = (await server.admin().getNotification({ notificationId })).notification;
      return n?.deliveries.every((d) => FINAL.has(d.status)) ? n : undefined;
    });
  }

  describe('PreviewTemplate', () => {
    it.each([
      ['WEBHOOK', Channel.WEBHOOK],
      ['EMAIL (HTML-escaped)', Channel.EMAIL],
    ])(
      'answers INVALID_ARGUMENT naming the body for an exploding %s template, quickly',
      async (_, channel) => {
        const started = performance.now();
        const error = await rejection(
          server.adminService().previewTemplate({ type: 'limits.preview', channel, body: EXPLODING }),
        );
        expect([error.code, error.rawMessage]).toEqual([Code.InvalidArgument, `body: ${TOO_LONG}`]);
        expect(performance.now() - started).toBeLessThan(2_000);
      },
    );

    it('names the title when the title is the part that passes the bound', async () => {
      const error = await rejection(
        server.adminService().previewTemplate({
          type: 'limits.preview',
          channel: Channel.WEBHOOK,
          title: EXPLODING,
          body: 'fine',
        }),
      );
      expect([error.code, error.rawMessage]).toEqual([
        Code.InvalidArgument,
        `title: template: title renders to more than ${MAX_RENDERED_PART_BYTES} bytes`,
      ]);
    });

    it('answers INVALID_ARGUMENT for a stored template that renders past the bound with the given data', async () => {
      const key = { type: 'limits.stored', channel: Channel.SMS };
      await server.adminService().putTemplate({
        template: { ...key, locale: 'default', body: '{% for i in (1..5) %}{{ data.chunk }}{% endfor %}' },
      });
      const error = await rejection(
        server.adminService().previewTemplate({ ...key, data: { chunk: 'x'.repeat(60_000) } }),
      );
      expect([error.code, error.rawMessage]).toEqual([Code.InvalidArgument, `body: ${TOO_LONG}`]);
      // The same template with less data fits and previews normally.
      const small = await server.adminService().previewTemplate({ ...key, data: { chunk: 'ab' } });
      expect(small.body).toBe('ababababab');
    });
  });

  describe('delivery', () => {
    async function webhookWithTemplate(type: string, path: string, body: string) {
      await server
        .adminService()
        .createWebhookEndpoint({ url: `${receiver.url}${path}`, eventTypes: [type] });
      await server.adminService().putTemplate({
        template: { type, channel: Channel.WEBHOOK, locale: 'default', title: 'Hi', body },
      });
    }

    it('fails a delivery whose template explodes, with a clear reason and no attempt; the receiver gets nothing', async () => {
      await webhookWithTemplate('limits.explodes', '/explodes', EXPLODING);
      const sent = await server.admin().send({
        userId: 'limits-1',
        type: 'limits.explodes',
        channels: [Channel.WEBHOOK],
      });
      const d = (await settled(sent.notificationId)).deliveries[0]!;
      expect([d.status, d.reason]).toEqual([DeliveryStatus.FAILED, TOO_LONG]);
      expect(d.attempts).toHaveLength(0);
      expect(receiver.received.filter((r) => r.path === '/explodes')).toEqual([]);
      expect(server.logs.text()).not.toMatch(/delivery run failed|dispatcher error/);
    });

    it('still delivers a large template that stays under the bound', async () => {
      await webhookWithTemplate('limits.fits', '/fits', '{% for i in (1..4) %}{{ data.chunk }}{% endfor %}');
      const sent = await server.admin().send({
        userId: 'limits-2',
        type: 'limits.fits',
        data: { chunk: 'x'.repeat(60_000) },
        channels: [Channel.WEBHOOK],
      });
      const d = (await settled(sent.notificationId)).deliveries[0]!;
      expect(d.status).toBe(DeliveryStatus.SENT);
      const request = receiver.received.find((r) => r.headers['webhook-id'] === d.id)!;
      expect(JSON.parse(request.body).data.body).toHaveLength(240_000);
    });
  });
});
