// An OpenTelemetry collector for tests: OTLP/HTTP on 127.0.0.1 taking POST /v1/traces with protobuf bodies
// (application/x-protobuf, what @opentelemetry/exporter-trace-otlp-proto sends) or JSON ones (application/json,
// @opentelemetry/exporter-trace-otlp-http's), keeping every span with its resource's service name, its resource's
// and its own attributes flattened to plain values, ids as lowercase hex whichever the encoding, and the content
// type of every export. Anything else (another path or content type, a body that is not an export request) is
// answered 4xx and recorded as a problem, so a test sees it instead of a silently empty trace. `failWith` makes
// it a collector that turns every export down (spans not kept, not a problem).
//
// Protobuf is decoded by hand over @bufbuild/protobuf's wire reader (already Herald's dependency): the OTLP
// packages in node_modules ship no generated code, only a hand-written request encoder and response decoder,
// and no .proto files. Only the fields the tests read are decoded, into the shape OTLP/JSON has, then checked by
// the same schema as JSON bodies.
import { createServer } from 'node:http';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
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
  /** The resource's attributes (service.name, service.instance.id, host.name, ...). */
  resource: Record<string, string | number | boolean>;
}

export interface OtlpReceiver {
  /** The base endpoint, as OTEL_EXPORTER_OTLP_ENDPOINT takes it: http://127.0.0.1:PORT */
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** The content type of each export request decoded, in arrival order (`failWith`'s refused ones too). */
  readonly contentTypes: ExportContentType[];
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

type ExportRequest = z.input<typeof exportRequest>;
type ReceivedAttribute = NonNullable<z.input<typeof attributes>>[number];

export type ExportContentType = 'application/json' | 'application/x-protobuf';

/**
 * Reads one protobuf message, calling the handler of each field it has (by field number); other fields are
 * skipped. A field of the wrong wire type is an error: the body is not what it claims to be.
 */
function readMessage(
  bytes: Uint8Array,
  handlers: Record<number, [WireType, (reader: BinaryReader) => void]>,
) {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    const handler = handlers[no];
    if (handler === undefined) {
      reader.skip(wireType, no);
      continue;
    }
    if (handler[0] !== wireType) throw new Error(`field ${no} has wire type ${wireType}, not ${handler[0]}`);
    handler[1](reader);
  }
}

const LEN = WireType.LengthDelimited;
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

/** opentelemetry.proto.common.v1.KeyValue: the scalar values only, as the JSON schema keeps them. */
function readKeyValue(bytes: Uint8Array): ReceivedAttribute {
  const kv: ReceivedAttribute = { key: '', value: {} };
  readMessage(bytes, {
    1: [LEN, (r) => (kv.key = r.string())],
    2: [
      LEN,
      (r) =>
        readMessage(r.bytes(), {
          1: [LEN, (v) => (kv.value.stringValue = v.string())],
          2: [WireType.Varint, (v) => (kv.value.boolValue = v.bool())],
          // int64, as OTLP/JSON writes it: a decimal string.
          3: [WireType.Varint, (v) => (kv.value.intValue = String(v.int64()))],
          4: [WireType.Bit64, (v) => (kv.value.doubleValue = v.double())],
        }),
    ],
  });
  return kv;
}

/** opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest, in OTLP/JSON's shape (ids in hex). */
function decodeProtobuf(body: Uint8Array): ExportRequest {
  const request: ExportRequest = { resourceSpans: [] };
  readMessage(body, {
    1: [
      LEN,
      (r) => {
        const resourceSpans: ExportRequest['resourceSpans'][number] = { scopeSpans: [] };
        request.resourceSpans.push(resourceSpans);
        readMessage(r.bytes(), {
          1: [
            LEN,
            (res) => {
              const resourceAttributes: ReceivedAttribute[] = [];
              resourceSpans.resource = { attributes: resourceAttributes };
              readMessage(res.bytes(), { 1: [LEN, (a) => resourceAttributes.push(readKeyValue(a.bytes()))] });
            },
          ],
          2: [
            LEN,
            (ss) => {
              const spans: ExportRequest['resourceSpans'][number]['scopeSpans'][number]['spans'] = [];
              resourceSpans.scopeSpans.push({ spans });
              readMessage(ss.bytes(), { 2: [LEN, (s) => spans.push(readSpan(s.bytes()))] });
            },
          ],
        });
      },
    ],
  });
  return request;
}

/** opentelemetry.proto.trace.v1.Span: ids, name, kind, attributes and status. */
function readSpan(bytes: Uint8Array) {
  const attributeList: ReceivedAttribute[] = [];
  const status: { code?: number; message?: string } = {};
  const span = {
    traceId: '',
    spanId: '',
    parentSpanId: '',
    name: '',
    kind: 0,
    attributes: attributeList,
    status,
  };
  readMessage(bytes, {
    1: [LEN, (r) => (span.traceId = hex(r.bytes()))],
    2: [LEN, (r) => (span.spanId = hex(r.bytes()))],
    4: [LEN, (r) => (span.parentSpanId = hex(r.bytes()))],
    5: [LEN, (r) => (span.name = r.string())],
    6: [WireType.Varint, (r) => (span.kind = r.int32())],
    9: [LEN, (r) => attributeList.push(readKeyValue(r.bytes()))],
    15: [
      LEN,
      (r) =>
        readMessage(r.bytes(), {
          2: [LEN, (v) => (status.message = v.string())],
          3: [WireType.Varint, (v) => (status.code = v.int32())],
        }),
    ],
  });
  return span;
}

function flatten(list: z.infer<typeof attributes>): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of list) {
    const v = value.stringValue ?? value.boolValue ?? value.doubleValue ?? value.intValue;
    if (v !== undefined) out[key] = typeof v === 'string' && value.intValue === v ? Number(v) : v;
  }
  return out;
}

export async function startOtlpReceiver(
  options: {
    /** Answer every export with this status and body, as a collector that refuses the data. */
    failWith?: { status: number; body: string };
  } = {},
): Promise<OtlpReceiver> {
  const log = arrivals<ReceivedSpan>('otlp receiver');
  const problems: string[] = [];
  const contentTypes: ExportContentType[] = [];

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const refuse = (status: number, why: string) => {
        problems.push(`${req.method} ${req.url}: ${why}`);
        res.writeHead(status).end();
      };
      if (req.method !== 'POST' || req.url !== '/v1/traces') return refuse(404, 'not POST /v1/traces');
      const contentType = req.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
      if (contentType !== 'application/json' && contentType !== 'application/x-protobuf') {
        return refuse(415, `content-type ${req.headers['content-type']}`);
      }
      const body = Buffer.concat(chunks);
      let parsed: ReturnType<typeof exportRequest.safeParse>;
      try {
        parsed = exportRequest.safeParse(
          contentType === 'application/json' ? JSON.parse(body.toString('utf8')) : decodeProtobuf(body),
        );
      } catch (error) {
        return refuse(
          400,
          contentType === 'application/json' ? 'not JSON' : `not protobuf: ${(error as Error).message}`,
        );
      }
      if (!parsed.success) return refuse(400, parsed.error.message);
      contentTypes.push(contentType);
      if (options.failWith) {
        res
          .writeHead(options.failWith.status, { 'content-type': 'application/json' })
          .end(options.failWith.body);
        return;
      }
      for (const { resource, scopeSpans } of parsed.data.resourceSpans) {
        const resourceAttributes = flatten(resource?.attributes ?? []);
        const serviceName = String(resourceAttributes['service.name'] ?? '');
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
            resource: resourceAttributes,
          });
        }
      }
      // An empty ExportTraceServiceResponse, in the request's encoding (the exporter decodes it).
      if (contentType === 'application/json') res.writeHead(200, { 'content-type': contentType }).end('{}');
      else res.writeHead(200, { 'content-type': contentType }).end();
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
    contentTypes,
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
