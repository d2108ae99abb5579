// Plain HTTP endpoints beside the RPCs on the same port: liveness, readiness and Prometheus metrics.
import type { Registry } from 'prom-client';
import type { RequestHandler } from './listener.js';

export interface EndpointDeps {
  isReady: () => Promise<boolean>;
  /** The real-time bus is away: still ready (sessions poll PostgreSQL), but /readyz says so. */
  busDegraded: () => boolean;
  registry: Registry;
}

/** Answers /healthz, /readyz and /metrics; passes everything else to `next`. */
export function withPlainEndpoints(deps: EndpointDeps, next: RequestHandler): RequestHandler {
  return (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' || (path !== '/healthz' && path !== '/readyz' && path !== '/metrics')) {
      next(req, res);
      return;
    }
    const reply = (status: number, contentType: string, body: string) => {
      res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (path === '/healthz') return reply(200, 'application/json', '{"status":"ok"}\n');
    if (path === '/readyz') {
      void deps.isReady().then((ready) => {
        if (!ready) {
          reply(503, 'application/json', '{"status":"unavailable","reason":"database unreachable"}\n');
        } else if (deps.busDegraded()) {
          // Serving: Sends are stored and live sessions poll PostgreSQL; only the bus's speed is lost.
          reply(200, 'application/json', '{"status":"ready","bus":"degraded"}\n');
        } else reply(200, 'application/json', '{"status":"ready"}\n');
      });
      return;
    }
    void deps.registry.metrics().then(
      (text) => reply(200, deps.registry.contentType, text),
      () => reply(500, 'text/plain', 'metrics unavailable\n'),
    );
  };
}
