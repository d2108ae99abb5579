// A closed-loop load generator: `concurrency` workers each issue one call, wait for it, and issue the
// next, until the phase's time is up. Every completed call's latency is kept, so percentiles are exact.
import { type CpuShares, type CpuSubjects, cpuShares, snapshotCpu } from './cpu.js';

/** One call of the workload; resolves to the number of notifications it stored. */
export type Call = (worker: number) => Promise<number>;

export interface LoadOptions {
  concurrency: number;
  durationMs: number;
  call: Call;
  /** The Herald child and the database, whose CPU is reported separately. */
  subjects: CpuSubjects;
}

export interface LoadResult {
  notifications: number;
  calls: number;
  elapsedMs: number;
  /** Sorted ascending. */
  latenciesMs: Float64Array;
  errors: number;
  firstError: string | undefined;
  cpu: CpuShares;
}

// A benchmark that fails calls is measuring the wrong thing; give up early instead of spinning on errors.
const MAX_ERRORS = 20;

export class LoadError extends Error {}

export async function runLoad({ concurrency, durationMs, call, subjects }: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = [];
  let notifications = 0;
  let errors = 0;
  let firstError: string | undefined;
  const before = snapshotCpu(subjects);
  const deadline = before.wallMs + durationMs;

  async function worker(index: number): Promise<void> {
    while (performance.now() < deadline && errors < MAX_ERRORS) {
      const started = performance.now();
      try {
        const stored = await call(index);
        latencies.push(performance.now() - started);
        notifications += stored;
      } catch (error) {
        errors++;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  }

  // Calls still in flight at the deadline are awaited and counted, and so is the time they take.
  await Promise.all(Array.from({ length: concurrency }, (_, i) => worker(i)));
  const after = snapshotCpu(subjects);
  if (errors >= MAX_ERRORS) throw new LoadError(`${errors} calls failed; first: ${firstError}`);
  return {
    notifications,
    calls: latencies.length,
    elapsedMs: after.wallMs - before.wallMs,
    latenciesMs: Float64Array.from(latencies).sort(),
    errors,
    firstError,
    cpu: cpuShares(before, after),
  };
}

/** Nearest-rank percentile of an ascending array; NaN when empty. */
export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}
