// The webhook receiver every dispatch phase posts to: a plain node:http server in a child process
// (dispatch-receiver-child.ts), so answering does not take turns with the load generator's event loop. It
// answers 200 at once, records when each webhook-id first arrived, and verifies every Nth request's
// Standard Webhooks signature with the `standardwebhooks` package, so the bench proves the bodies are signed.
import { type BenchChild, ChildTimeoutError, forkBenchChild, isObject } from './dispatch-child.js';

const START_TIMEOUT_MS = 30_000;
const COLLECT_TIMEOUT_MS = 30_000;

/** Parent to child: forget earlier arrivals and expect `count` distinct webhook-ids signed with `secret`. */
export interface ExpectMessage {
  kind: 'expect';
  phase: number;
  secret: string;
  count: number;
  verifyEvery: number;
}

/** Parent to child: send what arrived so far. */
export interface CollectMessage {
  kind: 'collect';
}

/** Child to parent. */
export interface ListeningMessage {
  kind: 'listening';
  port: number;
}

/** Child to parent: the expected count of distinct webhook-ids has arrived. */
export interface CompleteMessage {
  kind: 'complete';
  phase: number;
}

/** Child to parent, in answer to collect: first arrival per webhook-id (epoch ms) and what was checked. */
export interface ArrivalsMessage {
  kind: 'arrivals';
  ids: string[];
  times: number[];
  /** Requests for a webhook-id that had already arrived. */
  duplicates: number;
  /** Requests without a webhook-id header. */
  anonymous: number;
  /** Sampled requests whose signature verified, and those that did not. */
  verified: number;
  rejected: number;
  firstRejection: string | null;
}

export type ReceiverCommand = ExpectMessage | CollectMessage;

export function isReceiverCommand(value: unknown): value is ReceiverCommand {
  if (!isObject(value)) return false;
  if (value.kind === 'collect') return true;
  return (
    value.kind === 'expect' &&
    Number.isSafeInteger(value.phase) &&
    typeof value.secret === 'string' &&
    Number.isSafeInteger(value.count) &&
    Number.isSafeInteger(value.verifyEvery)
  );
}

function isListening(value: unknown): value is ListeningMessage {
  return isObject(value) && value.kind === 'listening' && Number.isSafeInteger(value.port);
}

function isComplete(value: unknown): value is CompleteMessage {
  return isObject(value) && value.kind === 'complete' && Number.isSafeInteger(value.phase);
}

function isArrivals(value: unknown): value is ArrivalsMessage {
  if (!isObject(value) || value.kind !== 'arrivals') return false;
  const { ids, times } = value;
  return (
    Array.isArray(ids) &&
    Array.isArray(times) &&
    ids.length === times.length &&
    ids.every((id) => typeof id === 'string') &&
    times.every((t) => typeof t === 'number') &&
    [value.duplicates, value.anonymous, value.verified, value.rejected].every(Number.isSafeInteger) &&
    (value.firstRejection === null || typeof value.firstRejection === 'string')
  );
}

export interface WebhookReceiver {
  readonly pid: number;
  readonly url: string;
  /** Starts a phase: earlier arrivals are forgotten. */
  expect(secret: string, count: number, verifyEvery: number): void;
  /** Resolves true once `count` distinct webhook-ids arrived, false when `timeoutMs` passed first. */
  waitComplete(timeoutMs: number): Promise<boolean>;
  collect(): Promise<ArrivalsMessage>;
  stop(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const child: BenchChild = forkBenchChild(
    new URL('./dispatch-receiver-child.ts', import.meta.url),
    'webhook receiver',
  );
  try {
    const { port } = await child.next(isListening, START_TIMEOUT_MS, 'listening message');
    let phase = 0;
    return {
      pid: child.pid,
      url: `http://127.0.0.1:${port}/webhook`,
      expect(secret, count, verifyEvery) {
        phase++;
        const message: ExpectMessage = { kind: 'expect', phase, secret, count, verifyEvery };
        child.send(message);
      },
      async waitComplete(timeoutMs) {
        // A late completion of an earlier, timed-out phase must not end this one.
        const current = phase;
        const ofThisPhase = (value: unknown): value is CompleteMessage =>
          isComplete(value) && value.phase === current;
        try {
          await child.next(ofThisPhase, timeoutMs, 'completion');
          return true;
        } catch (error) {
          if (error instanceof ChildTimeoutError) return false;
          throw error;
        }
      },
      collect() {
        const message: CollectMessage = { kind: 'collect' };
        child.send(message);
        return child.next(isArrivals, COLLECT_TIMEOUT_MS, 'arrivals');
      },
      stop: () => child.stop(),
    };
  } catch (error) {
    await child.stop();
    throw error;
  }
}
