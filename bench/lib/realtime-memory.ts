// Server memory for the fanout benchmark: resident set size from /proc, read after a full garbage
// collection so it counts what live connections hold, not garbage not yet collected. Herald's child is
// started with its inspector on a free port (NODE_OPTIONS=--inspect=127.0.0.1:0), and the collection is
// asked for over the DevTools protocol (HeapProfiler.collectGarbage), without touching Herald's code.
import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';

const INSPECTOR_URL = /Debugger listening on (ws:\/\/\S+)/;
const GC_TIMEOUT_MS = 15_000;

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

/** Runs a full GC in the process behind `url` (a DevTools WebSocket) and resolves when it is done. */
export function collectGarbageOverInspector(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const finish = (error?: Error) => {
      clearTimeout(timer);
      ws.terminate();
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(
      () => finish(new Error(`no GC answer within ${GC_TIMEOUT_MS} ms`)),
      GC_TIMEOUT_MS,
    );
    ws.on('error', (error) => finish(error));
    ws.on('open', () => ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' })));
    ws.on('message', (data) => {
      const answer: unknown = JSON.parse(data.toString());
      if (typeof answer === 'object' && answer !== null && 'id' in answer && answer.id === 1) {
        finish('error' in answer ? new Error(JSON.stringify(answer.error)) : undefined);
      }
    });
  });
}
