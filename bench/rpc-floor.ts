// `npm run bench -- rpc-floor [--seconds 8] [--concurrency 16]`: what the RPC stack alone costs on this
// machine. A child process serves NotificationService/Send with a handler that does no work (a constant
// answer, no database), through Herald's one-port listener and connect-node, and through a plain
// http2.createServer as the baseline; the same lean gRPC generator as the send benchmark drives both. The
// figure is the ceiling any Send can reach here, whatever the handler does.
import { fork } from 'node:child_process';
import http2 from 'node:http2';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { NotificationService, SendRequestSchema, SendResponseSchema } from '../clients/node/index.js';
import { createListener, type RequestHandler } from '../src/server/listener.js';
import { RawGrpcClient } from './lib/raw-grpc.js';

type Variant = 'herald-listener' | 'plain-http2';
const SEND = `/${NotificationService.typeName}/${NotificationService.method.send.name}`;

async function serve(variant: Variant): Promise<void> {
  const handler = connectNodeAdapter({
    routes: (router) =>
      router.service(NotificationService, {
        async send() {
          return create(SendResponseSchema, {
            notificationId: '01a21e8e-40e3-743c-99c5-9b4f467ff320',
            seq: 1n,
            deliveries: [{ deliveryId: '01a21e8e-40e3-743c-99c5-9b4f467ff321', channel: 1, status: 1 }],
          });
        },
      }),
  }) as RequestHandler;
  let port: number;
  if (variant === 'plain-http2') {
    const server = http2.createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  } else {
    port = await createListener(handler).listen(0, '127.0.0.1');
  }
  let cpu0 = process.cpuUsage();
  let t0 = performance.now();
  process.on('message', (message) => {
    if (message === 'reset') {
      cpu0 = process.cpuUsage();
      t0 = performance.now();
      process.send!({ reset: true });
      return;
    }
    const used = process.cpuUsage(cpu0);
    process.send!({ cpu: (used.user + used.system) / 1000 / (performance.now() - t0) });
  });
  process.send!({ port });
}

async function measure(variant: Variant, seconds: number, concurrency: number) {
  const child = fork(fileURLToPath(import.meta.url), ['--serve', variant], { execArgv: ['--import', 'tsx'] });
  try {
    const { port } = await new Promise<{ port: number }>((resolve) =>
      child.once('message', (m) => resolve(m as { port: number })),
    );
    const clients = Array.from(
      { length: concurrency },
      () => new RawGrpcClient(`http://127.0.0.1:${port}`, 'Bearer none'),
    );
    let calls = 0;
    const drive = async (ms: number) => {
      const end = performance.now() + ms;
      await Promise.all(
        clients.map(async (client) => {
          while (performance.now() < end) {
            const request = create(SendRequestSchema, {
              userId: `u${calls % 10_000}`,
              type: 't',
              title: 'Hello',
              data: { n: calls },
            });
            const answer = fromBinary(
              SendResponseSchema,
              await client.unary(SEND, toBinary(SendRequestSchema, request), 10_000),
            );
            if (answer.deliveries.length !== 1) throw new Error('unexpected answer');
            calls++;
          }
        }),
      );
    };
    await drive(2_000);
    calls = 0;
    child.send('reset');
    await new Promise((resolve) => child.once('message', resolve));
    const cpuStart = process.cpuUsage();
    const t0 = performance.now();
    await drive(seconds * 1_000);
    const elapsed = (performance.now() - t0) / 1000;
    const gen = process.cpuUsage(cpuStart);
    child.send('cpu');
    const { cpu } = await new Promise<{ cpu: number }>((resolve) =>
      child.once('message', (m) => resolve(m as { cpu: number })),
    );
    for (const client of clients) client.close();
    return {
      variant,
      rate: calls / elapsed,
      serverCpu: cpu * 100,
      genCpu: (gen.user + gen.system) / 1e6 / elapsed,
    };
  } finally {
    child.kill('SIGTERM');
  }
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { seconds: { type: 'string', default: '8' }, concurrency: { type: 'string', default: '16' } },
  });
  const seconds = Number(values.seconds);
  const concurrency = Number(values.concurrency);
  const rows = [];
  for (const variant of ['plain-http2', 'herald-listener'] as const)
    rows.push(await measure(variant, seconds, concurrency));
  const baseline = rows[0]!.rate;
  process.stdout.write(
    `\nRPC floor: no-op Send over gRPC, ${concurrency} connections, ${seconds} s (CPU: share of one core over the measured seconds)\n\n` +
      'server                               calls/s  vs plain  server CPU  gen CPU\n' +
      rows
        .map(
          (r) =>
            `${(r.variant === 'plain-http2' ? 'connect-node on http2.createServer' : 'connect-node on Herald listener').padEnd(35)}  ` +
            `${Math.round(r.rate).toLocaleString('en').padStart(7)}  ${`${Math.round((100 * r.rate) / baseline)}%`.padStart(8)}  ` +
            `${`${Math.round(r.serverCpu)}%`.padStart(10)}  ${`${Math.round(r.genCpu * 100)}%`.padStart(7)}`,
        )
        .join('\n') +
      '\n',
  );
}

const serveIndex = process.argv.indexOf('--serve');
if (serveIndex >= 0) void serve(process.argv[serveIndex + 1] as Variant);
