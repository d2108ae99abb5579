// The push services every phase sends to: test/emulators' APNs (HTTP/2 over TLS) and Web Push (HTTPS)
// emulators, run in a child process (push-emulator-child.ts) so that answering does not take turns with the
// load generator's event loop, and so their CPU is counted apart. Both check each request as the real service
// does (the APNs provider JWT, the VAPID JWT, decryption of the Web Push body); the child stamps each arrival
// as it is recorded, checks what it carried, and reports when a phase's expected count of distinct
// deliveries is in.
import type { TestSubscription } from '../../test/emulators/webpush.js';
import { type BenchChild, ChildTimeoutError, forkBenchChild, isObject } from './dispatch-child.js';

const START_TIMEOUT_MS = 30_000;
const REPLY_TIMEOUT_MS = 60_000;

export type PushPlatform = 'apns' | 'webpush';

/** Parent to child: start both emulators; the APNs one trusts this key for provider JWTs. */
export interface StartMessage {
  kind: 'start';
  keyId: string;
  teamId: string;
  publicKey: string;
  topic: string;
}

/** Parent to child: `count` new browser subscriptions. */
export interface SubscribeMessage {
  kind: 'subscribe';
  count: number;
}

/** Parent to child: forget earlier arrivals and expect `count` distinct deliveries on `platform`. */
export interface ExpectMessage {
  kind: 'expect';
  phase: number;
  platform: PushPlatform;
  count: number;
}

/** Parent to child: send what arrived in the current phase. */
export interface CollectMessage {
  kind: 'collect';
}

export type EmulatorCommand = StartMessage | SubscribeMessage | ExpectMessage | CollectMessage;

/** Child to parent: it listens for commands (one sent earlier could be lost). */
export interface AliveMessage {
  kind: 'alive';
}

/** Child to parent: both emulators listen. */
export interface ReadyMessage {
  kind: 'ready';
  apnsPort: number;
  apnsCaFile: string;
  webPushOrigin: string;
  webPushCaFile: string;
}

export interface SubscriptionsMessage {
  kind: 'subscriptions';
  subscriptions: TestSubscription[];
}

/** Child to parent: the phase's expected number of distinct deliveries has arrived. */
export interface CompleteMessage {
  kind: 'complete';
  phase: number;
}

/**
 * Child to parent, in answer to collect: every request of the phase in arrival order. `keys`: the delivery it
 * carried (APNs: apns-id; Web Push: the decrypted payload's notification_id; '' when it had none);
 * `destinations`: the device token or subscription id it was posted to; `problems`: '' when every check
 * held, else the first that failed.
 */
export interface ArrivalsMessage {
  kind: 'arrivals';
  keys: string[];
  /** Epoch ms (sub-millisecond), when the emulator recorded the request. */
  times: number[];
  statuses: number[];
  destinations: string[];
  problems: string[];
}

export function isEmulatorCommand(value: unknown): value is EmulatorCommand {
  if (!isObject(value)) return false;
  switch (value.kind) {
    case 'start':
      return [value.keyId, value.teamId, value.publicKey, value.topic].every((v) => typeof v === 'string');
    case 'subscribe':
      return Number.isSafeInteger(value.count);
    case 'expect':
      return (
        Number.isSafeInteger(value.phase) &&
        (value.platform === 'apns' || value.platform === 'webpush') &&
        Number.isSafeInteger(value.count)
      );
    case 'collect':
      return true;
    default:
      return false;
  }
}

function isAlive(value: unknown): value is AliveMessage {
  return isObject(value) && value.kind === 'alive';
}

function isReady(value: unknown): value is ReadyMessage {
  return (
    isObject(value) &&
    value.kind === 'ready' &&
    Number.isSafeInteger(value.apnsPort) &&
    [value.apnsCaFile, value.webPushOrigin, value.webPushCaFile].every((v) => typeof v === 'string')
  );
}

function isSubscriptions(value: unknown): value is SubscriptionsMessage {
  return isObject(value) && value.kind === 'subscriptions' && Array.isArray(value.subscriptions);
}

function isComplete(value: unknown): value is CompleteMessage {
  return isObject(value) && value.kind === 'complete' && Number.isSafeInteger(value.phase);
}

function isArrivals(value: unknown): value is ArrivalsMessage {
  if (!isObject(value) || value.kind !== 'arrivals') return false;
  const { keys, times, statuses, destinations, problems } = value;
  const arrays = [keys, times, statuses, destinations, problems];
  if (!arrays.every(Array.isArray)) return false;
  const n = (keys as unknown[]).length;
  return arrays.every((a) => (a as unknown[]).length === n);
}

export interface PushEmulators {
  readonly pid: number;
  readonly apnsPort: number;
  readonly apnsCaFile: string;
  readonly webPushOrigin: string;
  readonly webPushCaFile: string;
  subscribe(count: number): Promise<TestSubscription[]>;
  /** Starts a phase: earlier arrivals are forgotten. */
  expect(platform: PushPlatform, count: number): void;
  /** Resolves true once the expected deliveries arrived, false when `timeoutMs` passed first. */
  waitComplete(timeoutMs: number): Promise<boolean>;
  collect(): Promise<ArrivalsMessage>;
  stop(): Promise<void>;
}

export async function startPushEmulators(options: Omit<StartMessage, 'kind'>): Promise<PushEmulators> {
  const child: BenchChild = forkBenchChild(
    new URL('./push-emulator-child.ts', import.meta.url),
    'push emulators',
  );
  try {
    await child.next(isAlive, START_TIMEOUT_MS, 'alive message');
    const start: StartMessage = { kind: 'start', ...options };
    child.send(start);
    const ready = await child.next(isReady, START_TIMEOUT_MS, 'ready message');
    let phase = 0;
    return {
      pid: child.pid,
      apnsPort: ready.apnsPort,
      apnsCaFile: ready.apnsCaFile,
      webPushOrigin: ready.webPushOrigin,
      webPushCaFile: ready.webPushCaFile,
      async subscribe(count) {
        const message: SubscribeMessage = { kind: 'subscribe', count };
        child.send(message);
        const { subscriptions } = await child.next(isSubscriptions, REPLY_TIMEOUT_MS, 'subscriptions');
        if (subscriptions.length !== count) {
          throw new Error(`asked for ${count} subscriptions, got ${subscriptions.length}`);
        }
        return subscriptions;
      },
      expect(platform, count) {
        phase++;
        const message: ExpectMessage = { kind: 'expect', phase, platform, count };
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
        return child.next(isArrivals, REPLY_TIMEOUT_MS, 'arrivals');
      },
      stop: () => child.stop(),
    };
  } catch (error) {
    await child.stop();
    throw error;
  }
}
