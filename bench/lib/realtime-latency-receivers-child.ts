// One latency receiver process (see realtime-latency-receivers.ts): a live inbox per user over one transport,
// every notification recorded with its arrival time (epoch ms, taken as the frame or message is handed over).

import type { WebSocket } from 'ws';
import {
  createClient,
  createHeraldTransport,
  NotificationService,
  type NotificationServiceClient,
} from '../../clients/node/index.js';
import { epochNow } from './dispatch-child.js';
import { dataInteger, type InboxFrame } from './realtime-frames.js';
import { openAll, openInboxSocket } from './realtime-inbox-socket.js';
import {
  isReceiverCommand,
  type OpenCommand,
  type OpenedReply,
  type ReceivedReply,
} from './realtime-latency-receivers.js';
import { userTokenSigner } from './realtime-token.js';

const ns: number[] = [];
const ids: string[] = [];
const times: number[] = [];
const distinct = new Set<number>();
let unexpected = 0;
let closed = 0;
let firstClose: string | null = null;
let closing = false;
const sockets: WebSocket[] = [];
const streams: AbortController[] = [];

function send(message: object): void {
  if (process.connected) process.send?.(message);
}

function record(n: number | undefined, id: string, arrivedAt: number): void {
  if (n === undefined) {
    unexpected++;
    return;
  }
  ns.push(n);
  ids.push(id);
  times.push(arrivedAt);
  distinct.add(n);
}

function ended(reason: string): void {
  if (closing) return;
  closed++;
  firstClose ??= reason;
}

function onFrame(frame: InboxFrame, arrivedAt: number): void {
  if (frame.type === 'notification') record(dataInteger(frame.data, 'n'), frame.id, arrivedAt);
  else if (frame.type === 'malformed') unexpected++;
}

async function openWebSocket(command: OpenCommand, userId: string, token: string): Promise<void> {
  const ws = await openInboxSocket({
    url: `${command.baseUrl.replace(/^http/, 'ws')}/ws`,
    userId,
    token,
    localAddress: undefined,
    timeoutMs: command.timeoutMs,
    onFrame,
    onClose: (code, reason) => ended(`websocket closed: ${code} ${reason}`),
  });
  sockets.push(ws);
}

/** Resolves once the stream's first unread_count (the end of the replay) arrived. */
function openStream(client: NotificationServiceClient, userId: string, timeoutMs: number): Promise<void> {
  const controller = new AbortController();
  streams.push(controller);
  return new Promise((resolve, reject) => {
    let live = false;
    const timer = setTimeout(() => {
      controller.abort();
      reject(new Error(`${userId}: stream not live within ${timeoutMs} ms`));
    }, timeoutMs);
    const read = async () => {
      for await (const message of client.streamNotifications(
        { userId, afterSeq: 0n },
        { signal: controller.signal },
      )) {
        const arrivedAt = epochNow();
        const { event } = message;
        if (event.case === 'notification') {
          record(dataInteger(event.value.data ?? {}, 'n'), event.value.id, arrivedAt);
        } else if (event.case === 'unreadCount' && !live) {
          live = true;
          clearTimeout(timer);
          resolve();
        }
      }
      ended('stream ended by the server');
    };
    read().catch((error: unknown) => {
      clearTimeout(timer);
      const reason = error instanceof Error ? error.message : String(error);
      if (live) ended(`stream failed: ${reason}`);
      else reject(new Error(`${userId}: ${reason}`));
    });
  });
}

async function open(command: OpenCommand): Promise<OpenedReply> {
  const sign = userTokenSigner(command.jwtSecret);
  // One client per HTTP/2 connection; streams are spread over them round-robin.
  const clients = Array.from({ length: Math.max(1, command.connections) }, () =>
    createClient(
      NotificationService,
      createHeraldTransport({ baseUrl: command.baseUrl, apiKey: command.apiKey }),
    ),
  );
  const result = await openAll(command.users.length, command.concurrency, async (i) => {
    const userId = command.users[i]!;
    if (command.transport === 'websocket') await openWebSocket(command, userId, await sign(userId));
    else await openStream(clients[i % clients.length]!, userId, command.timeoutMs);
  });
  return { kind: 'opened', opened: result.opened.size, failed: result.failed, firstError: result.firstError };
}

function close(): void {
  closing = true;
  for (const ws of sockets) ws.close(1000, 'benchmark over');
  for (const controller of streams) controller.abort();
}

function received(): ReceivedReply {
  return { kind: 'received', ns, ids, times, unexpected, closed, firstClose };
}

let queue: Promise<void> = Promise.resolve();
process.on('message', (message: unknown) => {
  if (!isReceiverCommand(message)) return;
  queue = queue.then(async () => {
    switch (message.kind) {
      case 'open':
        send(await open(message));
        return;
      case 'progress':
        send({ kind: 'progress', distinct: distinct.size });
        return;
      case 'collect':
        send(received());
        return;
      case 'close':
        close();
        send({ kind: 'closed' });
        return;
    }
  });
});

// The parent gone (even killed) means the benchmark is over; Ctrl-C is the parent's to handle.
process.on('disconnect', () => process.exit(0));
process.on('SIGINT', () => {});
