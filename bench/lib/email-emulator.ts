// The mail submission server every e-mail phase sends to: test/emulators' SMTP emulator (smtp-server with a
// self-signed certificate, STARTTLS, AUTH PLAIN/LOGIN, each accepted message parsed by mailparser before it
// is answered), run in a child process (email-emulator-child.ts) so that answering does not take turns with
// the load generator's event loop, and so its CPU is counted apart. The child stamps each message as it is
// recorded, checks what it carried when the parent collects, and reports when a phase's expected count of
// distinct messages is in.
import { type BenchChild, ChildTimeoutError, forkBenchChild, isObject } from './dispatch-child.js';
import type { ArrivalsMessage } from './push-emulators.js';

const START_TIMEOUT_MS = 30_000;
const REPLY_TIMEOUT_MS = 60_000;

/** Parent to child: start the emulator, requiring AUTH with this user. */
export interface StartMessage {
  kind: 'start';
  user: string;
  password: string;
}

/** Parent to child: forget earlier arrivals and expect `count` distinct messages. */
export interface ExpectMessage {
  kind: 'expect';
  phase: number;
  count: number;
}

/** Parent to child: send what arrived in the current phase. */
export interface CollectMessage {
  kind: 'collect';
}

export type EmulatorCommand = StartMessage | ExpectMessage | CollectMessage;

interface AliveMessage {
  kind: 'alive';
}

interface ReadyMessage {
  kind: 'ready';
  port: number;
  caFile: string;
}

interface CompleteMessage {
  kind: 'complete';
  phase: number;
}

/**
 * Child to parent, in answer to collect: every message of the phase in arrival order (push's shape, so
 * push-measure.ts's PushSendLog joins it): `keys` the Message-ID header ('' without one), `statuses` 250 for an
 * accepted message (the emulator records only those), `destinations` the RCPT TO addresses joined with ',',
 * `problems` '' when every check held, else the first that failed. `sessions`: SMTP connections opened in the
 * phase.
 */
export interface EmailArrivalsMessage extends ArrivalsMessage {
  sessions: number;
}

export function isEmulatorCommand(value: unknown): value is EmulatorCommand {
  if (!isObject(value)) return false;
  switch (value.kind) {
    case 'start':
      return typeof value.user === 'string' && typeof value.password === 'string';
    case 'expect':
      return Number.isSafeInteger(value.phase) && Number.isSafeInteger(value.count);
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
    Number.isSafeInteger(value.port) &&
    typeof value.caFile === 'string'
  );
}

function isComplete(value: unknown): value is CompleteMessage {
  return isObject(value) && value.kind === 'complete' && Number.isSafeInteger(value.phase);
}

function isArrivals(value: unknown): value is EmailArrivalsMessage {
  if (!isObject(value) || value.kind !== 'arrivals' || !Number.isSafeInteger(value.sessions)) return false;
  const { keys, times, statuses, destinations, problems } = value;
  const arrays = [keys, times, statuses, destinations, problems];
  if (!arrays.every(Array.isArray)) return false;
  const n = (keys as unknown[]).length;
  return arrays.every((a) => (a as unknown[]).length === n);
}

export interface EmailEmulator {
  readonly pid: number;
  readonly port: number;
  /** The emulator's certificate (PEM file): the `ca` a client must trust. */
  readonly caFile: string;
  /** Starts a phase: earlier arrivals are forgotten. */
  expect(count: number): void;
  /** Resolves true once the expected messages arrived, false when `timeoutMs` passed first. */
  waitComplete(timeoutMs: number): Promise<boolean>;
  collect(): Promise<EmailArrivalsMessage>;
  stop(): Promise<void>;
}

export async function startEmailEmulator(options: Omit<StartMessage, 'kind'>): Promise<EmailEmulator> {
  const child: BenchChild = forkBenchChild(
    new URL('./email-emulator-child.ts', import.meta.url),
    'SMTP emulator',
  );
  try {
    await child.next(isAlive, START_TIMEOUT_MS, 'alive message');
    const start: StartMessage = { kind: 'start', ...options };
    child.send(start);
    const ready = await child.next(isReady, START_TIMEOUT_MS, 'ready message');
    let phase = 0;
    return {
      pid: child.pid,
      port: ready.port,
      caFile: ready.caFile,
      expect(count) {
        phase++;
        const message: ExpectMessage = { kind: 'expect', phase, count };
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
