// A webhook receiver for tests: plain HTTP/1.1 with keep-alive on 127.0.0.1, answering each path from a
// script (status and headers, a delay, a connection reset, or no answer at all) and recording what arrived,
// so tests can assert on retries, concurrency per webhook-id and signatures as a real receiver sees them.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { arrivals } from './arrivals.js';

export interface ReceivedWebhook {
  /** The request target as sent, query string included. */
  path: string;
  method: string;
  /** Lower-case names; repeated headers joined with ', '. */
  headers: Record<string, string>;
  body: string;
  /** Date.now() when the request line and headers arrived. */
  receivedAt: number;
}

export type ScriptedReply =
  | { status: number; headers?: Record<string, string>; body?: string; delayMs?: number }
  /** Destroys the connection with a TCP reset instead of answering. */
  | { reset: true }
  /** Never answers; close() ends the connection. */
  | { hang: true };

export interface WebhookReceiver {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly received: ReceivedWebhook[];
  /**
   * Replies for a path (matched against the request target with, then without, its query string), consumed
   * in order; when exhausted, the default reply (200 'ok') is used.
   */
  script(path: string, replies: ScriptedReply[]): void;
  setDefault(reply: ScriptedReply): void;
  /** Largest number of requests carrying the same webhook-id that were being handled at the same time (1 = never concurrent). */
  maxConcurrentPerWebhookId(): number;
  /** How many times each webhook-id arrived. */
  countsByWebhookId(): Map<string, number>;
  /**
   * Verifies every received request's signature with the independent `standardwebhooks` package for the
   * given secret, judging the timestamp tolerance at the moment the request arrived, as a receiver would.
   * Returns the webhook-ids that failed (`METHOD path` for a request without one).
   */
  unverified(secret: string): string[];
  /** Resolves once the predicate holds for what has arrived; rejects after timeoutMs. */
  waitFor(predicate: (received: readonly ReceivedWebhook[]) => boolean, timeoutMs: number): Promise<void>;
  /** Ends every connection, hung ones included, and stops listening. */
  close(): Promise<void>;
}

const DEFAULT_REPLY: ScriptedReply = { status: 200, body: 'ok' };

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const log = arrivals<ReceivedWebhook>(
    'webhook receiver',
    (timeoutMs, count) => `condition not met within ${timeoutMs} ms (${count} received)`,
  );
  const received = log.received;
  const scripts = new Map<string, ScriptedReply[]>();
  let defaultReply = DEFAULT_REPLY;
  const inFlight = new Map<string, number>();
  let maxConcurrent = 0;
  const timers = new Set<NodeJS.Timeout>();

  const nextReply = (target: string): ScriptedReply => {
    const pathname = target.split('?')[0] ?? target;
    const queue = scripts.get(target) ?? scripts.get(pathname);
    return queue?.shift() ?? defaultReply;
  };

  const trackConcurrency = (webhookId: string | undefined, res: ServerResponse): void => {
    if (webhookId === undefined) return;
    const now = (inFlight.get(webhookId) ?? 0) + 1;
    inFlight.set(webhookId, now);
    maxConcurrent = Math.max(maxConcurrent, now);
    // 'close' fires once the reply is sent or the connection dies, so resets and hangs count until they end.
    res.once('close', () => inFlight.set(webhookId, (inFlight.get(webhookId) ?? 1) - 1));
  };

  const answer = (req: IncomingMessage, res: ServerResponse, reply: ScriptedReply): void => {
    if ('reset' in reply) {
      req.socket.resetAndDestroy();
      return;
    }
    if ('hang' in reply) return;
    const send = () => {
      res.writeHead(reply.status, reply.headers);
      res.end(reply.body ?? '');
    };
    if (!reply.delayMs) {
      send();
      return;
    }
    const timer = setTimeout(() => {
      timers.delete(timer);
      send();
    }, reply.delayMs);
    timers.add(timer);
  };

  const server = createServer((req, res) => {
    const receivedAt = Date.now();
    const target = req.url ?? '/';
    const headers = flattenHeaders(req);
    trackConcurrency(headers['webhook-id'], res);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      log.record({ path: target, method: req.method ?? '', headers, body, receivedAt });
      answer(req, res, nextReply(target));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('webhook receiver: not on a TCP port');

  return {
    url: `http://127.0.0.1:${address.port}`,
    received,
    script(path, replies) {
      scripts.set(path, [...replies]);
    },
    setDefault(reply) {
      defaultReply = reply;
    },
    maxConcurrentPerWebhookId: () => maxConcurrent,
    countsByWebhookId() {
      const counts = new Map<string, number>();
      for (const r of received) {
        const id = r.headers['webhook-id'];
        if (id !== undefined) counts.set(id, (counts.get(id) ?? 0) + 1);
      }
      return counts;
    },
    unverified(secret) {
      const webhook = new Webhook(secret);
      return received
        .filter((r) => !verifiesAt(webhook, r))
        .map((r) => r.headers['webhook-id'] ?? `${r.method} ${r.path}`);
    },
    waitFor: log.waitFor,
    close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      return new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}

function flattenHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}

/**
 * standardwebhooks measures its 300 s tolerance against Date.now(); a receiver checks on arrival, so the
 * clock is set back to that moment for the (synchronous) verification, and a slow test cannot fail it.
 */
function verifiesAt(webhook: Webhook, request: ReceivedWebhook): boolean {
  const realNow = Date.now;
  Date.now = () => request.receivedAt;
  try {
    webhook.verify(request.body, request.headers, { jsonParse: false });
    return true;
  } catch {
    return false;
  } finally {
    Date.now = realNow;
  }
}
