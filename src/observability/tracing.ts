// OpenTelemetry traces, exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set. Unset, nothing is built: no provider, no interceptor, no spans;
// callers hold `undefined` and skip. The SDK and the exporter are only imported when tracing is on.
//
// One Send is one trace, across instances and time:
// - each RPC's SERVER span continues the caller's W3C traceparent (gRPC metadata arrives as HTTP headers);
// - a Send's planning and commit are children of its RPC span;
// - the RPC span's traceparent is stored with the notification (notifications.trace_parent), so the delivery
//   attempts, made later by whichever instance claims them, are its children too (CLIENT spans);
// - a webhook carries its attempt span's traceparent to the endpoint, which can continue the trace.
// Spans carry names, ids, outcomes and status codes only: never an address, token, content, or the text of an
// error (a provider's or the database's message may quote an address).
//
// Each server has its own provider and tracer, passed down explicitly (tests run several servers in one
// process): nothing is registered globally.
import { Code, ConnectError, createContextKey, type Interceptor } from '@connectrpc/connect';
import {
  type Context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type { TracingConfig } from '../config.js';
import type { Outcome } from '../delivery/provider.js';
import type { ClaimedDelivery } from '../store/deliveries.js';
import type { SendTrace } from '../store/send.js';

export interface Tracing extends AttemptTracer {
  /** Opens each RPC's SERVER span; put it first, so it sees the status code the client gets. */
  readonly interceptor: Interceptor;
  /** Exports the spans still buffered and stops (server close); bounded, a collector away cannot hold it. */
  shutdown(): Promise<void>;
}

export interface AttemptTracer {
  /** The span of one provider call for `delivery`, a child of the Send that made it. */
  startAttempt(
    delivery: Pick<ClaimedDelivery, 'id' | 'channel' | 'event' | 'trace_parent'>,
    provider: string,
    /** The delivery's attempt this is, from 1. */
    number: number,
  ): AttemptSpan;
}

export interface AttemptSpan {
  /** The span's W3C traceparent, for a provider to send on (webhooks do). */
  readonly traceParent: string | undefined;
  /** Records what the provider answered (the kind and the status code, nothing it said) and ends the span. */
  end(outcome: Outcome): void;
}

/** Set by the interceptor on every RPC when tracing is on: the RPC span, for the spans of a Send inside it. */
export const rpcTraceKey = createContextKey<SendTrace | undefined>(undefined, {
  description: 'the RPC span (tracing on)',
});

/** The longest shutdown waits for the last spans to be exported. */
const SHUTDOWN_FLUSH_MS = 5_000;

/**
 * gRPC codes that are the server's fault: their spans are errors. A client's mistake (INVALID_ARGUMENT,
 * NOT_FOUND, ...) is a correct answer, as the OpenTelemetry conventions for RPC servers have it.
 */
const SERVER_FAULTS = new Set([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

const headerGetter: TextMapGetter<Headers> = {
  keys: (headers) => [...headers.keys()],
  get: (headers, key) => headers.get(key) ?? undefined,
};

export async function startTracing(config: TracingConfig): Promise<Tracing> {
  const [
    { W3CTraceContextPropagator },
    { OTLPTraceExporter },
    { defaultResource, resourceFromAttributes },
    sdk,
  ] = await Promise.all([
    import('@opentelemetry/core'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/sdk-trace'),
  ]);
  const propagator = new W3CTraceContextPropagator();
  // OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT and _COMPRESSION are read by the exporter itself.
  const exporter = new OTLPTraceExporter({ url: config.tracesUrl });
  const provider = new sdk.TracerProvider({
    resource: defaultResource().merge(resourceFromAttributes({ 'service.name': config.serviceName })),
    spanProcessors: [new sdk.BatchSpanProcessor({ exporter })],
  });
  const tracer = provider.getTracer('herald');

  /** Undefined only for a span without a valid context (never one of this tracer's). */
  const traceParentOf = (context: Context): string | undefined => {
    const carrier: { traceparent?: string } = {};
    propagator.inject(context, carrier, defaultTextMapSetter);
    return carrier.traceparent;
  };

  const interceptor: Interceptor = (next) => async (req) => {
    const service = req.service.typeName;
    const method = req.method.name;
    const parent = propagator.extract(ROOT_CONTEXT, req.header, headerGetter);
    const span = tracer.startSpan(
      `${service}/${method}`,
      {
        kind: SpanKind.SERVER,
        attributes: { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': method },
      },
      parent,
    );
    const context = trace.setSpan(parent, span);
    req.contextValues.set(rpcTraceKey, sendTrace(tracer, context, traceParentOf(context) ?? null));
    let code = 0; // OK
    try {
      // For a stream: until it opens, as the RPC metrics measure it.
      return await next(req);
    } catch (error) {
      code = ConnectError.from(error).code;
      throw error;
    } finally {
      span.setAttribute('rpc.grpc.status_code', code);
      if (SERVER_FAULTS.has(code)) span.setStatus({ code: SpanStatusCode.ERROR, message: Code[code] });
      span.end();
    }
  };

  return {
    interceptor,
    startAttempt(delivery, providerName, number) {
      const parent = delivery.trace_parent
        ? propagator.extract(ROOT_CONTEXT, { traceparent: delivery.trace_parent }, defaultTextMapGetter)
        : ROOT_CONTEXT;
      const span = tracer.startSpan(
        'herald.delivery.attempt',
        {
          kind: SpanKind.CLIENT,
          attributes: {
            'herald.channel': delivery.channel,
            'herald.provider': providerName,
            'herald.delivery_id': delivery.id,
            'herald.event': delivery.event,
            'herald.attempt': number,
          },
        },
        parent,
      );
      return {
        traceParent: traceParentOf(trace.setSpan(parent, span)),
        end(outcome) {
          span.setAttribute('herald.outcome', outcome.kind);
          // The provider's HTTP status, or its protocol's code (SMTP), when it answered.
          if (outcome.statusCode !== undefined) span.setAttribute('herald.status_code', outcome.statusCode);
          if (outcome.kind !== 'sent') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.kind });
          span.end();
        },
      };
    },
    async shutdown() {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        provider.shutdown().catch(() => {}),
        new Promise((resolve) => {
          timer = setTimeout(resolve, SHUTDOWN_FLUSH_MS);
        }),
      ]);
      clearTimeout(timer);
    },
  };
}

/** A Send's planning and commit as children of its RPC span; the notifications keep the RPC span's traceparent. */
function sendTrace(tracer: Tracer, rpc: Context, traceParent: string | null): SendTrace {
  return {
    traceParent,
    planning(work) {
      const span = tracer.startSpan('herald.send.plan', {}, rpc);
      try {
        return work();
      } catch (error) {
        throw failed(span, error);
      } finally {
        span.end();
      }
    },
    async commit(work) {
      const span = tracer.startSpan('herald.send.commit', {}, rpc);
      try {
        return await work();
      } catch (error) {
        throw failed(span, error);
      } finally {
        span.end();
      }
    },
  };
}

/** Marks the span failed by the error's kind only: a database's message may quote the values it refused. */
function failed(span: Span, error: unknown): unknown {
  span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.name : 'error' });
  return error;
}
