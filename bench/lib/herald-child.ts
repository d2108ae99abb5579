// Herald in a child process (`node dist/src/main.js serve`, the compiled build), so on a 2-core machine the load
// generator does not share the server's event loop. The child reports its URL and, on an empty database,
// the bootstrap admin key on stdout; both are read from there.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { compiled } from './compiled.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const LISTENING = /Herald is listening on (\S+) \((\w+)\); native gRPC on (\S+)/;
const BOOTSTRAP_KEY = /hk_[A-Za-z0-9_-]{43}/;
const START_TIMEOUT_MS = 60_000;
// Graceful shutdown waits for in-flight RPCs for up to 10 s by default; the load has stopped by then.
const STOP_TIMEOUT_MS = 15_000;
const STDERR_LINES_KEPT = 40;

export interface HeraldChildOptions {
  /** PostgreSQL URL; undefined runs the embedded PGlite engine in `dataDir`. */
  databaseUrl: string | undefined;
  /** PGlite's data directory; unused with PostgreSQL. */
  dataDir: string | undefined;
  /** Directory for a V8 CPU profile of the server (written when it exits), or undefined. */
  cpuProfDir: string | undefined;
}

export interface HeraldChild {
  readonly pid: number;
  /** The main port (Connect, gRPC-Web, WebSockets). */
  readonly url: string;
  /** The native gRPC port, which gRPC clients use. */
  readonly grpcUrl: string;
  readonly engine: string;
  readonly apiKey: string;
  /** Warnings and errors the server logged (pino JSON lines on stderr). */
  readonly logLines: () => readonly string[];
  stop(): Promise<void>;
}

function childEnv(options: HeraldChildOptions): NodeJS.ProcessEnv {
  // Inherit the rest (HERALD_DB_POOL_MAX, for instance) so a run can try other server settings.
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HERALD_HOST: '127.0.0.1',
    // Port 0: the kernel picks a free port, which the "listening" line reports.
    HERALD_PORT: '0',
    HERALD_GRPC_PORT: '0',
    HERALD_LOG_LEVEL: process.env.HERALD_LOG_LEVEL ?? 'warn',
    HERALD_BOOTSTRAP_ADMIN_KEY: 'true',
    // The fanout bench holds 10,000 WebSockets plus its control connections: above the default cap of 10,000.
    HERALD_MAX_CONNECTIONS: process.env.HERALD_MAX_CONNECTIONS ?? '20000',
  };
  if (options.databaseUrl) env.DATABASE_URL = options.databaseUrl;
  else delete env.DATABASE_URL;
  if (options.dataDir) env.HERALD_DATA_DIR = options.dataDir;
  return env;
}

export async function startHeraldChild(options: HeraldChildOptions): Promise<HeraldChild> {
  const profiling = options.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`] : [];
  // The compiled build, as production runs it (`npm run bench` compiles it first).
  const child = spawn(process.execPath, [...profiling, compiled('src/main.ts'), 'serve'], {
    cwd: repoRoot,
    env: childEnv(options),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderrLines: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    stderrLines.push(line);
    if (stderrLines.length > STDERR_LINES_KEPT) stderrLines.shift();
  });
  try {
    const { url, grpcUrl, engine, apiKey } = await waitUntilListening(child, () => stderrLines.join('\n'));
    return {
      pid: child.pid!,
      url,
      grpcUrl,
      engine,
      apiKey,
      logLines: () => stderrLines,
      stop: () => stopChild(child),
    };
  } catch (error) {
    await stopChild(child);
    throw error;
  }
}

function waitUntilListening(
  child: ChildProcess,
  stderrTail: () => string,
): Promise<{ url: string; grpcUrl: string; engine: string; apiKey: string }> {
  return new Promise((resolve, reject) => {
    let apiKey: string | undefined;
    const timer = setTimeout(
      () => reject(new Error(`Herald did not start within ${START_TIMEOUT_MS} ms\n${stderrTail()}`)),
      START_TIMEOUT_MS,
    );
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`Herald exited during start (code ${code}, signal ${signal})\n${stderrTail()}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      apiKey ??= BOOTSTRAP_KEY.exec(line)?.[0];
      const listening = LISTENING.exec(line);
      if (!listening) return;
      clearTimeout(timer);
      if (!apiKey) reject(new Error('Herald started without printing a bootstrap key (database not empty?)'));
      else resolve({ url: listening[1]!, grpcUrl: listening[3]!, engine: listening[2]!, apiKey });
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = once(child, 'exit');
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(
    () => child.pid !== undefined && process.kill(child.pid, 'SIGKILL'),
    STOP_TIMEOUT_MS,
  );
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}
