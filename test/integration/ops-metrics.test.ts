// The operations metrics of in-app delivery and webhooks on /metrics: WebSocket connections and
// StreamNotifications streams open on the instance (up while open, down once closed); in-app notifications
// written to live sessions, per transport (a reconnect's replay counts again); notifications acknowledged by
// marks (MarkNotifications and the WebSocket's mark frames), counted once per notification a mark changed;
// webhook endpoints disabled by Herald (410 Gone) or by an admin, read from the shared database. Runs on every
// available engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  Channel,
  DeliveryStatus,
  MarkAction,
  type NotificationServiceClient,
  type StreamNotificationsResponse,
} from '../../clients/node/index.js';
import { startWebhookReceiver, type WebhookReceiver } from '../emulators/webhook-receiver.js';
import { engines } from '../support/engines.js';
import { sample } from '../support/metrics.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

type Frame = Record<string, unknown> & { type: string };

/** A StreamNotifications call collecting its events until stopped. */
function follow(client: NotificationServiceClient, userId: string) {
  const events: StreamNotificationsResponse[] = [];
  const controller = new AbortController();
  const done = (async () => {
    try {
      for await (const event of client.streamNotifications({ userId }, { signal: controller.signal })) {
        events.push(event);
      }
    } catch (error) {
      if (!controller.signal.aborted) throw error;
    }
  })();
  return {
    notifications: () => events.filter((e) => e.event.case === 'notification').length,
    async stop() {
      controller.abort();
      await done;
    },
  };
}

describe.each(engines())('operations metrics on $name', (engine) => {
  let server: TestServer;
  let receiver: WebhookReceiver;
  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    server = await startTestServer(engine, {
      overrides: { HERALD_WEBHOOK_ALLOW_NETWORKS: '127.0.0.1/32', HERALD_DISPATCH_POLL_MS: '100' },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await receiver?.close();
  });

  const metric = (series: string) => sample(server.url, series);
  /** Waits until the sample reads `value`. */
  const reads = (series: string, value: number) =>
    until(`${series} = ${value}`, 10_000, async () => ((await metric(series)) === value ? true : undefined));

  /** A WebSocket of `userId`'s, acknowledged by the server, with the frames it received. */
  async function webSocket(userId: string) {
    const token = await server.userToken(userId);
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/ws`, ['herald.v1', `bearer.${token}`]);
    const frames: Frame[] = [];
    ws.on('message', (data) => frames.push(JSON.parse(String(data)) as Frame));
    ws.on('error', () => {});
    const closed = new Promise<void>((resolve) => ws.on('close', () => resolve()));
    await until('connection_ack', 5_000, () => frames.find((f) => f.type === 'connection_ack'));
    return {
      frames,
      send: (frame: Record<string, unknown>) => ws.send(JSON.stringify(frame)),
      close: () => {
        ws.close();
        return closed;
      },
    };
  }

  const sendInApp = (userId: string) =>
    server.admin().send({ userId, type: 'ops.note', title: 'Hi', channels: [Channel.IN_APP] });

  it('counts the WebSocket connections and streams open on the instance, until they close', async () => {
    expect(await metric('herald_websocket_connections')).toBe(0);
    expect(await metric('herald_inbox_streams_open')).toBe(0);

    const ws = await webSocket('ops-open');
    const stream = follow(server.client({ token: await server.userToken('ops-open') }), 'ops-open');
    expect(await metric('herald_websocket_connections')).toBe(1);
    await reads('herald_inbox_streams_open', 1);

    await ws.close();
    await reads('herald_websocket_connections', 0);
    await stream.stop();
    await reads('herald_inbox_streams_open', 0);
  });

  it('counts in-app notifications written to live sessions, per transport, replays included', async () => {
    const viaStream = 'herald_inapp_written_total{transport="stream"}';
    const viaWebSocket = 'herald_inapp_written_total{transport="websocket"}';
    const before = { stream: await metric(viaStream), webSocket: await metric(viaWebSocket) };

    const ws = await webSocket('ops-written');
    ws.send({ type: 'resume', after_seq: 0 });
    const stream = follow(server.admin(), 'ops-written');
    await until('the stream open', 5_000, async () =>
      (await metric('herald_inbox_streams_open')) === 1 ? true : undefined,
    );
    const sent = await sendInApp('ops-written');
    await until('the notification on both', 5_000, () =>
      stream.notifications() === 1 && ws.frames.some((f) => f.type === 'notification') ? true : undefined,
    );

    expect(await metric(viaStream)).toBe(before.stream! + 1);
    expect(await metric(viaWebSocket)).toBe(before.webSocket! + 1);
    await stream.stop();
    await ws.close();

    // Its in-app delivery is sent; reconnecting from seq 0 replays it, and each replay counts again: the counter
    // is writes to live sessions, not deliveries that became sent.
    await until('the in-app delivery sent', 5_000, async () => {
      const { notification } = await server.admin().getNotification({ notificationId: sent.notificationId });
      return notification!.deliveries.some(
        (d) => d.channel === Channel.IN_APP && d.status === DeliveryStatus.SENT,
      )
        ? true
        : undefined;
    });
    const again = await webSocket('ops-written');
    again.send({ type: 'resume', after_seq: 0 });
    const replay = follow(server.admin(), 'ops-written');
    await until('the replay on both', 5_000, () =>
      replay.notifications() === 1 && again.frames.some((f) => f.type === 'notification') ? true : undefined,
    );
    expect(await metric(viaStream)).toBe(before.stream! + 2);
    expect(await metric(viaWebSocket)).toBe(before.webSocket! + 2);
    await replay.stop();
    await again.close();
  });

  it('counts notifications acknowledged by marks, once per notification a mark changed', async () => {
    const read = 'herald_inapp_acknowledged_total{state="read"}';
    const seen = 'herald_inapp_acknowledged_total{state="seen"}';
    const before = { read: (await metric(read))!, seen: (await metric(seen))! };
    const first = await sendInApp('ops-marks');
    const second = await sendInApp('ops-marks');
    const mark = (action: MarkAction, ids: string[]) =>
      server.admin().markNotifications({ userId: 'ops-marks', notificationIds: ids, action });

    await mark(MarkAction.READ, [first.notificationId]);
    expect(await metric(read)).toBe(before.read + 1);
    // Marked read again: it changes nothing, so it acknowledges nothing.
    await mark(MarkAction.READ, [first.notificationId]);
    expect(await metric(read)).toBe(before.read + 1);

    const ws = await webSocket('ops-marks');
    ws.send({ type: 'mark', ids: [first.notificationId, second.notificationId], action: 'seen' });
    // `read` set seen_at on the first already: only the second is newly seen.
    await reads(seen, before.seen + 1);
    expect(ws.frames.filter((f) => f.type === 'error')).toEqual([]);
    await ws.close();
  });

  it('reports webhook endpoints disabled by Herald and by an admin, read from the database', async () => {
    receiver.script('/gone', [{ status: 410 }]);
    await server.adminService().createWebhookEndpoint({ url: `${receiver.url}/gone` });
    const { endpoint: paused } = await server
      .adminService()
      .createWebhookEndpoint({ url: `${receiver.url}/paused` });
    await server.adminService().updateWebhookEndpoint({ id: paused!.id, enabled: false });

    await server.admin().send({ userId: 'ops-hooks', type: 'ops.hook', channels: [Channel.WEBHOOK] });
    // Figures are cached for a few seconds between scrapes: wait for the ones after the 410.
    await reads('herald_webhook_endpoints_disabled{disabled_by="herald"}', 1);
    expect(await metric('herald_webhook_endpoints_disabled{disabled_by="admin"}')).toBe(1);
  });
});
