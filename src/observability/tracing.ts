// OpenTelemetry traces, exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set. Unset, nothing is built: no provider, no interceptor, no spans;
// callers hold `undefined` and skip. The SDK and the exporter are only imported when tracing is on, and only
// the exporter of the protocol configured: @opentelemetry/exporter-trace-otlp-proto for http/protobuf (the
// default), @opentelemetry/exporter-trace-otlp-http for http/json.
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
// grpc.health.v1.Health RPCs make no span: load balancers and Kubernetes probe them every few seconds.
//
// Built this way, the SDK reads none of OpenTelemetry's environment variables (the exporter reads its headers,
// timeout, compression and certificates): config.ts reads the others (OTEL_SDK_DISABLED, the protocol,
// OTEL_TRACES_SAMPLER, OTEL_RESOURCE_ATTRIBUTES, ...) and this builds the exporter, the sampler and the resource
// from them. The resource also names this instance (service.instance.id, a random UUID per start; host.name;
// process.pid), so the spans of several instances can be told apart.
//
// Each server has its own provider and tracer, passed down explicitly (tests run several servers in one
// process): nothing is registered globally, except the one thing OpenTelemetry only has globally, its
// diagnostic logger (diag), which is how the exporter reports failed exports. It is set once per process and
// forwards WARN and ERROR to the logger of the most recently started tracing still running (at most one line
// per 30 s each, with a count of those left out), reduced to the error's name, code and message: never a span,
// a response body or the further arguments the SDK passes.

import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Code, ConnectError, createContextKey, type Interceptor } from '@connectrpc/connect';
import {
  type Context,
  type DiagLogger,
  DiagLogLevel,
  defaultTextMapGetter,
  defaultTextMapSetter,
  diag,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type { Sampler } from '@opentelemetry/sdk-trace';
import type { TracingConfig } from '../config.js';
import type { Outcome } from '../delivery/provider.js';
import type { ClaimedDelivery } from '../store/deliveries.js';
import type { SendTrace } from '../store/send.js';
import type { Logger } from './logger.js';

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

/** At most one log line per this long for the SDK's problems (a collector away fails every batch). */
export const DIAG_LOG_INTERVAL_MS = 30_000;

/** The standard health service: probed every few seconds by load balancers, never traced. */
const HEALTH_SERVICE = 'grpc.health.v1.Health';

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

export async function startTracing(config: TracingConfig, logger: Logger): Promise<Tracing> {
  const [
    { W3CTraceContextPropagator },
    { OTLPTraceExporter },
    { defaultResource, resourceFromAttributes },
    sdk,
  ] = await Promise.all([
    import('@opentelemetry/core'),
    config.protocol === 'http/json'
      ? import('@opentelemetry/exporter-trace-otlp-http')
      : import('@opentelemetry/exporter-trace-otlp-proto'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/sdk-trace'),
  ]);
  // First: the exporter warns through diag about settings of its own it cannot use (OTEL_EXPORTER_OTLP_TIMEOUT).
  const problems = problemLog(logger);
  forwardDiagnostics();
  diagSinks.push(problems);
  const propagator = new W3CTraceContextPropagator();
  // OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT and _COMPRESSION are read by the exporter itself.
  const exporter = new OTLPTraceExporter({ url: config.tracesUrl });
  // Later attributes win: OTEL_RESOURCE_ATTRIBUTES over Herald's own, the service name over everything.
  const resource = defaultResource()
    .merge(
      resourceFromAttributes({
        'service.instance.id': randomUUID(),
        'host.name': hostname(),
        'process.pid': process.pid,
      }),
    )
    .merge(resourceFromAttributes(config.resourceAttributes))
    .merge(resourceFromAttributes({ 'service.name': config.serviceName }));
  const provider = new sdk.TracerProvider({
    resource,
    sampler: samplerOf(sdk, config.sampler),
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
    if (service === HEALTH_SERVICE) return next(req);
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
      const flushed = await Promise.race([
        provider.shutdown().then(
          () => true,
          (error: unknown) => {
            // The last batch's failure comes here, not through diag: logged whatever the rate limit.
            problems.report('warn', [error], true);
            return true;
          },
        ),
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), SHUTDOWN_FLUSH_MS);
        }),
      ]);
      clearTimeout(timer);
      if (!flushed)
        problems.report('warn', [`the last spans were not exported within ${SHUTDOWN_FLUSH_MS} ms`], true);
      problems.close();
      const at = diagSinks.indexOf(problems);
      if (at >= 0) diagSinks.splice(at, 1);
    },
  };
}

type Sdk = typeof import('@opentelemetry/sdk-trace');

/** OTEL_TRACES_SAMPLER's sampler, as the specification defines each value. */
function samplerOf(sdk: Sdk, { name, ratio = 1 }: TracingConfig['sampler']): Sampler {
  switch (name) {
    case 'always_on':
      return new sdk.AlwaysOnSampler();
    case 'always_off':
      return new sdk.AlwaysOffSampler();
    case 'traceidratio':
      return new sdk.TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_on':
      return new sdk.ParentBasedSampler({ root: new sdk.AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new sdk.ParentBasedSampler({ root: new sdk.AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new sdk.ParentBasedSampler({ root: new sdk.TraceIdRatioBasedSampler(ratio) });
  }
}

/** One tracing's log of the SDK's problems, rate-limited. */
interface ProblemLog {
  /** `args` as diag got them; `always` bypasses the rate limit (shutdown's own findings). */
  report(level: 'warn' | 'error', args: unknown[], always?: boolean): void;
  /** Nothing more is logged (a flush still running past shutdown's wait). */
  close(): void;
}

function problemLog(logger: Logger): ProblemLog {
  let last = Number.NEGATIVE_INFINITY;
  let suppressed = 0;
  let closed = false;
  return {
    report(level, args, always = false) {
      if (closed) return;
      const now = performance.now();
      if (!always && now - last < DIAG_LOG_INTERVAL_MS) {
        suppressed += 1;
        return;
      }
      last = now;
      logger[level](
        { problem: describeProblem(args), ...(suppressed > 0 ? { suppressed } : {}) },
        'traces: OpenTelemetry reported a problem; spans may be lost',
      );
      suppressed = 0;
    },
    close() {
      closed = true;
    },
  };
}

/** The tracings running, oldest first; diag's lines go to the newest. */
const diagSinks: ProblemLog[] = [];
let diagForwarding = false;

/** Sets OpenTelemetry's global diagnostic logger, once per process (see the top of this file). */
function forwardDiagnostics(): void {
  if (diagForwarding) return;
  diagForwarding = true;
  const ignore = () => {};
  const forwarder: DiagLogger = {
    error: (...args) => diagSinks.at(-1)?.report('error', args),
    warn: (...args) => diagSinks.at(-1)?.report('warn', args),
    info: ignore,
    debug: ignore,
    verbose: ignore,
  };
  diag.setLogger(forwarder, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
}

const PROBLEM_CHARS = 300;

/**
 * What may be logged of a diag call: its message only, never the further arguments (a response body, an
 * exception with the request). A component's logger passes its name first. An error reaches diag through the
 * SDK's global error handler as JSON of every property, the collector's response body (`data`) and the stack
 * among them: only its name, code and message are kept.
 */
export function describeProblem(args: unknown[]): string {
  let [first, second] = args;
  if (typeof first === 'string' && /^\w+$/.test(first) && typeof second === 'string') {
    first = `${first}: ${second}`;
  }
  let text: string;
  if (first instanceof Error) {
    text = errorText(first as unknown as Record<string, unknown>);
  } else {
    text = String(first);
    if (text.startsWith('{')) {
      try {
        const parsed: unknown = JSON.parse(text);
        if (parsed && typeof parsed === 'object') text = errorText(parsed as Record<string, unknown>);
      } catch {
        // Not JSON: the message as it is.
      }
    }
  }
  return text.length > PROBLEM_CHARS ? `${text.slice(0, PROBLEM_CHARS)}…` : text;
}

function errorText(error: Record<string, unknown>): string {
  const field = (key: string) => {
    const value = error[key];
    return typeof value === 'string' || typeof value === 'number' ? String(value) : '';
  };
  const name = field('name') || 'Error';
  const code = field('code');
  return `${name}${code ? ` (${code})` : ''}: ${field('message')}`;
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
