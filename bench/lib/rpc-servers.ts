// RPC servers answering NotificationService/Send without doing any work (a constant answer, no database), each in
// a child process of its own so the load generator does not share its event loop. They differ only in the RPC
// stack, so their CPU per call is what that stack costs:
//
// - bare-http2:     a bare node:http2 handler: length prefix, fromBinary, toBinary, trailers. The floor.
// - grpc-js:        @grpc/grpc-js with protobuf-es (de)serializers and nothing else.
// - herald-grpc:    Herald's native gRPC port: the listener's gRPC port, the grpc-js adapter, and Herald's
//                   interceptors (metrics, error mapping, authentication with a real API key) around a handler
//                   that checks the "send" scope.
// - herald-connect: the same routes and interceptors through connect-node on Herald's main port.
//
// The child reports its port, then its own CPU time per measured interval when asked ('reset', then 'cpu').
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { ConnectRouter } from '@connectrpc/connect';
import * as grpc from '@grpc/grpc-js';
import {
  NotificationService,
  SendRequestSchema,
  type SendResponse,
  SendResponseSchema,
} from '../../clients/node/index.js';
import { requireServiceScope } from '../../src/api/auth.js';
import { authInterceptor, createAuthenticator, errorMappingInterceptor } from '../../src/api/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { createListener } from '../../src/server/listener.js';
import { createNativeGrpc } from '../../src/server/native-grpc.js';
import { createRpcHandler } from '../../src/server/rpc-handler.js';
import { createApiKey, openDatabase } from '../../src/store/index.js';
import { compiled } from './compiled.js';

export const rpcServerVariants = ['bare-http2', 'grpc-js', 'herald-grpc', 'herald-connect'] as const;
export type RpcServerVariant = (typeof rpcServerVariants)[number];

export const SEND_PATH = `/${NotificationService.typeName}/${NotificationService.method.send.name}`;

const ANSWER: SendResponse = create(SendResponseSchema, {
  notificationId: '01a21e8e-40e3-743c-99c5-9b4f467ff320',
  seq: 1n,
  deliveries: [{ deliveryId: '01a21e8e-40e3-743c-99c5-9b4f467ff321', channel: 1, status: 1 }],
});

export interface RpcServerChild {
  readonly pid: number;
  readonly url: string;
  /** "Bearer <API key>" for the Herald variants; the others accept anything. */
  readonly authorization: string;
  /** Starts the measured interval. */
  reset(): Promise<void>;
  /** The child's CPU time since reset, in ms, and the wall time, in ms. */
  cpu(): Promise<{ cpuMs: number; wallMs: number }>;
  stop(): void;
}

/** `cpuProfDir`: the child writes a V8 CPU profile there when it stops. */
export async function startRpcServer(
  variant: RpcServerVariant,
  cpuProfDir?: string,
): Promise<RpcServerChild> {
  const profiling = cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : [];
  // This file compiled, as the servers it starts run in production (`npm run bench` compiles it first).
  const child = fork(compiled('bench/lib/rpc-servers.ts'), ['--serve-rpc', variant], { execArgv: profiling });
  const ask = <T>(message: string) =>
    new Promise<T>((resolve) => {
      child.once('message', (m) => resolve(m as T));
      child.send(message);
    });
  const ready = await new Promise<{ port: number; authorization: string }>((resolve, reject) => {
    child.once('message', (m) => resolve(m as { port: number; authorization: string }));
    child.once('exit', (code) => reject(new Error(`${variant} server exited during start (${code})`)));
  });
  return {
    pid: child.pid!,
    url: `http://127.0.0.1:${ready.port}`,
    authorization: ready.authorization,
    reset: () => ask<unknown>('reset').then(() => {}),
    cpu: () => ask<{ cpuMs: number; wallMs: number }>('cpu'),
    stop: () => stopChild(child),
  };
}

/** Asks the child to exit (so a CPU profile gets written); killed if it has not within a second. */
function stopChild(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.send('exit');
  setTimeout(
    () => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'),
    1_000,
  ).unref();
}

/** A bare node:http2 gRPC handler for Send: the least any server can do per call. */
function bareGrpcHandler(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
  if (headers[':path'] !== SEND_PATH) {
    stream.respond(
      { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12' },
      { endStream: true },
    );
    return;
  }
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('end', () => {
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    const request = fromBinary(SendRequestSchema, body.subarray(5, 5 + body.readUInt32BE(1)));
    if (request.userId === '') throw new Error('unexpected request');
    const message = toBinary(SendResponseSchema, ANSWER);
    const frame = Buffer.allocUnsafe(5 + message.length);
    frame[0] = 0;
    frame.writeUInt32BE(message.length, 1);
    frame.set(message, 5);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto' }, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(frame);
  });
}

async function serveBare(): Promise<number> {
  const server = http2.createServer();
  server.on('stream', bareGrpcHandler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

async function serveGrpcJs(): Promise<number> {
  const server = new grpc.Server({ 'grpc.enable_channelz': 0 });
  server.register(
    SEND_PATH,
    (_call: grpc.ServerUnaryCall<unknown, SendResponse>, callback: grpc.sendUnaryData<SendResponse>) =>
      callback(null, ANSWER),
    (message: SendResponse) => Buffer.from(toBinary(SendResponseSchema, message)),
    (bytes: Buffer) => fromBinary(SendRequestSchema, bytes),
    'unary',
  );
  return new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) =>
      error ? reject(error) : resolve(port),
    ),
  );
}

/** Herald's stack around a no-op Send: a real API key in an embedded database, Herald's own interceptors. */
async function serveHerald(
  variant: 'herald-grpc' | 'herald-connect',
): Promise<{ port: number; key: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'herald-rpc-floor-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const database = await openDatabase({ url: undefined, dataDir: path.join(dir, 'data'), poolMax: 1 });
  await database.migrate();
  const { key } = await createApiKey(database.db, 'rpc-floor', ['send']);
  const logger = createLogger('warn');
  const routes = (router: ConnectRouter) =>
    router.service(NotificationService, {
      send(_request, context) {
        requireServiceScope(context, 'send');
        return ANSWER;
      },
    });
  const interceptors = [
    createMetrics().interceptor,
    errorMappingInterceptor(logger),
    authInterceptor(createAuthenticator({ db: database.db, verifyUserToken: undefined, cacheTtlMs: 60_000 })),
  ];
  const onHandlerError = () => {};
  if (variant === 'herald-connect') {
    const listener = createListener(
      createRpcHandler({ routes, interceptors, readMaxBytes: 16 << 20, onHandlerError }),
      { logger },
    );
    return { port: await listener.listen(0, '127.0.0.1'), key };
  }
  const listener = createListener((_req, res) => res.writeHead(404).end(), { logger });
  await listener.listen(0, '127.0.0.1');
  const native = createNativeGrpc({
    routes,
    interceptors,
    maxRequestBytes: 16 << 20,
    maxConcurrentStreams: 250,
    idleTimeoutMs: 65_000,
    requestTimeoutMs: 60_000,
    onHandlerError,
  });
  return { port: await listener.listenGrpc(0, '127.0.0.1', native.accept), key };
}

async function serve(variant: RpcServerVariant): Promise<void> {
  let port: number;
  let authorization = 'Bearer none';
  if (variant === 'bare-http2') port = await serveBare();
  else if (variant === 'grpc-js') port = await serveGrpcJs();
  else {
    const herald = await serveHerald(variant);
    port = herald.port;
    authorization = `Bearer ${herald.key}`;
  }
  let cpu0 = process.cpuUsage();
  let t0 = performance.now();
  process.on('message', (message) => {
    if (message === 'exit') process.exit(0);
    if (message === 'reset') {
      cpu0 = process.cpuUsage();
      t0 = performance.now();
      process.send!({ reset: true });
      return;
    }
    const used = process.cpuUsage(cpu0);
    process.send!({ cpuMs: (used.user + used.system) / 1000, wallMs: performance.now() - t0 });
  });
  process.send!({ port, authorization });
}

const serveIndex = process.argv.indexOf('--serve-rpc');
if (serveIndex >= 0) void serve(process.argv[serveIndex + 1] as RpcServerVariant);
