// The fanout benchmark's WebSocket clients: child processes (realtime-fanout-clients-child.ts), each holding
// a slice of the users from its own source address, so the load generator is neither one event loop nor one
// address's port range. The parent drives them over IPC: connect, expect a phase, collect, disconnect.
import { type BenchChild, ChildTimeoutError, forkBenchChild, isObject } from './dispatch-child.js';

export const BROADCAST_TYPE = 'bench.fanout.broadcast';
const COLLECT_TIMEOUT_MS = 60_000;
const DISCONNECT_TIMEOUT_MS = 30_000;

/** Parent to child: open one live inbox connection per user `firstUser` .. `firstUser + count - 1`. */
export interface ConnectCommand {
  kind: 'connect';
  url: string;
  userPrefix: string;
  firstUser: number;
  count: number;
  /** Open only the first `limit` of them (a warm-up). */
  limit: number;
  localAddress: string;
  jwtSecret: string;
  concurrency: number;
  timeoutMs: number;
}

/** Parent to child: from now on, record `unicast` (one notification per user) or `messages` broadcasts. */
export interface ExpectCommand {
  kind: 'expect';
  phase: number;
  what: 'unicast' | 'broadcast';
  messages: number;
}

export type ClientCommand = ConnectCommand | ExpectCommand | { kind: 'collect' } | { kind: 'disconnect' };

export interface ConnectedReply {
  kind: 'connected';
  opened: number;
  failed: number;
  firstError: string | null;
  /** Per live connection: milliseconds from opening to `connection_ack`, and to the end of its replay. */
  ackMs: number[];
  liveMs: number[];
}

/**
 * What arrived in the current phase: first arrival (epoch ms) per user (unicast) or per message x user
 * (broadcast, message-major), 0 where nothing arrived.
 */
export interface ArrivalsReply {
  kind: 'arrivals';
  times: number[];
  duplicates: number;
  /** A notification for another user, a broadcast index out of range, a malformed frame. */
  unexpected: number;
  /** Live connections that closed (the server closed them) since `connect`. */
  closed: number;
  firstClose: string | null;
}

export function isClientCommand(value: unknown): value is ClientCommand {
  if (!isObject(value)) return false;
  switch (value.kind) {
    case 'connect':
      return (
        typeof value.url === 'string' &&
        typeof value.userPrefix === 'string' &&
        typeof value.localAddress === 'string' &&
        typeof value.jwtSecret === 'string' &&
        [value.firstUser, value.count, value.limit, value.concurrency, value.timeoutMs].every(
          Number.isSafeInteger,
        )
      );
    case 'expect':
      return (
        (value.what === 'unicast' || value.what === 'broadcast') &&
        Number.isSafeInteger(value.phase) &&
        Number.isSafeInteger(value.messages)
      );
    case 'collect':
    case 'disconnect':
      return true;
    default:
      return false;
  }
}

function isConnected(value: unknown): value is ConnectedReply {
  return (
    isObject(value) &&
    value.kind === 'connected' &&
    Number.isSafeInteger(value.opened) &&
    Number.isSafeInteger(value.failed) &&
    (value.firstError === null || typeof value.firstError === 'string') &&
    Array.isArray(value.ackMs) &&
    Array.isArray(value.liveMs)
  );
}

function isArrivals(value: unknown): value is ArrivalsReply {
  return (
    isObject(value) &&
    value.kind === 'arrivals' &&
    Array.isArray(value.times) &&
    value.times.every((t) => typeof t === 'number') &&
    [value.duplicates, value.unexpected, value.closed].every(Number.isSafeInteger) &&
    (value.firstClose === null || typeof value.firstClose === 'string')
  );
}

function isComplete(phase: number) {
  return (value: unknown): value is { kind: 'complete'; phase: number } =>
    isObject(value) && value.kind === 'complete' && value.phase === phase;
}

function isExpecting(phase: number) {
  return (value: unknown): value is { kind: 'expecting'; phase: number } =>
    isObject(value) && value.kind === 'expecting' && value.phase === phase;
}

function isDisconnected(value: unknown): value is { kind: 'disconnected' } {
  return isObject(value) && value.kind === 'disconnected';
}

export interface ClientGroup {
  readonly pid: number;
  readonly firstUser: number;
  readonly count: number;
  readonly localAddress: string;
  /** Opens the group's connections (only the first `limit` when given). */
  connect(url: string, timeoutMs: number, limit?: number): Promise<ConnectedReply>;
  /** Resolves once the child records the phase, so nothing sent afterwards can arrive before it does. */
  expect(phase: number, what: ExpectCommand['what'], messages: number): Promise<void>;
  /** True once everything expected arrived, false when `timeoutMs` passed first. */
  waitComplete(phase: number, timeoutMs: number): Promise<boolean>;
  collect(): Promise<ArrivalsReply>;
  disconnect(): Promise<void>;
  stop(): Promise<void>;
}

export interface ClientGroupOptions {
  userPrefix: string;
  firstUser: number;
  count: number;
  localAddress: string;
  jwtSecret: string;
  /** Handshakes in flight at once in this child. */
  concurrency: number;
}

export function startClientGroup(options: ClientGroupOptions): ClientGroup {
  const child: BenchChild = forkBenchChild(
    new URL('./realtime-fanout-clients-child.ts', import.meta.url),
    `ws clients ${options.localAddress}`,
  );
  return {
    pid: child.pid,
    firstUser: options.firstUser,
    count: options.count,
    localAddress: options.localAddress,
    connect(url, timeoutMs, limit = options.count) {
      const command: ConnectCommand = { kind: 'connect', url, timeoutMs, limit, ...options };
      child.send(command);
      return child.next(isConnected, timeoutMs + 10_000, 'connected reply');
    },
    async expect(phase, what, messages) {
      const command: ExpectCommand = { kind: 'expect', phase, what, messages };
      child.send(command);
      await child.next(isExpecting(phase), COLLECT_TIMEOUT_MS, 'expecting reply');
    },
    async waitComplete(phase, timeoutMs) {
      try {
        await child.next(isComplete(phase), timeoutMs, 'completion');
        return true;
      } catch (error) {
        if (error instanceof ChildTimeoutError) return false;
        throw error;
      }
    },
    collect() {
      child.send({ kind: 'collect' });
      return child.next(isArrivals, COLLECT_TIMEOUT_MS, 'arrivals');
    },
    async disconnect() {
      child.send({ kind: 'disconnect' });
      await child.next(isDisconnected, DISCONNECT_TIMEOUT_MS, 'disconnected reply');
    },
    stop: () => child.stop(),
  };
}
