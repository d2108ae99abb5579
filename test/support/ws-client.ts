// A WebSocket client for the bridge's tests: every frame it got, the close it saw, and "the next frame of
// this type" (each frame handed out once).
import WebSocket from 'ws';
import { until } from './until.js';

export type Frame = Record<string, unknown> & { type: string };

export interface Client {
  ws: WebSocket;
  frames: Frame[];
  closed: Promise<{ code: number; reason: string }>;
  send(frame: Record<string, unknown>): void;
  next(type: string, timeoutMs?: number): Promise<Frame>;
}

export function open(url: string, protocols: string[] = [], options: WebSocket.ClientOptions = {}): Client {
  const ws = new WebSocket(url, protocols, options);
  const frames: Frame[] = [];
  ws.on('message', (data) => frames.push(JSON.parse(String(data)) as Frame));
  ws.on('error', () => {});
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })),
  );
  return {
    ws,
    frames,
    closed,
    send: (frame) => ws.send(JSON.stringify(frame)),
    next: (type, timeoutMs = 5_000) =>
      until(`a ${type} frame`, timeoutMs, () => frames.find((f) => f.type === type && !taken.has(f))).then(
        (f) => {
          taken.add(f);
          return f;
        },
      ),
  };
}
const taken = new WeakSet<Frame>();
