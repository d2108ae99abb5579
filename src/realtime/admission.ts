// Admission control for live sessions starting (WebSocket handshakes and StreamNotifications calls). After a
// deploy or a network blip every client reconnects at once; each start costs an authentication and reads of
// the user's inbox. At most `limit` starts run at once; beyond that a start waits its turn, in arrival order,
// for up to `maxWaitMs` (and at most `maxQueued` wait), and is otherwise refused with a suggested delay: the
// time the starts ahead of it need at the rate starts are finishing now, jittered so the refused clients do
// not all come back in the same second. Health checks, Sends and live sessions are never queued here.

export interface AdmissionOptions {
  /** Starts in progress at once. */
  limit: number;
  /** How long a start may wait for its turn before it is refused. */
  maxWaitMs: number;
  /** Starts that may wait at once; more are refused at once. */
  maxQueued: number;
}

export type Admission =
  | { admitted: true; release: () => void }
  | { admitted: false; retryAfterMs: number; reason: 'queue full' | 'waited too long' | 'cancelled' };

export interface AdmissionTicket {
  readonly admitted: Promise<Admission>;
  /** The client went away while waiting: gives up its place (a slot it was given is released). */
  cancel(): void;
}

export interface AdmissionControl {
  request(): AdmissionTicket;
  inProgress(): number;
  waiting(): number;
}

/** Suggested delays stay within these bounds. */
export const MIN_RETRY_AFTER_MS = 1_000;
export const MAX_RETRY_AFTER_MS = 30_000;
/** Completions the finishing rate is estimated from. */
const RATE_WINDOW = 256;

const withinBounds = (ms: number) => Math.min(MAX_RETRY_AFTER_MS, Math.max(MIN_RETRY_AFTER_MS, ms));

/**
 * What a refused client is told (the WebSocket close reason, the stream's error message). The clients read
 * the delay from the text's end, `retry after N ms`.
 */
export function refusalMessage(retryAfterMs: number): string {
  return `too many sessions starting; retry after ${retryAfterMs} ms`;
}

interface Waiter {
  resolve: (admission: Admission) => void;
  timer: NodeJS.Timeout;
}

export function createAdmissionControl(options: AdmissionOptions): AdmissionControl {
  let running = 0;
  const queue: Waiter[] = [];
  // When recent starts finished (a ring): how fast the backlog drains.
  const finished = new Float64Array(RATE_WINDOW);
  let finishedCount = 0;

  function retryAfterMs(): number {
    const now = performance.now();
    const n = Math.min(finishedCount, RATE_WINDOW);
    const oldest = n > 0 ? finished[(finishedCount - n) % RATE_WINDOW]! : now;
    const perMs = n > 1 && now > oldest ? n / (now - oldest) : 0;
    const backlog = running + queue.length;
    // No start finished lately: nothing to estimate from; as long as one may wait.
    const drainMs = perMs > 0 ? backlog / perMs : options.maxWaitMs;
    // Spread over [0.5, 1.5) of it, within the bounds.
    return Math.round(withinBounds(withinBounds(drainMs) * (0.5 + Math.random())));
  }

  function slot(): Admission {
    running++;
    let released = false;
    return {
      admitted: true,
      release() {
        if (released) return;
        released = true;
        running--;
        finished[finishedCount++ % RATE_WINDOW] = performance.now();
        const next = queue.shift();
        if (next) {
          clearTimeout(next.timer);
          next.resolve(slot());
        }
      },
    };
  }

  return {
    request() {
      if (running < options.limit && queue.length === 0) {
        const admission = slot();
        return {
          admitted: Promise.resolve(admission),
          cancel: () => {
            if (admission.admitted) admission.release();
          },
        };
      }
      if (queue.length >= options.maxQueued) {
        return {
          admitted: Promise.resolve({ admitted: false, retryAfterMs: retryAfterMs(), reason: 'queue full' }),
          cancel: () => {},
        };
      }
      let given: Admission | undefined;
      let resolveWaiter: (admission: Admission) => void = () => {};
      const admitted = new Promise<Admission>((resolve) => {
        resolveWaiter = resolve;
      });
      const waiter: Waiter = {
        resolve: (admission) => {
          given = admission;
          resolveWaiter(admission);
        },
        timer: setTimeout(() => {
          queue.splice(queue.indexOf(waiter), 1);
          waiter.resolve({ admitted: false, retryAfterMs: retryAfterMs(), reason: 'waited too long' });
        }, options.maxWaitMs),
      };
      queue.push(waiter);
      return {
        admitted,
        cancel() {
          if (given?.admitted) {
            given.release();
            return;
          }
          const at = queue.indexOf(waiter);
          if (at < 0) return;
          queue.splice(at, 1);
          clearTimeout(waiter.timer);
          waiter.resolve({ admitted: false, retryAfterMs: 0, reason: 'cancelled' });
        },
      };
    },
    inProgress: () => running,
    waiting: () => queue.length,
  };
}
