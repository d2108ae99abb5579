// The receiver process (see dispatch-receiver.ts): answers every POST with 200 as soon as its body is in,
// keeps the first arrival time of each webhook-id, and verifies the signature of every Nth request after
// answering, so verification never delays the sender.
import { createServer, type IncomingMessage } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { epochNow } from './dispatch-child.js';
import { type ArrivalsMessage, type ExpectMessage, isReceiverCommand } from './dispatch-receiver.js';

interface Phase {
  expectation: ExpectMessage;
  verifier: Webhook;
  arrivals: Map<string, number>;
  requests: number;
  duplicates: number;
  anonymous: number;
  verified: number;
  rejected: number;
  firstRejection: string | null;
}

let phase: Phase | undefined;

function send(message: object): void {
  if (process.connected) process.send?.(message);
}

function header(req: IncomingMessage, name: string): string {
  const value = req.headers[name];
  return typeof value === 'string' ? value : '';
}

function verify(current: Phase, req: IncomingMessage, body: string): void {
  try {
    current.verifier.verify(body, {
      'webhook-id': header(req, 'webhook-id'),
      'webhook-timestamp': header(req, 'webhook-timestamp'),
      'webhook-signature': header(req, 'webhook-signature'),
    });
    current.verified++;
  } catch (error) {
    current.rejected++;
    current.firstRejection ??= error instanceof Error ? error.message : String(error);
  }
}

function record(current: Phase, id: string, arrivedAt: number): void {
  if (current.arrivals.has(id)) {
    current.duplicates++;
    return;
  }
  current.arrivals.set(id, arrivedAt);
  if (current.arrivals.size === current.expectation.count) {
    send({ kind: 'complete', phase: current.expectation.phase });
  }
}

const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  const arrivedAt = epochNow();
  const current = phase;
  const id = header(req, 'webhook-id');
  const sampled = current !== undefined && current.requests++ % current.expectation.verifyEvery === 0;
  const chunks: Buffer[] = [];
  if (sampled) req.on('data', (chunk: Buffer) => chunks.push(chunk));
  else req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-length': '0' }).end();
    if (!current) return;
    if (id) record(current, id, arrivedAt);
    else current.anonymous++;
    if (sampled) verify(current, req, Buffer.concat(chunks).toString('utf8'));
  });
});

process.on('message', (message: unknown) => {
  if (!isReceiverCommand(message)) return;
  if (message.kind === 'expect') {
    phase = {
      expectation: message,
      verifier: new Webhook(message.secret),
      arrivals: new Map(),
      requests: 0,
      duplicates: 0,
      anonymous: 0,
      verified: 0,
      rejected: 0,
      firstRejection: null,
    };
    return;
  }
  const current = phase;
  const arrivals: ArrivalsMessage = {
    kind: 'arrivals',
    ids: current ? [...current.arrivals.keys()] : [],
    times: current ? [...current.arrivals.values()] : [],
    duplicates: current?.duplicates ?? 0,
    anonymous: current?.anonymous ?? 0,
    verified: current?.verified ?? 0,
    rejected: current?.rejected ?? 0,
    firstRejection: current?.firstRejection ?? null,
  };
  send(arrivals);
});

// The parent gone (even killed) means the benchmark is over. Ctrl-C reaches this process too, but the
// parent decides when it ends, so the phase in progress is not cut from under it.
process.on('disconnect', () => process.exit(0));
process.on('SIGINT', () => {});

server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('receiver has no TCP address');
  send({ kind: 'listening', port: address.port });
});
