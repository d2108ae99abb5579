// OpenTelemetry traces end to end: a Send from a traced client (a W3C traceparent in its gRPC metadata), its
// webhook delivered to a local receiver, and the spans as an OTLP/HTTP collector receives them. Closing the
// server exports the last spans, so nothing here waits on the exporter's schedule. Runs on every engine.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Channel, DeliveryStatus } from '../../clients/node/index.js';
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from '../emulators/otlp-receiver.js';
import { startWebhookReceiver, type WebhookReceiver } from '../emulators/webhook-receiver.js';
import { engines } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

const SETTINGS = {
  HERALD_WEBHOOK_ALLOW_NETWORKS: '127.0.0.1/32',
  HERALD_RETRY_WEBHOOK: 'attempts=3,base_ms=50,max_delay_ms=100,max_age_ms=60000,retry_after_cap_ms=5000',
  HERALD_WEBHOOK_TIMEOUT_MS: '1000',
  HERALD_DISPATCH_POLL_MS: '200',
};

// The calling service's span, as its tracing library would send it.
const CLIENT_TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN_ID = '00f067aa0ba902b7';
const CLIENT_TRACEPARENT = `00-${CLIENT_TRACE_ID}-${CLIENT_SPAN_ID}-01`;

const SERVER = 2;
const CLIENT = 3;
const ERROR = 2;

// What the Send carries that no span may: the recipient's address and the message.
const EMAIL = 'traced.recipient@example.com';
const TITLE = 'Your parcel left the depot';
const BODY = 'Track it with code PARCEL-77';

describe.each(engines())('traces on $name', (engine) => {
  let collector: OtlpReceiver;
  let receiver: WebhookReceiver;
  let server: TestServer | undefined;

  beforeEach(async () => {
    collector = await startOtlpReceiver();
    receiver = await startWebhookReceiver();
  });
  afterEach(async () => {
    await server?.stop();
    server = undefined;
    await receiver.close();
    await collector.close();
  });

  /** A webhook endpoint at `path`, a Send to it with the client's traceparent, its delivery once final. */
  async function sendTraced(path: string) {
    const running = server!;
    await running.adminService().createWebhookEndpoint({ url: `${receiver.url}${path}`, description: path });
    const sent = await running.admin().send(
      {
        userId: 'traced-user',
        type: 'parcel.shipped',
        title: TITLE,
        body: BODY,
        data: { code: 'PARCEL-77' },
        recipient: { email: EMAIL },
        channels: [Channel.WEBHOOK],
      },
      { headers: { traceparent: CLIENT_TRACEPARENT } },
    );
    const delivery = await until('the webhook delivery is final', 20_000, async () => {
      const { notification } = await running.admin().getNotification({ notificationId: sent.notificationId });
      const d = notification?.deliveries[0];
      return d && d.status !== DeliveryStatus.QUEUED && d.status !== DeliveryStatus.SENDING ? d : undefined;
    });
    const [row] = await running.db.database.sql.query<{ trace_parent: string | null }>(
      'select trace_parent from notifications where id = $1::uuid',
      [sent.notificationId],
    );
    return { sent, delivery, traceParent: row?.trace_parent };
  }

  /** Stops the server, which exports every span still buffered; the spans of the client's trace. */
  async function clientTrace(): Promise<ReceivedSpan[]> {
    await server!.stop();
    server = undefined;
    expect(collector.problems).toEqual([]);
    return collector.spans.filter((s) => s.traceId === CLIENT_TRACE_ID);
  }

  it('joins one Send, its planning, its commit and every webhook attempt into the caller’s trace', async () => {
    server = await startTestServer(engine, {
      overrides: {
        ...SETTINGS,
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
        OTEL_SERVICE_NAME: 'herald-test',
      },
    });
    receiver.script('/traced', [{ status: 503, body: 'busy' }]);
    const { sent, delivery, traceParent } = await sendTraced('/traced');
    expect(delivery.status).toBe(DeliveryStatus.SENT);

    const spans = await clientTrace();
    const rpc = spans.find((s) => s.name === 'herald.v1.NotificationService/Send');
    expect(rpc).toMatchObject({
      kind: SERVER,
      parentSpanId: CLIENT_SPAN_ID,
      serviceName: 'herald-test',
      attributes: {
        'rpc.system': 'grpc',
        'rpc.service': 'herald.v1.NotificationService',
        'rpc.method': 'Send',
        'rpc.grpc.status_code': 0,
      },
    });
    // The notification keeps the Send's span, so attempts made later, by any instance, hang from it.
    expect(traceParent).toBe(`00-${CLIENT_TRACE_ID}-${rpc!.spanId}-01`);

    const names = spans.map((s) => s.name).sort();
    expect(names).toEqual([
      'herald.delivery.attempt',
      'herald.delivery.attempt',
      'herald.send.commit',
      'herald.send.plan',
      'herald.v1.NotificationService/Send',
    ]);
    // One connected tree: every span's parent is in the trace, or is the client's own span.
    const ids = new Set(spans.map((s) => s.spanId));
    for (const span of spans) {
      expect(span.parentSpanId === CLIENT_SPAN_ID || ids.has(span.parentSpanId), span.name).toBe(true);
    }
    for (const span of spans.filter((s) => s.name !== rpc!.name)) expect(span.parentSpanId).toBe(rpc!.spanId);

    const attempts = spans
      .filter((s) => s.name === 'herald.delivery.attempt')
      .sort((a, b) => Number(a.attributes['herald.attempt']) - Number(b.attributes['herald.attempt']));
    const common = {
      'herald.channel': 'webhook',
      'herald.provider': 'webhook',
      'herald.delivery_id': sent.deliveries[0]!.deliveryId,
    };
    expect(attempts[0]).toMatchObject({
      kind: CLIENT,
      attributes: { ...common, 'herald.attempt': 1, 'herald.outcome': 'retry', 'herald.status_code': 503 },
      status: { code: ERROR },
    });
    expect(attempts[1]).toMatchObject({
      kind: CLIENT,
      attributes: { ...common, 'herald.attempt': 2, 'herald.outcome': 'sent', 'herald.status_code': 200 },
    });
    expect(attempts[1]!.status.code).not.toBe(ERROR);

    // Each request carried its own attempt's span, so the endpoint's trace continues Herald's.
    const requests = receiver.received.filter((r) => r.path === '/traced');
    expect(requests.map((r) => r.headers.traceparent)).toEqual(
      attempts.map((a) => `00-${CLIENT_TRACE_ID}-${a.spanId}-01`),
    );

    const exported = JSON.stringify(spans);
    for (const secret of [EMAIL, TITLE, BODY, 'PARCEL-77', receiver.url, '/traced', 'busy']) {
      expect(exported).not.toContain(secret);
    }
  });

  it('traces a Send with an idempotency key (its own transaction) the same way', async () => {
    server = await startTestServer(engine, { overrides: { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url } });
    const sent = await server.admin().send(
      {
        userId: 'keyed-user',
        type: 'greeting',
        title: TITLE,
        idempotencyKey: 'k-1',
        channels: [Channel.IN_APP],
      },
      { headers: { traceparent: CLIENT_TRACEPARENT } },
    );
    const [row] = await server.db.database.sql.query<{ trace_parent: string | null }>(
      'select trace_parent from notifications where id = $1::uuid',
      [sent.notificationId],
    );

    const spans = await clientTrace();
    const rpc = spans.find((s) => s.name === 'herald.v1.NotificationService/Send');
    expect(row?.trace_parent).toBe(`00-${CLIENT_TRACE_ID}-${rpc?.spanId}-01`);
    expect(spans.filter((s) => s.parentSpanId === rpc?.spanId).map((s) => s.name)).toEqual(
      expect.arrayContaining(['herald.send.plan', 'herald.send.commit']),
    );
  });

  it('exports nothing, stores no traceparent and sends none on when no OTLP endpoint is set', async () => {
    server = await startTestServer(engine, { overrides: SETTINGS });
    const { delivery, traceParent } = await sendTraced('/untraced');
    expect(delivery.status).toBe(DeliveryStatus.SENT);
    expect(traceParent).toBeNull();
    const [request] = receiver.received.filter((r) => r.path === '/untraced');
    expect(request?.headers.traceparent).toBeUndefined();

    await server.stop();
    server = undefined;
    expect(collector.spans).toEqual([]);
    expect(collector.problems).toEqual([]);
  });
});
