// The native gRPC port (@grpc/grpc-js) applies the same rules as the main port, and answers the same way:
// malformed requests, credentials, limits, deadlines, cancellation, health, metrics, and what it does not
// speak. Each case asks both ports and compares, or asks the native port what only it can get wrong.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { gzipSync } from 'node:zlib';
import { create, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHeraldTransport, NotificationService, SendRequestSchema } from '../../clients/node/index.js';
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '../../gen/grpc/health/v1/health_pb.js';
import { pgliteEngine } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from './lifecycle-process.js';

const SEND = `/${NotificationService.typeName}/${NotificationService.method.send.name}`;

interface RawAnswer {
  status: number | undefined;
  grpcStatus: string | undefined;
  grpcMessage: string;
}

/**
 * One gRPC call with exactly these headers and body bytes (already enveloped), to Send unless `path` says
 * otherwise. With `end: false` the request is never ended: the call is cancelled once the server answers.
 */
function rawGrpc(
  baseUrl: string,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array,
  { path = SEND, end = true }: { path?: string; end?: boolean } = {},
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl);
    session.on('error', reject);
    const req = session.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc+proto',
      te: 'trailers',
      ...headers,
    });
    const answer: RawAnswer = { status: undefined, grpcStatus: undefined, grpcMessage: '' };
    const read = (h: http2.IncomingHttpHeaders) => {
      if (h[':status'] !== undefined) answer.status = Number(h[':status']);
      if (h['grpc-status'] !== undefined) {
        answer.grpcStatus = String(h['grpc-status']);
        answer.grpcMessage = decodeURIComponent(String(h['grpc-message'] ?? ''));
        if (!end) req.close(http2.constants.NGHTTP2_CANCEL);
      }
    };
    req.on('response', read);
    req.on('trailers', read);
    req.on('data', () => {});
    req.on('error', reject);
    req.on('close', () => {
      session.close();
      resolve(answer);
    });
    if (end) req.end(body);
    else req.write(body);
  });
}

function envelope(data: Uint8Array, compressed = false): Buffer {
  const out = Buffer.alloc(5 + data.length);
  out[0] = compressed ? 1 : 0;
  out.writeUInt32BE(data.length, 1);
  out.set(data, 5);
  return out;
}

describe('the native gRPC port', () => {
  let server: TestServer;
  let both: { port: string; url: string }[];
  beforeAll(async () => {
    server = await startTestServer(pgliteEngine, { overrides: { HERALD_MAX_REQUEST_BYTES: '4096' } });
    both = [
      { port: 'main', url: server.url },
      { port: 'native', url: server.grpcUrl },
    ];
  });
  afterAll(() => server?.stop());

  const auth = () => ({ authorization: `Bearer ${server.adminKey}` });

  it('answers a request it cannot read INVALID_ARGUMENT, worded as on the main port', async () => {
    const cases: [string, http2.OutgoingHttpHeaders, Uint8Array][] = [
      ['not protobuf', {}, envelope(Buffer.from([0xff, 0xff, 0xff]))],
      ['compressed garbage', { 'grpc-encoding': 'gzip' }, envelope(Buffer.from('not gzip'), true)],
    ];
    for (const [what, headers, body] of cases) {
      const answers = await Promise.all(both.map(({ url }) => rawGrpc(url, { ...auth(), ...headers }, body)));
      for (const answer of answers) expect(answer.grpcStatus, what).toBe(String(Code.InvalidArgument));
      expect(answers[1]!.grpcMessage, what).toBe(answers[0]!.grpcMessage);
      expect(answers[1]!.grpcMessage, what).toMatch(/^request: /);
    }
    // A message cut short: INVALID_ARGUMENT on both ports (each in its own words).
    const truncated = Buffer.from([0, 0, 0, 0, 10, 1, 2, 3]);
    for (const { port, url } of both) {
      expect((await rawGrpc(url, auth(), truncated)).grpcStatus, port).toBe(String(Code.InvalidArgument));
    }
    // A real compressed message is read.
    const message = toBinary(
      SendRequestSchema,
      create(SendRequestSchema, { userId: 'gz', type: 't', title: 'gz' }),
    );
    const gzipped = await rawGrpc(
      server.grpcUrl,
      { ...auth(), 'grpc-encoding': 'gzip' },
      envelope(gzipSync(message), true),
    );
    expect(gzipped.grpcStatus).toBe('0');
  });

  it('answers a grpc-timeout it cannot read INVALID_ARGUMENT', async () => {
    const message = toBinary(
      SendRequestSchema,
      create(SendRequestSchema, { userId: 'u', type: 't', title: 't' }),
    );
    const answer = await rawGrpc(server.grpcUrl, { ...auth(), 'grpc-timeout': 'soon' }, envelope(message));
    expect(answer.grpcStatus).toBe(String(Code.InvalidArgument));
    expect(answer.grpcMessage).toContain('grpc-timeout');
  });

  it('asks for the same credentials and scopes, in the same words', async () => {
    const readKey = await server.keyWith('read');
    const otherUser = await server.userToken('someone');
    const calls: [string, { apiKey?: string; token?: string }, Code][] = [
      ['no credential', {}, Code.Unauthenticated],
      ['unknown key', { apiKey: `hk_${'A'.repeat(43)}` }, Code.Unauthenticated],
      ['key without send', { apiKey: readKey }, Code.PermissionDenied],
      ['user token', { token: otherUser }, Code.PermissionDenied],
    ];
    for (const [what, credential, code] of calls) {
      const errors = await Promise.all(
        both.map(({ url }) =>
          createClient(NotificationService, createHeraldTransport({ baseUrl: url, ...credential }))
            .send({ userId: 'victim', type: 't', title: 'x' })
            .then(
              () => undefined,
              (error: unknown) => ConnectError.from(error),
            ),
        ),
      );
      for (const error of errors) expect(error?.code, what).toBe(code);
      expect(errors[1]!.rawMessage, what).toBe(errors[0]!.rawMessage);
    }
  });

  it('refuses a request over HERALD_MAX_REQUEST_BYTES with RESOURCE_EXHAUSTED on both ports', async () => {
    for (const { port, url } of both) {
      const client = createClient(
        NotificationService,
        createHeraldTransport({ baseUrl: url, apiKey: server.adminKey }),
      );
      const error = await client.send({ userId: 'big', type: 't', title: 'x'.repeat(8_000) }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(error?.code, port).toBe(Code.ResourceExhausted);
    }
  });

  it('ends a stream at its deadline and when the client cancels it, and the server lets go of it', async () => {
    const client = server.client({ apiKey: server.adminKey });
    const metric = async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      return Number(/^herald_inbox_streams_open (\d+)/m.exec(text)?.[1] ?? Number.NaN);
    };
    const timedOut = await (async () => {
      try {
        for await (const _ of client.streamNotifications({ userId: 'deadline-user' }, { timeoutMs: 300 }));
        return 'ended';
      } catch (error) {
        return ConnectError.from(error).code;
      }
    })();
    expect(timedOut).toBe(Code.DeadlineExceeded);

    const controller = new AbortController();
    const open = (async () => {
      try {
        for await (const _ of client.streamNotifications(
          { userId: 'cancel-user' },
          { signal: controller.signal },
        ));
      } catch {
        // cancelled
      }
    })();
    await until('the stream is open on the server', 5_000, async () =>
      (await metric()) === 1 ? true : undefined,
    );
    controller.abort();
    await open;
    await until('the server closed it', 5_000, async () => ((await metric()) === 0 ? true : undefined));
  });

  it('answers health checks and watches, and counts its calls in the RPC metrics', async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.grpcUrl }));
    expect((await health.check({ service: '' })).status).toBe(ServingStatus.SERVING);
    const watch = health.watch({ service: '' })[Symbol.asyncIterator]();
    expect((await watch.next()).value?.status).toBe(ServingStatus.SERVING);
    await watch.return?.();
    await expect(health.check({ service: 'nope' })).rejects.toMatchObject({ code: Code.NotFound });

    const count = async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      const line =
        /^herald_rpc_requests_total\{method="grpc.health.v1.Health\/Check",code="not_found"\} (\d+)/m.exec(
          text,
        );
      return Number(line?.[1] ?? 0);
    };
    const before = await count();
    await expect(health.check({ service: 'nope' })).rejects.toMatchObject({ code: Code.NotFound });
    expect(await count()).toBe(before + 1);
  });

  it('speaks native gRPC only: HTTP/1.1 gets 505, Connect over HTTP/2 is refused, unknown methods UNIMPLEMENTED', async () => {
    const connectionsOpen = async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      return Number(/^herald_connections_open (\d+)$/m.exec(text)?.[1]);
    };
    const before = await connectionsOpen();
    const url = new URL(server.grpcUrl);
    const http1 = await new Promise<{ status: number | undefined; body: string }>((resolve, reject) => {
      http
        .get({ host: url.hostname, port: url.port, path: '/healthz' }, (res) => {
          let body = '';
          res.on('data', (chunk) => {
            body += chunk;
          });
          res.on('end', () => resolve({ status: res.statusCode, body }));
        })
        .on('error', reject);
    });
    expect(http1.status).toBe(505);
    expect(http1.body).toContain('main port');
    // The refused connection closes and stops counting against the connection caps.
    await until('the 505 connection is gone', 5_000, async () =>
      (await connectionsOpen()) <= before ? true : undefined,
    );

    const connect = await rawGrpc(
      server.grpcUrl,
      { ...auth(), 'content-type': 'application/proto' },
      new Uint8Array(),
    );
    expect(connect.status).toBe(415);

    const unknown = await rawGrpc(server.grpcUrl, {}, envelope(new Uint8Array()), {
      path: '/herald.v1.Nope/Nope',
    });
    expect(unknown.grpcStatus).toBe(String(Code.Unimplemented));
  });
});

describe('a request that does not end', () => {
  it('is answered DEADLINE_EXCEEDED after HERALD_REQUEST_TIMEOUT_MS, while a stream it opened stays open', async () => {
    const server = await startTestServer(pgliteEngine, {
      overrides: { HERALD_REQUEST_TIMEOUT_MS: '400', HERALD_HEADERS_TIMEOUT_MS: '400' },
    });
    try {
      const started = performance.now();
      // Part of an envelope, and never the end.
      const partial = await rawGrpc(
        server.grpcUrl,
        { authorization: `Bearer ${server.adminKey}` },
        envelope(new Uint8Array(3)).subarray(0, 4),
        { end: false },
      );
      expect(partial.grpcStatus).toBe(String(Code.DeadlineExceeded));
      expect(performance.now() - started).toBeGreaterThanOrEqual(350);

      // A stream of requests (reflection) that never ends is held no longer than a request may take:
      // list_services "", and the stream stays open.
      const reflection = await rawGrpc(server.grpcUrl, {}, envelope(Buffer.from([0x3a, 0x00])), {
        path: '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
        end: false,
      });
      expect(reflection.grpcStatus).toBe(String(Code.DeadlineExceeded));

      // A server stream's request ended long ago: the stream itself is not timed.
      const client = server.client({ apiKey: server.adminKey });
      const controller = new AbortController();
      const events: string[] = [];
      const stream = (async () => {
        try {
          for await (const event of client.streamNotifications(
            { userId: 'long-stream' },
            { signal: controller.signal },
          ))
            events.push(event.event.case ?? '');
        } catch (error) {
          return ConnectError.from(error).code;
        }
      })();
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      controller.abort();
      expect(await stream).toBe(Code.Canceled);
      expect(events).toContain('unreadCount');
    } finally {
      await server.stop();
    }
  });
});

describe('a gRPC port that cannot be bound', () => {
  it('fails the start and leaves nothing listening', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const free = net.createServer();
    await new Promise<void>((resolve) => free.listen(0, '127.0.0.1', resolve));
    const mainPort = (free.address() as net.AddressInfo).port;
    await new Promise((resolve) => free.close(resolve));
    try {
      await expect(
        startTestServer(pgliteEngine, {
          overrides: {
            HERALD_PORT: String(mainPort),
            HERALD_GRPC_PORT: String((taken.address() as net.AddressInfo).port),
          },
        }),
      ).rejects.toThrow(/EADDRINUSE/);
      const refused = await new Promise<string>((resolve) => {
        const socket = net.connect(mainPort, '127.0.0.1');
        socket.on('connect', () => {
          socket.destroy();
          resolve('connected');
        });
        socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
      });
      expect(refused).toBe('ECONNREFUSED');
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});

describe('connection caps', () => {
  it('count the connections of both ports together', async () => {
    const server = await startTestServer(pgliteEngine, {
      overrides: { HERALD_MAX_CONNECTIONS: '2', HERALD_PER_ADDRESS_EXEMPT_NETWORKS: 'none' },
    });
    const sessions: http2.ClientHttp2Session[] = [];
    try {
      for (const url of [server.url, server.url]) {
        const session = http2.connect(url);
        await new Promise((resolve) => session.once('remoteSettings', resolve));
        sessions.push(session);
      }
      const refused = http2.connect(server.grpcUrl);
      sessions.push(refused);
      const goaway = await new Promise<number>((resolve) => {
        refused.on('goaway', (code) => resolve(code));
        refused.on('error', () => {});
      });
      expect(goaway).toBe(http2.constants.NGHTTP2_REFUSED_STREAM);
    } finally {
      for (const session of sessions) session.destroy();
      await server.stop();
    }
  });
});
