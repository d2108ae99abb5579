// Property tests: whatever a client sends — arbitrary bytes, or arbitrary well-typed messages with every
// field anywhere in its range — to any RPC over any protocol (Connect, gRPC-Web, gRPC), the answer is never
// INTERNAL or UNKNOWN: a client's mistake is named as one. Runs on the embedded engine (the property is about
// the API layer; the storage paths it reaches are the same code on PostgreSQL).
import http2 from 'node:http2';
import type { DescMethod, DescMethodServerStreaming, DescMethodUnary, DescService } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { createAsyncIterable } from '@connectrpc/connect/protocol';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminService, createHeraldTransport, NotificationService } from '../../clients/node/index.js';
import { Health } from '../../gen/grpc/health/v1/health_pb.js';
import { arbitraryMessage } from '../support/arbitrary-message.js';
import { pgliteEngine } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';

const services: DescService[] = [NotificationService, AdminService, Health];
const methods: DescMethod[] = services.flatMap((s) => s.methods);
const protocols = ['connect', 'grpc-web', 'grpc'] as const;
type Protocol = (typeof protocols)[number];
/** A streaming call that is still open after this long was accepted: good enough. */
const STREAM_GRACE_MS = 300;
const FORBIDDEN = new Set([Code.Internal, Code.Unknown]);

function envelope(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + data.length);
  new DataView(out.buffer).setUint32(1, data.length);
  out.set(data, 5);
  return out;
}

/** The grpc-status in a gRPC-Web body's trailer envelope, or in the Connect end-stream error. */
function codeInEnvelopes(body: Uint8Array, protocol: 'connect' | 'grpc-web'): Code | 'ok' {
  let offset = 0;
  while (offset + 5 <= body.length) {
    const flags = body[offset]!;
    const length = new DataView(body.buffer, body.byteOffset + offset + 1, 4).getUint32(0);
    const text = Buffer.from(body.subarray(offset + 5, offset + 5 + length)).toString('utf8');
    if (protocol === 'grpc-web' && flags & 0x80) {
      const status = /grpc-status:\s*(\d+)/i.exec(text)?.[1];
      return status === undefined || status === '0' ? 'ok' : (Number(status) as Code);
    }
    if (protocol === 'connect' && flags & 0x02) {
      const code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
      return code ? ConnectError.from(new ConnectError('', codeFromName(code))).code : 'ok';
    }
    offset += 5 + length;
  }
  return 'ok';
}

const isUnary = (method: DescMethod): method is DescMethodUnary => method.methodKind === 'unary';
const isServerStreaming = (method: DescMethod): method is DescMethodServerStreaming =>
  method.methodKind === 'server_streaming';

function codeFromName(name: string): Code {
  const camel = name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  const key = (camel[0]!.toUpperCase() + camel.slice(1)) as keyof typeof Code;
  return Code[key] ?? Code.Unknown;
}

describe('RPCs under arbitrary input', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(pgliteEngine);
  });
  afterAll(() => server?.stop());

  const path = (method: DescMethod) => `/${method.parent.typeName}/${method.name}`;
  const streaming = (method: DescMethod) => method.methodKind === 'server_streaming';

  /** Sends `bytes` as the whole request body (already enveloped where the protocol envelopes). */
  async function rawCall(protocol: Protocol, method: DescMethod, body: Uint8Array): Promise<Code | 'ok'> {
    const signal = AbortSignal.timeout(STREAM_GRACE_MS);
    if (protocol === 'grpc') return rawGrpcCall(method, body);
    const contentType =
      protocol === 'grpc-web'
        ? 'application/grpc-web+proto'
        : streaming(method)
          ? 'application/connect+proto'
          : 'application/proto';
    try {
      const res = await fetch(`${server.url}${path(method)}`, {
        method: 'POST',
        headers: { 'content-type': contentType, authorization: `Bearer ${server.adminKey}` },
        body: body.slice().buffer,
        signal,
      });
      const answer = new Uint8Array(await res.arrayBuffer());
      if (protocol === 'connect' && !streaming(method)) {
        if (res.status === 200) return 'ok';
        return codeFromName((JSON.parse(Buffer.from(answer).toString('utf8')) as { code: string }).code);
      }
      return codeInEnvelopes(answer, protocol);
    } catch (error) {
      if (signal.aborted) return 'ok'; // a stream still open: the request was accepted
      throw error;
    }
  }

  function rawGrpcCall(method: DescMethod, body: Uint8Array): Promise<Code | 'ok'> {
    return new Promise((resolve, reject) => {
      const session = http2.connect(server.url);
      session.on('error', reject);
      const req = session.request({
        ':method': 'POST',
        ':path': path(method),
        'content-type': 'application/grpc+proto',
        te: 'trailers',
        authorization: `Bearer ${server.adminKey}`,
      });
      let status: string | undefined;
      req.on('response', (headers) => {
        status ??= headers['grpc-status'] as string | undefined;
      });
      req.on('trailers', (trailers) => {
        status = trailers['grpc-status'] as string | undefined;
      });
      req.on('data', () => {});
      const timer = setTimeout(() => req.close(http2.constants.NGHTTP2_CANCEL), STREAM_GRACE_MS);
      req.on('close', () => {
        clearTimeout(timer);
        session.close();
        resolve(status === undefined || status === '0' ? 'ok' : (Number(status) as Code));
      });
      req.end(body);
    });
  }

  it('never answers INTERNAL or UNKNOWN to arbitrary bytes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...methods),
        fc.constantFrom(...protocols),
        fc.uint8Array({ maxLength: 200 }),
        fc.boolean(),
        async (method, protocol, bytes, enveloped) => {
          const rawConnectUnary = protocol === 'connect' && !streaming(method);
          const body = enveloped && !rawConnectUnary ? envelope(bytes) : bytes;
          const code = await rawCall(protocol, method, body);
          expect(FORBIDDEN.has(code as Code), `${protocol} ${path(method)}: ${code}`).toBe(false);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('never answers INTERNAL or UNKNOWN to arbitrary well-typed messages', async () => {
    const transports = Object.fromEntries(
      protocols.map((p) => [
        p,
        createHeraldTransport({ baseUrl: server.url, apiKey: server.adminKey, protocol: p }),
      ]),
    );
    await fc.assert(
      fc.asyncProperty(
        fc
          .constantFrom(...methods)
          .chain((method) =>
            fc.tuple(fc.constant(method), arbitraryMessage(method.input), fc.constantFrom(...protocols)),
          ),
        async ([method, message, protocol]) => {
          const transport = transports[protocol]!;
          const signal = AbortSignal.timeout(STREAM_GRACE_MS);
          let code: Code | 'ok' = 'ok';
          try {
            if (isServerStreaming(method)) {
              const res = await transport.stream(
                method,
                signal,
                undefined,
                undefined,
                createAsyncIterable([message]),
              );
              for await (const _ of res.message) break;
            } else if (isUnary(method)) {
              await transport.unary(method, signal, undefined, undefined, message);
            }
          } catch (error) {
            code = signal.aborted ? 'ok' : ConnectError.from(error).code;
          }
          expect(FORBIDDEN.has(code as Code), `${protocol} ${path(method)}: ${code}`).toBe(false);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
