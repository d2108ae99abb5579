// CPU accounting for the real-time benchmarks, on top of cpu.ts: the load generator is this process plus
// client children, so their CPU is added to the generator's share and taken out of "other".
import { type CpuSubjects, cpuShares, snapshotCpu } from './cpu.js';

export interface RealtimeCpu {
  /** This process and every generator child, in cores (1.0 = one core busy). */
  generator: number;
  /** The busiest single generator process: near 1.0 means that process was the bottleneck. */
  generatorBusiestProcess: number;
  server: number | undefined;
  postgres: number;
  other: number;
  /** Busy fraction of all cores together (0..1). */
  machine: number;
  /** How long the window lasted. */
  wallMs: number;
}

/** Starts counting; the returned function ends the window and gives the shares over it. */
export function startCpuWindow(subjects: CpuSubjects, generatorPids: readonly number[]): () => RealtimeCpu {
  const before = snapshotCpu(subjects);
  const childrenBefore = generatorPids.map((pid) => snapshotCpu({ serverPid: pid }));
  const startedAt = performance.now();
  return () => {
    const after = snapshotCpu(subjects);
    const shares = cpuShares(before, after);
    const children = generatorPids.map(
      (pid, i) => cpuShares(childrenBefore[i]!, snapshotCpu({ serverPid: pid })).server ?? 0,
    );
    const childrenTotal = children.reduce((sum, share) => sum + share, 0);
    return {
      generator: shares.generator + childrenTotal,
      generatorBusiestProcess: Math.max(shares.generator, ...children),
      server: shares.server,
      postgres: shares.postgres,
      other: Math.max(0, shares.other - childrenTotal),
      machine: shares.machine,
      wallMs: performance.now() - startedAt,
    };
  };
}

const QUIET_SHARE = 0.1;
const QUIET_WINDOW_MS = 500;

/**
 * Waits (at most `timeoutMs`) until the server and its database backends use less than a tenth of a core
 * over half a second: work a phase left behind (status writes, follow-up frames) must not be counted in the
 * next one. Resolves to whether they went quiet.
 */
export async function waitUntilQuiet(subjects: CpuSubjects, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const before = snapshotCpu(subjects);
    await new Promise((resolve) => setTimeout(resolve, QUIET_WINDOW_MS));
    const shares = cpuShares(before, snapshotCpu(subjects));
    if ((shares.server ?? 0) < QUIET_SHARE && shares.postgres < QUIET_SHARE) return true;
  }
  return false;
}
