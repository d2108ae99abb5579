// `npm run bench -- rpc-floor [--seconds 6] [--concurrency 16] [--rounds 3] [--cpu-prof]`: what the RPC stack alone costs on
// this machine, as server CPU per call. Four servers answer NotificationService/Send without doing any work
// (bench/lib/rpc-servers.ts): a bare node:http2 handler (the floor), plain @grpc/grpc-js, Herald's native gRPC
// port and Herald's Connect (main port) stack, both with Herald's interceptors and a real API key. The same
// lean gRPC generator drives each in turn, in interleaved rounds, so drift on this shared machine hits all of
// them; the figures are the medians over the rounds, and each round's ratio is to the bare handler of that
// same round.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { SendRequestSchema, SendResponseSchema } from '../clients/node/index.js';
import { positiveInteger, positiveNumber } from './lib/options.js';
import { RawGrpcClient } from './lib/raw-grpc.js';
import { integer, renderTable } from './lib/report.js';
import { type RpcServerVariant, rpcServerVariants, SEND_PATH, startRpcServer } from './lib/rpc-servers.js';

const TARGET_NATIVE_RATIO = 1.5;
const WARMUP_MS = 2_000;

const LABELS: Record<RpcServerVariant, string> = {
  'bare-http2': 'bare node:http2 handler',
  'grpc-js': '@grpc/grpc-js, nothing else',
  'herald-grpc': 'Herald gRPC port (grpc-js + interceptors)',
  'herald-connect': 'Herald main port (connect-node + interceptors)',
};

interface Measurement {
  callsPerSecond: number;
  /** Server CPU per call, µs. */
  serverUs: number;
  /** Load generator CPU per call, µs. */
  generatorUs: number;
}

async function measure(
  variant: RpcServerVariant,
  seconds: number,
  concurrency: number,
  cpuProfDir: string | undefined,
): Promise<Measurement> {
  const server = await startRpcServer(variant, cpuProfDir);
  const clients = Array.from(
    { length: concurrency },
    () => new RawGrpcClient(server.url, server.authorization),
  );
  try {
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
              await client.unary(SEND_PATH, toBinary(SendRequestSchema, request), 10_000),
            );
            if (answer.deliveries.length !== 1) throw new Error('unexpected answer');
            calls++;
          }
        }),
      );
    };
    await drive(WARMUP_MS);
    calls = 0;
    await server.reset();
    const generator0 = process.cpuUsage();
    await drive(seconds * 1_000);
    const generator = process.cpuUsage(generator0);
    const { cpuMs, wallMs } = await server.cpu();
    return {
      callsPerSecond: calls / (wallMs / 1_000),
      serverUs: (cpuMs * 1_000) / calls,
      generatorUs: (generator.user + generator.system) / calls,
    };
  } finally {
    for (const client of clients) client.close();
    server.stop();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: 'string' },
      concurrency: { type: 'string' },
      rounds: { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
    },
  });
  const cpuProfDir = values['cpu-prof']
    ? mkdtempSync(path.join(os.tmpdir(), 'herald-rpc-floor-prof-'))
    : undefined;
  const seconds = positiveNumber('--seconds', values.seconds, 6);
  const concurrency = positiveInteger('--concurrency', values.concurrency, 16);
  const rounds = positiveInteger('--rounds', values.rounds, 3);
  const results = new Map<RpcServerVariant, Measurement[]>(rpcServerVariants.map((v) => [v, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const variant of rpcServerVariants) {
      process.stderr.write(`  round ${round}/${rounds}: ${variant}\n`);
      results.get(variant)!.push(await measure(variant, seconds, concurrency, cpuProfDir));
    }
  }
  const bare = results.get('bare-http2')!;
  const rows = rpcServerVariants.map((variant) => {
    const runs = results.get(variant)!;
    const ratios = runs.map((run, i) => run.serverUs / bare[i]!.serverUs);
    return [
      LABELS[variant],
      integer.format(median(runs.map((r) => r.callsPerSecond))),
      median(runs.map((r) => r.serverUs)).toFixed(1),
      `${median(ratios).toFixed(2)}×`,
      ratios.map((r) => r.toFixed(2)).join(' '),
      median(runs.map((r) => r.generatorUs)).toFixed(1),
    ];
  });
  const native = results.get('herald-grpc')!.map((run, i) => run.serverUs / bare[i]!.serverUs);
  const nativeRatio = median(native);
  process.stdout.write(
    `\nRPC floor: no-op Send over gRPC, ${concurrency} connections, ${seconds} s per run, ${rounds} interleaved rounds ` +
      `(medians; Node ${process.version})\n\n` +
      renderTable(
        ['server', 'calls/s', 'server µs CPU/call', '× bare', 'per round', 'generator µs/call'],
        rows,
        1,
      ) +
      `\n\nTarget: Herald gRPC port ≤ ${TARGET_NATIVE_RATIO}× the bare handler's CPU per call: ` +
      `${nativeRatio.toFixed(2)}× — ${nativeRatio <= TARGET_NATIVE_RATIO ? 'met' : 'NOT MET'}\n` +
      (cpuProfDir ? `\nServer CPU profiles: ${cpuProfDir}\n` : ''),
  );
}
