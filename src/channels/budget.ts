// For SDK calls that cannot be cancelled: past the attempt's time budget, or at shutdown, the attempt is
// answered as a retry (the call finishes in the background and its answer is dropped).
import type { Outcome } from '../delivery/provider.js';

export function withinBudget(
  attempt: Promise<Outcome>,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const timer = setTimeout(
      () => done({ kind: 'retry', reason: `timeout: no answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
    const onAbort = () => done({ kind: 'retry', reason: 'aborted: the dispatcher is shutting down' });
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    function done(outcome: Outcome) {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(outcome);
    }
    void attempt.then(done);
  });
}
