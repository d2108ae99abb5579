// The latency benchmark's receivers: one child process per transport (realtime-latency-receivers-child.ts)
// holding one live inbox per user, over WebSocket or over StreamNotifications (gRPC). Each records every
// notification that arrives (the sender's number from `data.n`, the id, the arrival time); the parent joins
// them with its send log, so missing and duplicate deliveries are counted, not assumed.
import { type BenchChild, forkBenchChild, isObject } from './dispatch-child.js';

export type Transport = 'websocket' | 'grpc';

const COLLECT_TIMEOUT_MS = 60_000;

export interface OpenCommand {
  kind: 'open';
  transport: Transport;
  /** Herald's base URL (http://host:port). */
  baseUrl: string;
  apiKey: string;
  jwtSecret: string;
  users: string[];
  /** gRPC: HTTP/2 connections the streams are spread over. */
  connections: number;
  concurrency: number;
  timeoutMs: number;
}

export type ReceiverCommand = OpenCommand | { kind: 'progress' } | { kind: 'collect' } | { kind: 'close' };

export interface OpenedReply {
  kind: 'opened';
  opened: number;
  failed: number;
  firstError: string | null;
}

export interface ReceivedReply {
  kind: 'received';
  ns: number[];
  ids: string[];
  times: number[];
  /** Notifications without a sender number, malformed frames. */
  unexpected: number;
  /** Live connections or streams that ended before the run did. */
  closed: number;
  firstClose: string | null;
}

export function isReceiverCommand(value: unknown): value is ReceiverCommand {
  if (!isObject(value)) return false;
  if (value.kind === 'progress' || value.kind === 'collect' || value.kind === 'close') return true;
  return (
    value.kind === 'open' &&
    (value.transport === 'websocket' || value.transport === 'grpc') &&
    [value.baseUrl, value.apiKey, value.jwtSecret].every((v) => typeof v === 'string') &&
    Array.isArray(value.users) &&
    value.users.every((u) => typeof u === 'string') &&
    [value.connections, value.concurrency, value.timeoutMs].every(Number.isSafeInteger)
  );
}

function isOpened(value: unknown): value is OpenedReply {
  return (
    isObject(value) &&
    value.kind === 'opened' &&
    Number.isSafeInteger(value.opened) &&
    Number.isSafeInteger(value.failed) &&
    (value.firstError === null || typeof value.firstError === 'string')
  );
}

function isProgress(value: unknown): value is { kind: 'progress'; distinct: number } {
  return isObject(value) && value.kind === 'progress' && Number.isSafeInteger(value.distinct);
}

function isReceived(value: unknown): value is ReceivedReply {
  if (!isObject(value) || value.kind !== 'received') return false;
  const { ns, ids, times } = value;
  return (
    Array.isArray(ns) &&
    Array.isArray(ids) &&
    Array.isArray(times) &&
    ns.length === ids.length &&
    ns.length === times.length &&
    ns.every(Number.isSafeInteger) &&
    ids.every((id) => typeof id === 'string') &&
    times.every((t) => typeof t === 'number') &&
    Number.isSafeInteger(value.unexpected) &&
    Number.isSafeInteger(value.closed) &&
    (value.firstClose === null || typeof value.firstClose === 'string')
  );
}

function isClosed(value: unknown): value is { kind: 'closed' } {
  return isObject(value) && value.kind === 'closed';
}

export interface Receivers {
  readonly pid: number;
  readonly transport: Transport;
  open(command: Omit<OpenCommand, 'kind' | 'transport'>): Promise<OpenedReply>;
  /** Distinct notifications received so far. */
  progress(): Promise<number>;
  collect(): Promise<ReceivedReply>;
  close(): Promise<void>;
  stop(): Promise<void>;
}

export function startReceivers(transport: Transport): Receivers {
  const child: BenchChild = forkBenchChild(
    new URL('./realtime-latency-receivers-child.ts', import.meta.url),
    `${transport} receivers`,
  );
  return {
    pid: child.pid,
    transport,
    open(command) {
      const message: OpenCommand = { kind: 'open', transport, ...command };
      child.send(message);
      return child.next(isOpened, command.timeoutMs + 10_000, 'opened reply');
    },
    async progress() {
      child.send({ kind: 'progress' });
      return (await child.next(isProgress, COLLECT_TIMEOUT_MS, 'progress')).distinct;
    },
    collect() {
      child.send({ kind: 'collect' });
      return child.next(isReceived, COLLECT_TIMEOUT_MS, 'received notifications');
    },
    async close() {
      child.send({ kind: 'close' });
      await child.next(isClosed, COLLECT_TIMEOUT_MS, 'closed reply');
    },
    stop: () => child.stop(),
  };
}
