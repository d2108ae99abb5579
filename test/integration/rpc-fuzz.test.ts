// Property tests: whatever a client sends — arbitrary bytes, or arbitrary well-typed messages with every
// field anywhere in its range — to any RPC over any protocol (Connect, gRPC-Web, gRPC on the main port, and
// native gRPC on the gRPC port), the answer is never INTERNAL or UNKNOWN: a client's mistake is named as one. Runs on the embedded engine (the property is about
// the API layer; the storage paths it reaches are the same code on PostgreSQL).
import http2 from 'node:http2';
import net from 'node:net';
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
/** 'native-grpc' is gRPC to the native gRPC port (@grpc/grpc-js); the others go to the main port. */
const protocols = ['connect', 'grpc-web', 'grpc', 'native-grpc'] as const;
type Protocol = (typeof protocols)[number];
/** A streaming call that is still open after this long was accepted: good enough. */
const STREAM_GRACE_MS = 300;
/** A unary call must answer within this; one that does not fails the property. */
const UNARY_DEADLINE_MS = 10_000;
const FORBIDDEN = new Set([Code.Internal, Code.Unknown]);

/** One envelope; `compressed` sets the flag that says its data is compressed. */
function envelope(data: Uint8Array, compressed = false): Uint8Array {
  const out = new Uint8Array(5 + data.length);
  out[0] = compressed ? 1 : 0;
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
  /** An admin key, a send key, a read key or a user token: each reaches different checks first. */
  let credentials: string[] = [];
  beforeAll(async () => {
    server = await startTestServer(pgliteEngine);
    credentials = [
      server.adminKey,
      await server.keyWith('send'),
      await server.keyWith('read'),
      await server.userToken('fuzz-user'),
    ];
  });
  afterAll(() => server?.stop());

  const path = (method: DescMethod) => `/${method.parent.typeName}/${method.name}`;
  const streaming = (method: DescMethod) => method.methodKind === 'server_streaming';

  interface RawRequest {
    /** The whole request body (already enveloped where the protocol envelopes). */
    body: Uint8Array;
    /** Names gzip as the request's compression (the body is not gzip at all). */
    gzip: boolean;
    credential: string;
  }

  /** Sends raw bytes; resolves to the answer's code. Only a server stream may still be open at its grace. */
  async function rawCall(protocol: Protocol, method: DescMethod, request: RawRequest): Promise<Code | 'ok'> {
    if (protocol === 'grpc') return rawGrpcCall(server.url, method, request);
    if (protocol === 'native-grpc') return rawGrpcCall(server.grpcUrl, method, request);
    const unary = protocol === 'connect' && !streaming(method);
    const headers: Record<string, string> = {
      'content-type':
        protocol === 'grpc-web'
          ? 'application/grpc-web+proto'
          : unary
            ? 'application/proto'
            : 'application/connect+proto',
      authorization: `Bearer ${request.credential}`,
    };
    if (request.gzip) {
      headers[
        protocol === 'grpc-web' ? 'grpc-encoding' : unary ? 'content-encoding' : 'connect-content-encoding'
      ] = 'gzip';
    }
    const signal = AbortSignal.timeout(streaming(method) ? STREAM_GRACE_MS : UNARY_DEADLINE_MS);
    try {
      const res = await fetch(`${server.url}${path(method)}`, {
        method: 'POST',
        headers,
        body: request.body.slice().buffer,
        signal,
      });
      const answer = new Uint8Array(await res.arrayBuffer());
      if (unary) {
        if (res.status === 200) return 'ok';
        return codeFromName((JSON.parse(Buffer.from(answer).toString('utf8')) as { code: string }).code);
      }
      return codeInEnvelopes(answer, protocol);
    } catch (error) {
      if (signal.aborted && streaming(method)) return 'ok'; // a stream still open: the request was accepted
      throw error;
    }
  }

  function rawGrpcCall(baseUrl: string, method: DescMethod, request: RawRequest): Promise<Code | 'ok'> {
    return new Promise((resolve, reject) => {
      const session = http2.connect(baseUrl);
      session.on('error', reject);
      const req = session.request({
        ':method': 'POST',
        ':path': path(method),
        'content-type': 'application/grpc+proto',
        te: 'trailers',
        authorization: `Bearer ${request.credential}`,
        ...(request.gzip ? { 'grpc-encoding': 'gzip' } : {}),
      });
      let status: string | undefined;
      let cancelled = false;
      req.on('response', (headers) => {
        status ??= headers['grpc-status'] as string | undefined;
      });
      req.on('trailers', (trailers) => {
        status = trailers['grpc-status'] as string | undefined;
      });
      req.on('data', () => {});
      const timer = setTimeout(
        () => {
          cancelled = true;
          req.close(http2.constants.NGHTTP2_CANCEL);
        },
        streaming(method) ? STREAM_GRACE_MS : UNARY_DEADLINE_MS,
      );
      req.on('close', () => {
        clearTimeout(timer);
        session.close();
        if (cancelled && !streaming(method)) reject(new Error(`${path(method)}: no answer in time`));
        else resolve(status === undefined || status === '0' ? 'ok' : (Number(status) as Code));
      });
      req.end(request.body);
    });
  }

  /** Raw HTTP/1.x bytes to the server; resolves to the status line of its answer. */
  function rawHttp1(request: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(Number(new URL(server.url).port), '127.0.0.1', () => socket.write(request));
      let answer = '';
      socket.on('data', (chunk) => {
        answer += chunk.toString('latin1');
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(answer.split('\r\n', 1)[0] ?? ''));
      socket.setTimeout(5_000, () => socket.destroy());
    });
  }

  it('answers 400 to a request whose Host or :authority is no authority, and keeps serving', async () => {
    const path = '/grpc.health.v1.Health/Check';
    expect(await rawHttp1(`POST ${path} HTTP/1.1\r\nHost: [\r\ncontent-length: 0\r\n\r\n`)).toBe(
      'HTTP/1.1 400 Bad Request',
    );
    expect(await rawHttp1(`POST ${path} HTTP/1.0\r\ncontent-length: 0\r\n\r\n`)).toMatch(
      /^HTTP\/1\.[01] 400/,
    );
    for (const authority of ['[', 'a:b:c', '%zz']) {
      const session = http2.connect(server.url);
      const req = session.request({ ':method': 'POST', ':path': path, ':authority': authority });
      const status = await new Promise<number | undefined>((resolve) => {
        req.on('response', (headers) => resolve(Number(headers[':status'])));
        req.on('error', () => resolve(undefined));
        req.end();
      });
      expect(status).toBe(400);
      session.close();
    }
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it('never answers INTERNAL or UNKNOWN to arbitrary bytes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...methods),
        fc.constantFrom(...protocols),
        fc.uint8Array({ maxLength: 200 }),
        fc.constantFrom('raw', 'enveloped', 'flagged compressed') as fc.Arbitrary<string>,
        fc.boolean(),
        fc.nat(3),
        async (method, protocol, bytes, framing, gzip, who) => {
          const rawConnectUnary = protocol === 'connect' && !streaming(method);
          const body =
            framing === 'raw' || rawConnectUnary ? bytes : envelope(bytes, framing === 'flagged compressed');
          const code = await rawCall(protocol, method, { body, gzip, credential: credentials[who]! });
          expect(FORBIDDEN.has(code as Code), `${protocol} ${path(method)}: ${code}`).toBe(false);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('never answers INTERNAL or UNKNOWN to arbitrary well-typed messages', async () => {
    const transports = credentials.map((credential) =>
      Object.fromEntries(
        protocols.map((p) => {
          const auth = credential.startsWith('hk_') ? { apiKey: credential } : { token: credential };
          const to =
            p === 'native-grpc'
              ? { baseUrl: server.grpcUrl, protocol: 'grpc' as const }
              : { baseUrl: server.url, protocol: p };
          return [p, createHeraldTransport({ ...to, ...auth })];
        }),
      ),
    );
    await fc.assert(
      fc.asyncProperty(
        fc
          .constantFrom(...methods)
          .chain((method) =>
            fc.tuple(
              fc.constant(method),
              arbitraryMessage(method.input),
              fc.constantFrom(...protocols),
              fc.nat(credentials.length - 1),
            ),
          ),
        async ([method, message, protocol, who]) => {
          const transport = transports[who]![protocol]!;
          const signal = AbortSignal.timeout(streaming(method) ? STREAM_GRACE_MS : UNARY_DEADLINE_MS);
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
            // Only a server stream may still be open when its grace runs out; a unary call must have answered.
            if (signal.aborted && !streaming(method)) throw new Error(`${path(method)}: no answer in time`);
            code = signal.aborted ? 'ok' : ConnectError.from(error).code;
          }
          expect(FORBIDDEN.has(code as Code), `${protocol} ${path(method)}: ${code}`).toBe(false);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
