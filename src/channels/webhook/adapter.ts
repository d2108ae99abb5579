// The webhook channel: one signed POST (Standard Webhooks) per attempt to one endpoint. Redirects are never
// followed; every address the host resolves to must pass the SSRF guard, checked inside the connection's
// own DNS lookup. Classification: 2xx sent; 410 the endpoint is gone; 3xx and a
// `webhook-delivery: abort-message` answer are permanent; 429, 5xx, other 4xx, timeouts and network errors
// are retried by the dispatcher.
import { Agent, errors, request } from 'undici';
import { parseRetryAfter } from '../../core/retry-policy.js';
import type { DeliveryTask, Outcome, ProviderAdapter } from '../../delivery/provider.js';
import { ADDRESS_REFUSED, type AddressGuard } from './address-guard.js';
import { signWebhook } from './signature.js';

export interface WebhookAdapterOptions {
  /** Recorded on every attempt; 'webhook' unless the providers file names it. */
  name?: string;
  guard: AddressGuard;
  /** The whole attempt, connect to last byte (default 15 s). */
  timeoutMs: number;
  /** Connections kept per origin. */
  connections: number;
  now?: () => Date;
}

const RESPONSE_KEPT_BYTES = 1024;
const MAX_CACHED_TARGETS = 10_000;

/** The body of a webhook: `{type, timestamp, data}`, as Standard Webhooks recommends. */
export function webhookPayload(task: DeliveryTask, now: Date): string {
  const content = task.content;
  if (content.channel !== 'webhook') throw new Error(`webhook adapter given ${content.channel} content`);
  return JSON.stringify({ type: content.type, timestamp: now.toISOString(), data: content.data });
}

export function createWebhookAdapter(options: WebhookAdapterOptions): ProviderAdapter {
  const now = options.now ?? (() => new Date());
  const agent = new Agent({
    connect: { lookup: options.guard.lookup, timeout: options.timeoutMs },
    connections: options.connections,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
  });

  // Endpoint URLs parsed and their IP literals checked once, not per attempt (a handful of endpoints take
  // every delivery). Host names are checked inside every new connection's DNS lookup instead.
  const targets = new Map<string, URL | string>();
  function targetOf(raw: string): URL | string {
    let target = targets.get(raw);
    if (target === undefined) {
      try {
        target = new URL(raw);
        options.guard.checkLiteral(target.hostname);
      } catch (error) {
        target = describe(error);
      }
      if (targets.size >= MAX_CACHED_TARGETS) targets.delete(targets.keys().next().value!);
      targets.set(raw, target);
    }
    return target;
  }

  async function send(task: DeliveryTask, signal: AbortSignal): Promise<Outcome> {
    const hook = task.destination;
    if (hook.channel !== 'webhook') return { kind: 'failed', reason: 'webhook delivery without an endpoint' };
    const target = targetOf(hook.url);
    if (typeof target === 'string') return { kind: 'failed', reason: `endpoint refused: ${target}` };
    const url = target;
    const at = now();
    const body = webhookPayload(task, at);
    const timestamp = Math.floor(at.getTime() / 1000);
    // One controller for both ends of the attempt: its whole time budget, and the dispatcher's shutdown.
    const attempt = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      attempt.abort();
    }, options.timeoutMs);
    const onShutdown = () => attempt.abort();
    signal.addEventListener('abort', onShutdown, { once: true });
    try {
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'user-agent': 'Herald-Webhooks/1',
        'webhook-id': task.deliveryId,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': signWebhook(hook.secrets, task.deliveryId, timestamp, body),
      };
      // The endpoint's own trace can continue the Send's. Unsigned: Standard Webhooks signs the id, the
      // timestamp and the body, so receivers verify as before.
      if (task.traceParent) headers.traceparent = task.traceParent;
      const res = await request(url, {
        method: 'POST',
        dispatcher: agent,
        signal: attempt.signal,
        headers,
        body,
      });
      const response = await readStart(res.body);
      return classify(res.statusCode, res.headers, response, at);
    } catch (error) {
      if (timedOut) return { kind: 'retry', reason: `timeout: no answer within ${options.timeoutMs} ms` };
      if (signal.aborted) return { kind: 'retry', reason: 'aborted: the dispatcher is shutting down' };
      if (codeOf(error) === ADDRESS_REFUSED)
        return { kind: 'failed', reason: `endpoint refused: ${describe(error)}` };
      return { kind: 'retry', reason: `network: ${describe(error)}` };
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onShutdown);
    }
  }

  const name = options.name ?? 'webhook';
  return {
    name,
    channel: 'webhook',
    timeoutMs: options.timeoutMs,
    accepts: (task) => task.destination.channel === 'webhook' && task.content.channel === 'webhook',
    circuitKey: (task) =>
      `${name}:${originOf(task.destination.channel === 'webhook' ? task.destination.url : undefined)}`,
    send,
    close: () => agent.close(),
  };
}

type Headers = Record<string, string | string[] | undefined>;

function header(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function classify(status: number, headers: Headers, response: string, at: Date): Outcome {
  const detail = { statusCode: status, response };
  if (status >= 200 && status < 300) return { kind: 'sent', providerMessageId: null, ...detail };
  if (status === 410) {
    return { kind: 'invalid_destination', reason: 'endpoint answered 410 Gone', ...detail };
  }
  if (header(headers, 'webhook-delivery')?.toLowerCase() === 'abort-message') {
    return { kind: 'failed', reason: `endpoint aborted the message (HTTP ${status})`, ...detail };
  }
  if (status >= 300 && status < 400) {
    const location = header(headers, 'location') ?? '';
    return {
      kind: 'failed',
      reason: `redirect (HTTP ${status}) not followed: ${location.slice(0, 200)}`,
      ...detail,
    };
  }
  const retryAfterMs =
    status === 429 || status >= 500 ? parseRetryAfter(header(headers, 'retry-after'), at) : undefined;
  return { kind: 'retry', reason: `endpoint answered HTTP ${status}`, retryAfterMs, ...detail };
}

/** The first bytes of the answer, for the attempt log; the rest is discarded. */
async function readStart(body: AsyncIterable<Buffer> & { destroy(): unknown }): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= RESPONSE_KEPT_BYTES) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, RESPONSE_KEPT_BYTES).toString('utf8');
}

function originOf(url: string | undefined): string {
  try {
    return url ? new URL(url).host : 'unknown';
  } catch {
    return 'invalid';
  }
}

function codeOf(error: unknown): string | undefined {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  const code = (cause as { code?: unknown } | null)?.code ?? (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function describe(error: unknown): string {
  if (error instanceof errors.UndiciError) return `${error.message} (${error.code})`;
  if (error instanceof Error) {
    const code = codeOf(error);
    return code ? `${error.message} (${code})` : error.message;
  }
  return String(error);
}
