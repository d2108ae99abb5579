// An OpenTelemetry collector for tests: OTLP/HTTP on 127.0.0.1 taking POST /v1/traces in JSON (what
// @opentelemetry/exporter-trace-otlp-http sends), keeping every span with its resource's service name and its
// attributes flattened to plain values. Anything else (another path, protobuf, a body that is not an export
// request) is answered 4xx and recorded as a problem, so a test sees it instead of a silently empty trace.
import { createServer } from 'node:http';
import { z } from 'zod';
import { arrivals } from './arrivals.js';

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** '' for a root span. */
  parentSpanId: string;
  name: string;
  /** OTLP's SpanKind: 2 SERVER, 3 CLIENT, 1 INTERNAL. */
  kind: number;
  attributes: Record<string, string | number | boolean>;
  /** OTLP's status code: 0 unset, 1 ok, 2 error. */
  status: { code: number; message: string };
  serviceName: string;
}

export interface OtlpReceiver {
  /** The base endpoint, as OTEL_EXPORTER_OTLP_ENDPOINT takes it: http://127.0.0.1:PORT */
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** Requests refused, as `METHOD path: why`. */
  readonly problems: string[];
  waitFor(predicate: (spans: readonly ReceivedSpan[]) => boolean, timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

const anyValue = z.object({
  stringValue: z.string().optional(),
  boolValue: z.boolean().optional(),
  // int64 may come as a decimal string.
  intValue: z.union([z.number(), z.string()]).optional(),
  doubleValue: z.number().optional(),
});
const attributes = z.array(z.object({ key: z.string(), value: anyValue })).default([]);
const exportRequest = z.object({
  resourceSpans: z.array(
    z.object({
      resource: z.object({ attributes }).optional(),
      scopeSpans: z.array(
        z.object({
          spans: z.array(
            z.object({
              traceId: z.string(),
              spanId: z.string(),
              parentSpanId: z.string().optional(),
              name: z.string(),
              kind: z.number(),
              attributes,
              status: z.object({ code: z.number().optional(), message: z.string().optional() }).optional(),
            }),
          ),
        }),
      ),
    }),
  ),
});

function flatten(list: z.infer<typeof attributes>): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of list) {
    const v = value.stringValue ?? value.boolValue ?? value.doubleValue ?? value.intValue;
    if (v !== undefined) out[key] = typeof v === 'string' && value.intValue === v ? Number(v) : v;
  }
  return out;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const log = arrivals<ReceivedSpan>('otlp receiver');
  const problems: string[] = [];

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const refuse = (status: number, why: string) => {
        problems.push(`${req.method} ${req.url}: ${why}`);
        res.writeHead(status).end();
      };
      if (req.method !== 'POST' || req.url !== '/v1/traces') return refuse(404, 'not POST /v1/traces');
      if (!req.headers['content-type']?.startsWith('application/json')) {
        return refuse(415, `content-type ${req.headers['content-type']}`);
      }
      let parsed: ReturnType<typeof exportRequest.safeParse>;
      try {
        parsed = exportRequest.safeParse(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        return refuse(400, 'not JSON');
      }
      if (!parsed.success) return refuse(400, parsed.error.message);
      for (const { resource, scopeSpans } of parsed.data.resourceSpans) {
        const serviceName = String(flatten(resource?.attributes ?? [])['service.name'] ?? '');
        for (const span of scopeSpans.flatMap((s) => s.spans)) {
          log.record({
            traceId: span.traceId,
            spanId: span.spanId,
            parentSpanId: span.parentSpanId ?? '',
            name: span.name,
            kind: span.kind,
            attributes: flatten(span.attributes),
            status: { code: span.status?.code ?? 0, message: span.status?.message ?? '' },
            serviceName,
          });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('otlp receiver: not on a TCP port');

  return {
    url: `http://127.0.0.1:${address.port}`,
    spans: log.received,
    problems,
    waitFor: log.waitFor,
    close() {
      return new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}
