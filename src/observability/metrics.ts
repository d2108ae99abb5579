// Prometheus metrics (prom-client). One registry per server instance, so tests running several servers in
// one process do not share counters.
import type { DescMethod } from '@bufbuild/protobuf';
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

export interface Metrics {
  readonly registry: Registry;
  readonly interceptor: Interceptor;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const labelNames = ['method', 'code'] as const;
  const requests = new Counter({
    name: 'herald_rpc_requests_total',
    help: 'RPCs handled, by method and gRPC status code.',
    labelNames,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'herald_rpc_duration_seconds',
    help: 'RPC latency until the response (for streams: until the stream opens), by method and code.',
    labelNames,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });

  // The labelled children, made once per method and code: looking them up by a labels object on every call
  // (hashing the labels) costs more than the RPC stack itself on a no-op call.
  type Children = { requests: Counter.Internal; duration: Histogram.Internal<'method' | 'code'> };
  const children = new WeakMap<DescMethod, Map<string, Children>>();
  const record = (descMethod: DescMethod, code: string, started: number) => {
    let byCode = children.get(descMethod);
    if (!byCode) {
      byCode = new Map();
      children.set(descMethod, byCode);
    }
    let child = byCode.get(code);
    if (!child) {
      const labels = { method: methodName(descMethod), code };
      child = { requests: requests.labels(labels), duration: duration.labels(labels) };
      byCode.set(code, child);
    }
    child.requests.inc();
    child.duration.observe((performance.now() - started) / 1_000);
  };

  const interceptor: Interceptor = (next) => (req) => {
    const started = performance.now();
    return next(req).then(
      (res) => {
        record(req.method, 'ok', started);
        return res;
      },
      (error: unknown) => {
        record(req.method, codeName(ConnectError.from(error).code), started);
        throw error;
      },
    );
  };
  return { registry, interceptor };
}

const methodNames = new WeakMap<DescMethod, string>();

/** "package.Service/Method", as the RPC metrics and logs name a method. */
export function methodName(method: DescMethod): string {
  let name = methodNames.get(method);
  if (name === undefined) {
    name = `${method.parent.typeName}/${method.name}`;
    methodNames.set(method, name);
  }
  return name;
}

/** A gRPC code as the metrics label it: snake case (invalid_argument). */
function codeName(code: Code): string {
  return Code[code].replace(/[A-Z]/g, (c, i) => (i ? '_' : '') + c.toLowerCase());
}

/**
 * For gauges read from the shared database: one read per `ttlMs` at most, shared by every gauge that asks
 * within it (a scrape collects them together). A failed read is not kept, so the next scrape tries again.
 */
export function cachedRead<T>(read: () => Promise<T>, ttlMs: number): () => Promise<T> {
  let cached: { at: number; value: Promise<T> } | null = null;
  return () => {
    const at = performance.now();
    if (cached && at - cached.at < ttlMs) return cached.value;
    const value = read();
    cached = { at, value };
    value.catch(() => {
      cached = null;
    });
    return value;
  };
}
