// CPU accounting for one phase: the load generator (this process), the Herald child, the PostgreSQL
// backends and the whole machine. Read from process.cpuUsage, /proc and os.cpus(), so a reader can see
// which side was saturated.
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

// Linux reports per-process CPU in clock ticks; USER_HZ is 100 on every mainstream architecture.
const MS_PER_TICK = 10;

export interface CpuSnapshot {
  wallMs: number;
  self: NodeJS.CpuUsage;
  serverMs: number | undefined;
  postgresMs: Map<number, number>;
  machineBusyMs: number;
  machineTotalMs: number;
}

/** CPU time over the phase divided by its wall time: 1.0 is one core fully busy. */
export interface CpuShares {
  generator: number;
  server: number | undefined;
  postgres: number;
  /** Everything else on the machine: other processes competing for the same cores. */
  other: number;
  /** Busy fraction of all cores together (0..1). */
  machine: number;
}

/** utime + stime of one process in ms, or undefined when it is gone. */
function processCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may itself contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * MS_PER_TICK;
  } catch {
    return undefined;
  }
}

/** CPU ms of a process and its children (HERALD_WORKERS forks the server's workers as children). */
function processTreeCpuMs(pid: number): number | undefined {
  const own = processCpuMs(pid);
  if (own === undefined) return undefined;
  let total = own;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readProc(entry, 'stat');
    if (!stat) continue;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[1]) === pid) total += (Number(fields[11]) + Number(fields[12])) * MS_PER_TICK;
  }
  return total;
}

function readProc(pid: string, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * CPU ms per backend serving `database` (their title is "postgres: ... USER DATABASE HOST ..."), so
 * other databases on a shared server do not count. Per process, so backends that come and go cannot
 * make the difference negative.
 */
function postgresBackendsCpuMs(database: string): Map<number, number> {
  const backends = new Map<number, number>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || readProc(pid, 'comm')?.trim() !== 'postgres') continue;
    if (!readProc(pid, 'cmdline')?.includes(` ${database} `)) continue;
    const ms = processCpuMs(Number(pid));
    if (ms !== undefined) backends.set(Number(pid), ms);
  }
  return backends;
}

function machineCpuMs(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const { times } of os.cpus()) {
    busy += times.user + times.nice + times.sys + times.irq;
    total += times.user + times.nice + times.sys + times.irq + times.idle;
  }
  return { busy, total };
}

export interface CpuSubjects {
  /** The Herald child process. */
  serverPid?: number | undefined;
  /** The PostgreSQL database whose backends are counted. */
  database?: string | undefined;
}

export function snapshotCpu({ serverPid, database }: CpuSubjects): CpuSnapshot {
  const machine = machineCpuMs();
  return {
    wallMs: performance.now(),
    self: process.cpuUsage(),
    serverMs: serverPid === undefined ? undefined : processTreeCpuMs(serverPid),
    postgresMs: database === undefined ? new Map() : postgresBackendsCpuMs(database),
    machineBusyMs: machine.busy,
    machineTotalMs: machine.total,
  };
}

export function cpuShares(start: CpuSnapshot, end: CpuSnapshot): CpuShares {
  const wallMs = end.wallMs - start.wallMs;
  const selfMs = (end.self.user - start.self.user + end.self.system - start.self.system) / 1000;
  const serverMs =
    start.serverMs === undefined || end.serverMs === undefined ? undefined : end.serverMs - start.serverMs;
  let postgresMs = 0;
  for (const [pid, ms] of end.postgresMs) postgresMs += ms - (start.postgresMs.get(pid) ?? 0);
  const machine =
    (end.machineBusyMs - start.machineBusyMs) / Math.max(1, end.machineTotalMs - start.machineTotalMs);
  const accounted = (selfMs + (serverMs ?? 0) + postgresMs) / wallMs;
  return {
    generator: selfMs / wallMs,
    server: serverMs === undefined ? undefined : serverMs / wallMs,
    postgres: postgresMs / wallMs,
    other: Math.max(0, machine * os.cpus().length - accounted),
    machine,
  };
}

/**
 * Busy share of all cores while this process sleeps for `ms`: other work on the machine (another
 * build, a test suite) that would compete with the benchmark for the same cores.
 */
export async function backgroundLoad(ms: number): Promise<number> {
  const start = machineCpuMs();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const end = machineCpuMs();
  return (end.busy - start.busy) / Math.max(1, end.total - start.total);
}
