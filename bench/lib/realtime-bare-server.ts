// The fanout baseline: a bare `ws` server in its own child process (realtime-bare-server-child.ts) that speaks
// just enough of the bridge's handshake for the same clients (connection_ack, then unread_count on resume)
// and sends what Herald would: one notification frame per connection (each encoded for its user), and
// broadcast frames encoded once and written to every connection, as Socket.IO does.
import { type BenchChild, forkBenchChild, isObject } from './dispatch-child.js';

const START_TIMEOUT_MS = 30_000;
const COMMAND_TIMEOUT_MS = 60_000;

export type BareServerCommand =
  | { kind: 'unicast'; type: string; title: string; body: string }
  | { kind: 'broadcast'; type: string; data: Record<string, number> }
  | { kind: 'gc' };

export function isBareServerCommand(value: unknown): value is BareServerCommand {
  if (!isObject(value)) return false;
  switch (value.kind) {
    case 'unicast':
      return [value.type, value.title, value.body].every((v) => typeof v === 'string');
    case 'broadcast':
      return (
        typeof value.type === 'string' &&
        isObject(value.data) &&
        Object.values(value.data).every((v) => typeof v === 'number')
      );
    case 'gc':
      return true;
    default:
      return false;
  }
}

function isListening(value: unknown): value is { kind: 'listening'; port: number } {
  return isObject(value) && value.kind === 'listening' && Number.isSafeInteger(value.port);
}

function isDone(kind: string) {
  return (value: unknown): value is { kind: string; connections: number; heapUsed?: number } =>
    isObject(value) && value.kind === kind && Number.isSafeInteger(value.connections);
}

export interface BareServer {
  readonly pid: number;
  /** ws://127.0.0.1:port/ws */
  readonly url: string;
  /** Resolves once a frame was written to every connection; to how many. */
  unicast(type: string, title: string, body: string): Promise<number>;
  broadcast(type: string, data: Record<string, number>): Promise<number>;
  /** A full garbage collection in the server, before its RSS is read; resolves to the V8 heap then in use. */
  collectGarbage(): Promise<number>;
  stop(): Promise<void>;
}

export async function startBareServer(): Promise<BareServer> {
  const child: BenchChild = forkBenchChild(
    new URL('./realtime-bare-server-child.ts', import.meta.url),
    'bare ws server',
  );
  const exchange = (message: BareServerCommand, reply: string) => {
    child.send(message);
    return child.next(isDone(reply), COMMAND_TIMEOUT_MS, `${reply} reply`);
  };
  const command = async (message: BareServerCommand, reply: string) =>
    (await exchange(message, reply)).connections;
  try {
    const { port } = await child.next(isListening, START_TIMEOUT_MS, 'listening message');
    return {
      pid: child.pid,
      url: `ws://127.0.0.1:${port}/ws`,
      unicast: (type, title, body) => command({ kind: 'unicast', type, title, body }, 'unicast-sent'),
      broadcast: (type, data) => command({ kind: 'broadcast', type, data }, 'broadcast-sent'),
      collectGarbage: async () => (await exchange({ kind: 'gc' }, 'gc-done')).heapUsed ?? Number.NaN,
      stop: () => child.stop(),
    };
  } catch (error) {
    await child.stop();
    throw error;
  }
}
