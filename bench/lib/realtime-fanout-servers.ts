// The two servers the fanout benchmark compares, behind one shape: Herald (child process, notifications by
// SendBatch, broadcasts by AdminService.BroadcastSystemMessage) and the bare `ws` baseline (child process,
// driven over IPC). Each reports when it handed work over, so latency is measured from that moment.
import path from 'node:path';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  AdminService,
  Channel,
  createClient,
  createHeraldTransport,
  NotificationService,
  SendBatchRequestSchema,
  SendBatchResponseSchema,
  SendRequestSchema,
} from '../../clients/node/index.js';
import { epochNow } from './dispatch-child.js';
import { type HeraldChild, startHeraldChild } from './herald-child.js';
import { RawGrpcClient } from './raw-grpc.js';
import { startBareServer } from './realtime-bare-server.js';
import { BROADCAST_TYPE } from './realtime-fanout-clients.js';
import {
  collectGarbageOverInspector,
  inspectorUrl,
  isInspectorNotice,
  type MemoryBreakdown,
  memoryOverInspector,
  profileOverInspector,
} from './realtime-memory.js';
import { BODY, TITLE } from './workload.js';

export const UNICAST_TYPE = 'bench.fanout.unicast';
const SEND_BATCH = `/${NotificationService.typeName}/${NotificationService.method.sendBatch.name}`;
const SEND = `/${NotificationService.typeName}/${NotificationService.method.send.name}`;
const CALL_TIMEOUT_MS = 60_000;

export interface FanoutServer {
  readonly label: string;
  readonly pid: number;
  /** ws://host:port/ws */
  readonly wsUrl: string;
  /** The PostgreSQL database whose backends count as the server's, if any. */
  readonly database: string | undefined;
  /** A full GC in the server before its RSS is read, to the V8 heap then in use; null when not possible. */
  collectGarbage(): Promise<number | null>;
  /** Where its memory sits (Herald only: read over its inspector). */
  memory?(): Promise<MemoryBreakdown | null>;
  /** With --cpu-prof, profiles the server over one phase; the returned function stops and writes it. */
  profile(phase: string): Promise<() => Promise<void>>;
  /** One notification to each of users 0..count-1; `sent` is told when each slice was handed over. */
  unicast(count: number, sent: (first: number, count: number, at: number) => void): Promise<string[]>;
  /**
   * Herald only: the unicast's Sends to `count` users nobody is connected as (stored, written to no socket),
   * first hand-over to last answer: the ceiling the unicast burst cannot pass.
   */
  storeOnly?(count: number): Promise<{ elapsedMs: number; failures: string[] }>;
  /** `messages` broadcasts, all started at once; `sent` is told when each was handed over. */
  broadcast(messages: number, sent: (index: number, at: number) => void): Promise<string[]>;
  /** Herald only: its main port's /healthz. */
  readonly healthUrl?: string;
  /** Herald only: one in-app Send to `userId`, resolved once answered. */
  sendOne?(userId: string): Promise<void>;
  /** Warnings and errors the server logged. */
  logLines(): readonly string[];
  stop(): Promise<void>;
}

function failureText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Herald with its inspector on a free port, so a full GC can be asked for from outside (realtime-memory.ts).
 * startHeraldChild spawns synchronously, so NODE_OPTIONS is changed only for that spawn.
 */
function startHeraldWithInspector(options: HeraldFanoutOptions) {
  const saved = process.env.NODE_OPTIONS;
  process.env.NODE_OPTIONS = `${saved ?? ''} --inspect=127.0.0.1:0`.trim();
  try {
    return startHeraldChild({
      databaseUrl: options.databaseUrl,
      dataDir: options.dataDir,
      cpuProfDir: undefined,
    });
  } finally {
    if (saved === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = saved;
  }
}

export interface HeraldFanoutOptions {
  databaseUrl: string | undefined;
  dataDir: string | undefined;
  databaseName: string | undefined;
  userPrefix: string;
  batchSize: number;
  /** SendBatch calls in flight at once. */
  senders: number;
  /** Directory for V8 CPU profiles of Herald, one per phase (herald-<phase>.cpuprofile), or undefined. */
  cpuProfDir: string | undefined;
}

export async function startHeraldFanoutServer(options: HeraldFanoutOptions): Promise<FanoutServer> {
  const child: HeraldChild = await startHeraldWithInspector(options);
  const inspector = inspectorUrl(child.logLines());
  const senders = Array.from(
    { length: options.senders },
    () => new RawGrpcClient(child.grpcUrl, `Bearer ${child.apiKey}`),
  );
  const admin = createClient(
    AdminService,
    createHeraldTransport({ baseUrl: child.grpcUrl, apiKey: child.apiKey }),
  );

  async function unicast(
    count: number,
    sent: (first: number, count: number, at: number) => void,
    userPrefix = options.userPrefix,
  ) {
    const failures: string[] = [];
    let next = 0;
    const worker = async (client: RawGrpcClient) => {
      while (next < count) {
        const first = next;
        const size = Math.min(options.batchSize, count - first);
        next += size;
        const request = create(SendBatchRequestSchema, {
          requests: Array.from({ length: size }, (_, i) => ({
            userId: `${userPrefix}${first + i}`,
            type: UNICAST_TYPE,
            title: TITLE,
            body: BODY,
            channels: [Channel.IN_APP],
          })),
        });
        const bytes = toBinary(SendBatchRequestSchema, request);
        sent(first, size, epochNow());
        try {
          const response = fromBinary(
            SendBatchResponseSchema,
            await client.unary(SEND_BATCH, bytes, CALL_TIMEOUT_MS),
          );
          if (response.results.length !== size)
            failures.push(`SendBatch answered ${response.results.length} of ${size}`);
        } catch (error) {
          failures.push(`SendBatch: ${failureText(error)}`);
        }
      }
    };
    await Promise.all(senders.map(worker));
    return failures;
  }

  async function broadcast(messages: number, sent: (index: number, at: number) => void) {
    const results = await Promise.allSettled(
      Array.from({ length: messages }, (_, i) => {
        sent(i, epochNow());
        return admin.broadcastSystemMessage(
          { type: BROADCAST_TYPE, data: { i } },
          { timeoutMs: CALL_TIMEOUT_MS },
        );
      }),
    );
    return results.flatMap((r) =>
      r.status === 'rejected' ? [`BroadcastSystemMessage: ${failureText(r.reason)}`] : [],
    );
  }

  return {
    label: 'Herald',
    pid: child.pid,
    healthUrl: `${child.url}/healthz`,
    async sendOne(userId) {
      const request = create(SendRequestSchema, {
        userId,
        type: UNICAST_TYPE,
        title: TITLE,
        body: BODY,
        channels: [Channel.IN_APP],
      });
      await senders[0]!.unary(SEND, toBinary(SendRequestSchema, request), CALL_TIMEOUT_MS);
    },
    wsUrl: `${child.url.replace(/^http/, 'ws')}/ws`,
    database: options.databaseName,
    async collectGarbage() {
      return inspector ? collectGarbageOverInspector(inspector) : null;
    },
    async memory() {
      return inspector ? memoryOverInspector(inspector) : null;
    },
    async profile(phase) {
      const dir = options.cpuProfDir;
      if (!inspector || !dir) return async () => {};
      return profileOverInspector(inspector, path.join(dir, `herald-${phase}.cpuprofile`));
    },
    unicast: (count, sent) => unicast(count, sent),
    async storeOnly(count) {
      const started = performance.now();
      const failures = await unicast(count, () => {}, `${options.userPrefix}offline-`);
      return { elapsedMs: performance.now() - started, failures };
    },
    broadcast,
    logLines: () => child.logLines().filter((line) => !isInspectorNotice(line)),
    async stop() {
      for (const client of senders) client.close();
      await child.stop();
    },
  };
}

export async function startBareFanoutServer(): Promise<FanoutServer> {
  const bare = await startBareServer();
  return {
    label: 'bare ws',
    pid: bare.pid,
    wsUrl: bare.url,
    database: undefined,
    collectGarbage: () => bare.collectGarbage(),
    profile: async () => async () => {},
    async unicast(count, sent) {
      sent(0, count, epochNow());
      const written = await bare.unicast(UNICAST_TYPE, TITLE, BODY);
      return written === count ? [] : [`the server held ${written} connections, not ${count}`];
    },
    async broadcast(messages, sent) {
      const results = await Promise.allSettled(
        Array.from({ length: messages }, (_, i) => {
          sent(i, epochNow());
          return bare.broadcast(BROADCAST_TYPE, { i });
        }),
      );
      return results.flatMap((r) => (r.status === 'rejected' ? [`broadcast: ${failureText(r.reason)}`] : []));
    },
    logLines: () => [],
    stop: () => bare.stop(),
  };
}
