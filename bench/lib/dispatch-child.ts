// A helper process of the dispatch benchmark (the webhook receiver, the pg-boss workers), forked with tsx
// and driven over the IPC channel, so it has its own event loop and its CPU can be counted apart. Messages
// that arrive before anyone waits for them are kept, so a reply cannot be missed.
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const STOP_TIMEOUT_MS = 10_000;
const STDERR_LINES_KEPT = 20;

export interface BenchChild {
  readonly pid: number;
  send(message: object): void;
  /** The next message `accepts` takes (kept ones first); rejects when `timeoutMs` passes or the child exits. */
  next<T>(accepts: (message: unknown) => message is T, timeoutMs: number, what: string): Promise<T>;
  stop(): Promise<void>;
}

/** No accepted message within the time allowed. */
export class ChildTimeoutError extends Error {}

interface Waiter {
  accepts: (message: unknown) => boolean;
  resolve: (message: unknown) => void;
  reject: (error: Error) => void;
}

/** Forks `entry` (a .ts module next to this one) as `name`; it inherits this process's environment. */
export function forkBenchChild(entry: URL, name: string): BenchChild {
  const child = fork(fileURLToPath(entry), [], {
    cwd: repoRoot,
    // Not this process's execArgv: tsx's CLI adds loader flags that are its own business.
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  const stderr: string[] = [];
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr.push(...chunk.split('\n').filter(Boolean));
    stderr.splice(0, Math.max(0, stderr.length - STDERR_LINES_KEPT));
  });
  const kept: unknown[] = [];
  const waiters = new Set<Waiter>();
  let exited: string | undefined;

  child.on('message', (message: unknown) => {
    for (const waiter of waiters) {
      if (!waiter.accepts(message)) continue;
      waiters.delete(waiter);
      waiter.resolve(message);
      return;
    }
    kept.push(message);
  });
  child.once('exit', (code, signal) => {
    exited = `${name} exited (code ${code}, signal ${signal})${stderr.length ? `\n${stderr.join('\n')}` : ''}`;
    for (const waiter of waiters) waiter.reject(new Error(exited));
    waiters.clear();
  });

  return {
    pid: child.pid!,
    send(message) {
      if (child.connected) child.send(message);
    },
    next<T>(accepts: (message: unknown) => message is T, timeoutMs: number, what: string): Promise<T> {
      const index = kept.findIndex(accepts);
      if (index >= 0) {
        const [message] = kept.splice(index, 1);
        if (accepts(message)) return Promise.resolve(message);
      }
      if (exited) return Promise.reject(new Error(exited));
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new ChildTimeoutError(`${name}: no ${what} within ${timeoutMs} ms`));
        }, timeoutMs);
        const waiter: Waiter = {
          accepts,
          resolve: (message) => {
            clearTimeout(timer);
            if (accepts(message)) resolve(message);
          },
          reject: (error) => {
            clearTimeout(timer);
            reject(error);
          },
        };
        waiters.add(waiter);
      });
    },
    stop: () => stopChild(child),
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable between processes on one machine. */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
