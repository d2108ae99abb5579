// OpenTelemetry traces end to end: a Send from a traced client (a W3C traceparent in its gRPC metadata), its
// webhook delivered to a local receiver, and the spans as an OTLP/HTTP collector receives them, in protobuf (the
// default protocol) unless a case asks for http/json. Closing the server exports the last spans, so nothing here
// waits on the exporter's schedule. Runs on every engine.
import { hostname } from 'node:os';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { diag } from '@opentelemetry/api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Channel, DeliveryStatus } from '../../clients/node/index.js';
import { Health } from '../../gen/grpc/health/v1/health_pb.js';
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
/** The same caller, having decided not to sample (trace-flags 00). */
const UNSAMPLED_TRACEPARENT = `00-${CLIENT_TRACE_ID}-${CLIENT_SPAN_ID}-00`;
/** A traceparent of the caller's trace, from a span of Herald's own and not sampled. */
const UNSAMPLED_CHILD = new RegExp(`^00-${CLIENT_TRACE_ID}-(?!${CLIENT_SPAN_ID})[0-9a-f]{16}-00$`);

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
  async function sendTraced(path: string, traceparent = CLIENT_TRACEPARENT) {
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
      { headers: { traceparent } },
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
    // No protocol set: OTLP/HTTP with protobuf bodies, the specification's default.
    expect(collector.contentTypes.length).toBeGreaterThan(0);
    expect(new Set(collector.contentTypes)).toEqual(new Set(['application/x-protobuf']));
  });

  it('exports OTLP/HTTP JSON with OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json, over a general http/protobuf', async () => {
    server = await startTestServer(engine, {
      overrides: {
        ...SETTINGS,
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
        // A platform's setting for every signal of every service; the traces one wins.
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
        OTEL_SERVICE_NAME: 'herald-json',
      },
    });
    const { sent, delivery, traceParent } = await sendTraced('/json');
    expect(delivery.status).toBe(DeliveryStatus.SENT);

    const spans = await clientTrace();
    expect(collector.contentTypes.length).toBeGreaterThan(0);
    expect(new Set(collector.contentTypes)).toEqual(new Set(['application/json']));
    // The same spans as protobuf gives: hex ids, typed attributes, the resource.
    const rpc = spans.find((s) => s.name === 'herald.v1.NotificationService/Send');
    expect(rpc).toMatchObject({
      kind: SERVER,
      parentSpanId: CLIENT_SPAN_ID,
      serviceName: 'herald-json',
      attributes: { 'rpc.method': 'Send', 'rpc.grpc.status_code': 0 },
      resource: { 'service.name': 'herald-json', 'process.pid': process.pid },
    });
    expect(rpc!.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(traceParent).toBe(`00-${CLIENT_TRACE_ID}-${rpc!.spanId}-01`);
    expect(spans.map((s) => s.name).sort()).toEqual([
      'herald.delivery.attempt',
      'herald.send.commit',
      'herald.send.plan',
      'herald.v1.NotificationService/Send',
    ]);
    for (const span of spans.filter((s) => s.name !== rpc!.name)) expect(span.parentSpanId).toBe(rpc!.spanId);
    expect(spans.find((s) => s.name === 'herald.delivery.attempt')).toMatchObject({
      kind: CLIENT,
      attributes: {
        'herald.delivery_id': sent.deliveries[0]!.deliveryId,
        'herald.attempt': 1,
        'herald.outcome': 'sent',
        'herald.status_code': 200,
      },
    });
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

  it('with OTEL_TRACES_SAMPLER=always_off exports nothing but still carries the trace on, marked not sampled', async () => {
    server = await startTestServer(engine, {
      overrides: {
        ...SETTINGS,
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
        OTEL_TRACES_SAMPLER: 'always_off',
      },
    });
    receiver.script('/sampled-out', [{ status: 503, body: 'busy' }]);
    const { delivery, traceParent } = await sendTraced('/sampled-out');
    expect(delivery.status).toBe(DeliveryStatus.SENT);
    // W3C Trace Context: a participant that does not record still propagates the trace, with its own (never
    // exported) span as the parent and the sampled flag off, so the caller's trace id reaches every hop.
    expect(traceParent).toMatch(UNSAMPLED_CHILD);
    const requests = receiver.received.filter((r) => r.path === '/sampled-out');
    expect(requests).toHaveLength(2);
    for (const request of requests) expect(request.headers.traceparent).toMatch(UNSAMPLED_CHILD);

    await server.stop();
    server = undefined;
    expect(collector.problems).toEqual([]);
    expect(collector.spans).toEqual([]);
  });

  it('follows an unsampled caller (the default, parent-based sampler), for the Send and its later attempts', async () => {
    server = await startTestServer(engine, {
      overrides: { ...SETTINGS, OTEL_EXPORTER_OTLP_ENDPOINT: collector.url },
    });
    const { delivery, traceParent } = await sendTraced('/unsampled', UNSAMPLED_TRACEPARENT);
    expect(delivery.status).toBe(DeliveryStatus.SENT);
    expect(traceParent).toMatch(UNSAMPLED_CHILD);
    const [request] = receiver.received.filter((r) => r.path === '/unsampled');
    expect(request?.headers.traceparent).toMatch(UNSAMPLED_CHILD);
    expect(await clientTrace()).toEqual([]);
  });

  it('makes no span for grpc.health.v1.Health, and names the instance and OTEL_RESOURCE_ATTRIBUTES on the rest', async () => {
    server = await startTestServer(engine, {
      overrides: {
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=staging,k8s.pod.name=herald-7f9c%2Cb',
      },
    });
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    await health.check({ service: '' }, { headers: { traceparent: CLIENT_TRACEPARENT } });
    await health.check({ service: '' });
    await server
      .admin()
      .send(
        { userId: 'probed-user', type: 'greeting', title: TITLE, channels: [Channel.IN_APP] },
        { headers: { traceparent: CLIENT_TRACEPARENT } },
      );

    const spans = await clientTrace();
    expect(collector.spans.filter((s) => s.name.startsWith('grpc.health.v1.Health'))).toEqual([]);
    expect(spans.map((s) => s.name).sort()).toEqual([
      'herald.send.commit',
      'herald.send.plan',
      'herald.v1.NotificationService/Send',
    ]);
    for (const span of spans) {
      expect(span.resource).toMatchObject({
        'service.name': 'herald',
        'service.instance.id': expect.stringMatching(
          /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
        ),
        'host.name': hostname(),
        'process.pid': process.pid,
        'deployment.environment.name': 'staging',
        'k8s.pod.name': 'herald-7f9c,b',
        'telemetry.sdk.language': 'nodejs',
      });
    }
    expect(new Set(spans.map((s) => s.resource['service.instance.id'])).size).toBe(1);
  });

  it('logs the SDK’s problems at most once per 30 s, never a collector’s answer or a span', async () => {
    // A collector that turns every export down, quoting what it was sent (real ones quote request bytes).
    const refusing = await startOtlpReceiver({
      failWith: { status: 400, body: '{"message":"cannot decode near \\"PARCEL-77\\""}' },
    });
    let logs: TestServer['logs'];
    try {
      server = await startTestServer(engine, { overrides: { OTEL_EXPORTER_OTLP_ENDPOINT: refusing.url } });
      logs = server.logs;
      // A scheduled export's failure, as the SDK's global error handler hands it to diag: every property of the
      // error as JSON, the collector's answer ("data") and the stack included.
      const failure = JSON.stringify({
        name: 'OTLPExporterError',
        code: '503',
        message: 'Service Unavailable',
        data: 'PARCEL-77',
        stack: 'OTLPExporterError: Service Unavailable\n    at PARCEL-77',
      });
      diag.error(failure);
      diag.error(failure);
      // A component's logger: its name, the message, then arguments that may hold anything.
      diag.warn('OTLPExportDelegate', 'Export succeeded but could not deserialize response', 'PARCEL-77');
      diag.info('not forwarded');
      await server.admin().send(
        {
          userId: 'refused-user',
          type: 'parcel.shipped',
          title: TITLE,
          body: BODY,
          channels: [Channel.IN_APP],
        },
        { headers: { traceparent: CLIENT_TRACEPARENT } },
      );
      // Closing exports the Send's spans: the collector refuses them, and that is logged whatever the limit.
      await server.stop();
      server = undefined;
    } finally {
      await refusing.close();
    }
    const lines = logs.lines
      .map(
        (line) => JSON.parse(line) as { level: string; msg: string; problem?: string; suppressed?: number },
      )
      .filter((line) => line.msg.startsWith('traces:'));
    expect(lines).toEqual([
      expect.objectContaining({ level: 'error', problem: 'OTLPExporterError (503): Service Unavailable' }),
      expect.objectContaining({
        level: 'warn',
        problem: 'OTLPExporterError (400): Bad Request',
        suppressed: 2,
      }),
    ]);
    for (const secret of ['PARCEL-77', TITLE, BODY, 'not forwarded'])
      expect(logs.text()).not.toContain(secret);
    // Stopped, this server no longer receives what diag reports.
    diag.error('after the server stopped');
    expect(logs.text()).not.toContain('after the server stopped');
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
