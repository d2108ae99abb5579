// The record of what reached a test emulator, shared by the emulators under test/emulators/: each arrival is
// appended in order and wakes the tests waiting on it, and `waitFor` resolves as soon as a predicate over
// everything received so far holds (checked at once, then after each arrival), or rejects after a timeout
// with a message naming the emulator.

export interface Arrivals<T> {
  readonly received: T[];
  record(entry: T): void;
  /** Resolves once the predicate holds for what has arrived; rejects after timeoutMs. */
  waitFor(predicate: (received: readonly T[]) => boolean, timeoutMs: number): Promise<void>;
}

/** What follows `<name>: ` in waitFor's timeout error, given the timeout and how many entries had arrived. */
export type TimeoutMessage = (timeoutMs: number, count: number) => string;

const notMet: TimeoutMessage = (timeoutMs, count) => `not met within ${timeoutMs} ms (${count} received)`;

/**
 * `name` (the emulator's, as its other errors spell it) starts waitFor's timeout error, by default
 * `<name>: not met within <timeoutMs> ms (<count> received)`; `timeoutMessage` words the rest otherwise.
 */
export function arrivals<T>(name: string, timeoutMessage: TimeoutMessage = notMet): Arrivals<T> {
  const received: T[] = [];
  const waiters = new Set<() => void>();
  return {
    received,
    record(entry) {
      received.push(entry);
      for (const waiter of waiters) waiter();
    },
    waitFor(predicate, timeoutMs) {
      return new Promise<void>((resolve, reject) => {
        const waiter = () => {
          if (!predicate(received)) return;
          waiters.delete(waiter);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`${name}: ${timeoutMessage(timeoutMs, received.length)}`));
        }, timeoutMs);
        waiters.add(waiter);
        waiter();
      });
    },
  };
}
