// Prometheus metrics (prom-client). One registry per server instance, so tests running several servers in
// one process do not share counters.
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

  const interceptor: Interceptor = (next) => async (req) => {
    const stop = duration.startTimer();
    const method = `${req.service.typeName}/${req.method.name}`;
    let code = 'ok';
    try {
      return await next(req);
    } catch (error) {
      code = Code[ConnectError.from(error).code].replace(
        /[A-Z]/g,
        (c, i) => (i ? '_' : '') + c.toLowerCase(),
      );
      throw error;
    } finally {
      requests.inc({ method, code });
      stop({ method, code });
    }
  };
  return { registry, interceptor };
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
