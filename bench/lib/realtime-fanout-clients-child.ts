// One fanout client process (see realtime-fanout-clients.ts): a slice of the users, each with one live inbox
// WebSocket from this process's source address. It keeps the first arrival time of what the current phase
// expects and says `complete` as soon as all of it is in; the parent collects the times afterwards.
import type { WebSocket } from 'ws';
import {
  type ArrivalsReply,
  BROADCAST_TYPE,
  type ConnectCommand,
  type ConnectedReply,
  type ExpectCommand,
  isClientCommand,
} from './realtime-fanout-clients.js';
import type { InboxFrame } from './realtime-frames.js';
import { dataInteger } from './realtime-frames.js';
import { openAll, openInboxSocket } from './realtime-inbox-socket.js';
import { userTokenSigner } from './realtime-token.js';

interface Phase {
  command: ExpectCommand;
  /** First arrival per slot (0 = none yet). */
  times: Float64Array;
  /** Slots of live connections: what can arrive. */
  expected: number;
  received: number;
  duplicates: number;
  unexpected: number;
}

let group: ConnectCommand | undefined;
const sockets = new Map<number, WebSocket>();
let phase: Phase | undefined;
let closed = 0;
let firstClose: string | null = null;
let disconnecting = false;

function send(message: object): void {
  if (process.connected) process.send?.(message);
}

function record(current: Phase, slot: number, arrivedAt: number): void {
  if (current.times[slot] !== 0) {
    current.duplicates++;
    return;
  }
  current.times[slot] = arrivedAt;
  if (++current.received === current.expected) send({ kind: 'complete', phase: current.command.phase });
}

function onFrame(local: number, userId: string, frame: InboxFrame, arrivedAt: number): void {
  const current = phase;
  if (frame.type === 'malformed') {
    if (current) current.unexpected++;
    return;
  }
  if (!current || (frame.type !== 'notification' && frame.type !== 'system')) return;
  if (frame.type === 'notification') {
    if (current.command.what !== 'unicast' || frame.userId !== userId) current.unexpected++;
    else record(current, local, arrivedAt);
    return;
  }
  if (frame.systemType !== BROADCAST_TYPE) return;
  const index = dataInteger(frame.data, 'i');
  const count = group?.count ?? 0;
  if (
    current.command.what !== 'broadcast' ||
    index === undefined ||
    index < 0 ||
    index >= current.command.messages
  )
    current.unexpected++;
  else record(current, index * count + local, arrivedAt);
}

async function connect(command: ConnectCommand): Promise<ConnectedReply> {
  group = command;
  disconnecting = false;
  closed = 0;
  firstClose = null;
  const sign = userTokenSigner(command.jwtSecret);
  const ackMs: number[] = [];
  const liveMs: number[] = [];
  const result = await openAll(Math.min(command.limit, command.count), command.concurrency, async (local) => {
    const userId = `${command.userPrefix}${command.firstUser + local}`;
    const ws = await openInboxSocket({
      url: command.url,
      userId,
      token: await sign(userId),
      localAddress: command.localAddress,
      timeoutMs: command.timeoutMs,
      onFrame: (frame, arrivedAt) => onFrame(local, userId, frame, arrivedAt),
      onTimings: (ack, live) => {
        ackMs.push(ack);
        liveMs.push(live);
      },
      onClose: (code, reason) => {
        if (disconnecting) return;
        closed++;
        firstClose ??= `${code} ${reason}`;
      },
    });
    sockets.set(local, ws);
    return ws;
  });
  return {
    kind: 'connected',
    opened: result.opened.size,
    failed: result.failed,
    firstError: result.firstError,
    ackMs,
    liveMs,
  };
}

async function disconnect(): Promise<void> {
  disconnecting = true;
  const closing = [...sockets.values()].map(
    (ws) =>
      new Promise<void>((resolve) => {
        if (ws.readyState === ws.CLOSED) return resolve();
        ws.once('close', () => resolve());
        ws.close(1000, 'benchmark phase over');
        // A server that does not answer the close handshake: cut the socket.
        setTimeout(() => ws.terminate(), 5_000).unref();
      }),
  );
  await Promise.all(closing);
  sockets.clear();
  phase = undefined;
}

function arrivals(): ArrivalsReply {
  return {
    kind: 'arrivals',
    times: phase ? Array.from(phase.times) : [],
    duplicates: phase?.duplicates ?? 0,
    unexpected: phase?.unexpected ?? 0,
    closed,
    firstClose,
  };
}

// Commands run one at a time, in the order they came.
let queue: Promise<void> = Promise.resolve();
process.on('message', (message: unknown) => {
  if (!isClientCommand(message)) return;
  queue = queue.then(async () => {
    switch (message.kind) {
      case 'connect':
        send(await connect(message));
        return;
      case 'expect': {
        const perMessage = message.what === 'unicast' ? 1 : message.messages;
        phase = {
          command: message,
          times: new Float64Array(perMessage * (group?.count ?? 0)),
          expected: perMessage * sockets.size,
          received: 0,
          duplicates: 0,
          unexpected: 0,
        };
        send({ kind: 'expecting', phase: message.phase });
        return;
      }
      case 'collect':
        send(arrivals());
        return;
      case 'disconnect':
        await disconnect();
        send({ kind: 'disconnected' });
        return;
    }
  });
});

// The parent gone (even killed) means the benchmark is over; Ctrl-C is the parent's to handle.
process.on('disconnect', () => process.exit(0));
process.on('SIGINT', () => {});
