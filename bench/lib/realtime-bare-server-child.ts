// The bare `ws` server (see realtime-bare-server.ts). Connections are keyed by the `user_id` query parameter
// the clients send to Herald as well; tokens are not verified (connecting is not what is compared).
import { randomUUID } from 'node:crypto';
import { Session } from 'node:inspector/promises';
import { type WebSocket, WebSocketServer } from 'ws';
import { type BareServerCommand, isBareServerCommand } from './realtime-bare-server.js';

const connections = new Map<WebSocket, string>();

function send(message: object): void {
  if (process.connected) process.send?.(message);
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  path: '/ws',
  // The bridge's settings (src/server/websocket.ts).
  perMessageDeflate: false,
  maxPayload: 64 * 1024,
  handleProtocols: (protocols) => (protocols.has('herald.v1') ? 'herald.v1' : false),
});

wss.on('connection', (ws, req) => {
  const userId = new URL(req.url ?? '/', 'http://bare').searchParams.get('user_id') ?? '';
  connections.set(ws, userId);
  ws.on('error', () => {});
  ws.on('close', () => connections.delete(ws));
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const text = data.toString();
    if (text.includes('"resume"'))
      ws.send(JSON.stringify({ type: 'unread_count', unread_count: { count: '0' } }));
    else if (text.includes('"ping"')) ws.send(JSON.stringify({ type: 'pong' }));
  });
  ws.send(JSON.stringify({ type: 'connection_ack', connection_id: randomUUID(), server_seq: 0 }));
});

/** The frame Herald writes for a new inbox notification (same fields, same protobuf JSON spelling). */
function notificationFrame(userId: string, type: string, title: string, body: string, now: string): string {
  return JSON.stringify({
    type: 'notification',
    notification: {
      id: randomUUID(),
      userId,
      seq: '1',
      type,
      priority: 'PRIORITY_NORMAL',
      data: {},
      title,
      body,
      createdAt: now,
      sendAt: now,
      deliveries: [],
    },
  });
}

async function run(command: BareServerCommand): Promise<void> {
  switch (command.kind) {
    case 'unicast': {
      const now = new Date().toISOString();
      for (const [ws, userId] of connections) {
        ws.send(notificationFrame(userId, command.type, command.title, command.body, now));
      }
      send({ kind: 'unicast-sent', connections: connections.size });
      return;
    }
    case 'broadcast': {
      // Encoded once: every connection is handed the same bytes.
      const frame = Buffer.from(
        JSON.stringify({ type: 'system', system: { type: command.type, data: command.data } }),
      );
      for (const ws of connections.keys()) ws.send(frame, { binary: false });
      send({ kind: 'broadcast-sent', connections: connections.size });
      return;
    }
    case 'gc': {
      const session = new Session();
      session.connect();
      await session.post('HeapProfiler.collectGarbage');
      session.disconnect();
      send({ kind: 'gc-done', connections: connections.size, heapUsed: process.memoryUsage().heapUsed });
      return;
    }
  }
}

let queue: Promise<void> = Promise.resolve();
process.on('message', (message: unknown) => {
  if (!isBareServerCommand(message)) return;
  queue = queue.then(() => run(message));
});

// The parent gone (even killed) means the benchmark is over; Ctrl-C is the parent's to handle.
process.on('disconnect', () => process.exit(0));
process.on('SIGINT', () => {});

wss.on('listening', () => {
  const address = wss.address();
  if (address === null || typeof address === 'string') throw new Error('bare ws server has no TCP address');
  send({ kind: 'listening', port: address.port });
});
