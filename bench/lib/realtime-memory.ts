// Server memory for the fanout benchmark: resident set size from /proc, read after a full garbage
// collection so it counts what live connections hold, not garbage not yet collected. Herald's child is
// started with its inspector on a free port (NODE_OPTIONS=--inspect=127.0.0.1:0), and the collection is
// asked for over the DevTools protocol (HeapProfiler.collectGarbage), without touching Herald's code; the
// same session profiles one phase of a run (Profiler.start/stop) when --cpu-prof asks for it.
import { readFileSync, writeFileSync } from 'node:fs';
import { WebSocket } from 'ws';

const INSPECTOR_URL = /Debugger listening on (ws:\/\/\S+)/;
const CALL_TIMEOUT_MS = 15_000;

/** VmRSS of one process in bytes. */
export function residentBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kb) * 1024;
}

/** The inspector's WebSocket URL from the lines Node printed on stderr, if it printed one. */
export function inspectorUrl(stderrLines: readonly string[]): string | undefined {
  for (const line of stderrLines) {
    const url = INSPECTOR_URL.exec(line)?.[1];
    if (url) return url;
  }
  return undefined;
}

/** Lines Node prints about its inspector: not server warnings. */
export function isInspectorNotice(line: string): boolean {
  return (
    INSPECTOR_URL.test(line) ||
    line.startsWith('For help, see: https://nodejs.org/') ||
    line === 'Debugger attached.' ||
    line.startsWith('Debugger ending on ')
  );
}

/** One DevTools protocol session with the process behind `url` (a WebSocket), one call at a time. */
export class InspectorSession {
  private readonly ws: WebSocket;
  private readonly opened: Promise<void>;
  private nextId = 1;
  private readonly pending = new Map<number, (answer: { result?: unknown; error?: unknown }) => void>();

  constructor(url: string) {
    this.ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1024 * 1024 * 1024 });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (data) => {
      const answer = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: unknown };
      if (answer.id !== undefined) this.pending.get(answer.id)?.(answer);
    });
  }

  async call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    await this.opened;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no answer to ${method} within ${CALL_TIMEOUT_MS} ms`));
      }, CALL_TIMEOUT_MS);
      this.pending.set(id, (answer) => {
        clearTimeout(timer);
        this.pending.delete(id);
        if (answer.error) reject(new Error(`${method}: ${JSON.stringify(answer.error)}`));
        else resolve(answer.result);
      });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  close(): void {
    this.ws.terminate();
  }
}

/**
 * Runs a full GC in the process behind `url` (a DevTools WebSocket); resolves, once it is done, to the V8 heap
 * then in use (bytes).
 */
export async function collectGarbageOverInspector(url: string): Promise<number> {
  const session = new InspectorSession(url);
  try {
    await session.call('HeapProfiler.collectGarbage');
    const { usedSize } = (await session.call('Runtime.getHeapUsage')) as { usedSize: number };
    return usedSize;
  } finally {
    session.close();
  }
}

/** Where a process's memory sits, as Node sees it (bytes). */
export interface MemoryBreakdown {
  rss: number;
  /** Pages V8 holds for its heap, every space. */
  heapTotal: number;
  /** Of those, the young generation's (it grows under allocation and is not given back by a full GC). */
  newSpace: number;
  /** Memory of Buffers and other objects V8 tracks outside its heap. */
  external: number;
}

const MEMORY_EXPRESSION = `JSON.stringify((() => {
  const m = process.memoryUsage();
  const spaces = process.getBuiltinModule?.('v8')?.getHeapSpaceStatistics() ?? [];
  const young = spaces.filter((s) => s.space_name === 'new_space' || s.space_name === 'new_large_object_space');
  return { rss: m.rss, heapTotal: m.heapTotal, external: m.external,
    newSpace: young.reduce((sum, s) => sum + s.space_size, 0) };
})())`;

/** The memory breakdown of the process behind `url`, read over its inspector. */
export async function memoryOverInspector(url: string): Promise<MemoryBreakdown> {
  const session = new InspectorSession(url);
  try {
    const { result } = (await session.call('Runtime.evaluate', { expression: MEMORY_EXPRESSION })) as {
      result: { value: string };
    };
    return JSON.parse(result.value) as MemoryBreakdown;
  } finally {
    session.close();
  }
}

/**
 * Starts V8's CPU profiler in the process behind `url`; the returned function stops it and writes the profile
 * (a .cpuprofile file, for Chrome DevTools or `node --cpu-prof` tooling) to `file`.
 */
export async function profileOverInspector(url: string, file: string): Promise<() => Promise<void>> {
  const session = new InspectorSession(url);
  await session.call('Profiler.enable');
  await session.call('Profiler.start');
  return async () => {
    try {
      const { profile } = (await session.call('Profiler.stop')) as { profile: unknown };
      writeFileSync(file, JSON.stringify(profile));
    } finally {
      session.close();
    }
  };
}
