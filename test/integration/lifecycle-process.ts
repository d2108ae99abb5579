// Runs the real `herald` command as a child process (node --import tsx src/main.ts, which starts faster than
// npx and makes the child's PID the server's own PID), and helpers around PGlite data directories.
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export { until } from '../support/until.js';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export const API_KEY_PATTERN = /^hk_[A-Za-z0-9_-]{43}$/;

/** The parent's environment without any Herald or database setting, plus `extra`. */
export function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(HERALD_|DATABASE_URL$|TEST_DATABASE_URL$)/.test(name)) env[name] = value;
  }
  return { ...env, ...extra };
}

function spawnHerald(args: string[], env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
    cwd: repoRoot,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Children still running; `killLeftovers` ends them by PID (used by afterAll hooks). */
const running = new Set<ChildProcess>();

export function killLeftovers(): void {
  for (const child of running) killChild(child);
  running.clear();
}

function killChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.pid, signal);
  } catch {
    // It exited in the meantime.
  }
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A long-running command (e.g. `outbox --follow`): its output so far, and a way to end it. */
export function startCli(args: string[], env: Record<string, string>) {
  const child = spawnHerald(args, env);
  running.add(child);
  const output = { stdout: '', stderr: '' };
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    output.stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    output.stderr += chunk;
  });
  const exited = new Promise<Exit>((resolve) => {
    child.once('close', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  return {
    output,
    exited,
    stop(signal: NodeJS.Signals = 'SIGINT'): Promise<Exit> {
      killChild(child, signal);
      return exited;
    },
  };
}

export interface CliResult extends Exit {
  stdout: string;
  stderr: string;
}

/** Runs one `herald ...` command to completion; kills it (by PID) if it outlives `timeoutMs`. */
export function runCli(args: string[], env: Record<string, string>, timeoutMs = 45_000): Promise<CliResult> {
  const child = spawnHerald(args, env);
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      killChild(child);
      reject(new Error(`herald ${args.join(' ')} did not finish within ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A `herald serve` child process. */
export class ServeProcess {
  stdout = '';
  stderr = '';
  readonly exited: Promise<Exit>;
  url = '';
  port = 0;
  engine = '';
  /** The native gRPC port's URL, unless it is off. */
  grpcUrl: string | undefined;
  bootstrapKey: string | undefined;

  private constructor(readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => {
      child.once('close', (code, signal) => {
        running.delete(child);
        resolve({ code, signal });
      });
    });
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error('herald serve did not start');
    return this.child.pid;
  }

  /** Starts `herald serve` on 127.0.0.1, port 0, and resolves once it prints where it listens. */
  static async start(env: Record<string, string>, timeoutMs = 45_000): Promise<ServeProcess> {
    const server = new ServeProcess(
      spawnHerald(['serve'], { HERALD_HOST: '127.0.0.1', HERALD_PORT: '0', HERALD_GRPC_PORT: '0', ...env }),
    );
    running.add(server.child);
    const listening = /Herald is listening on (http:\/\/\S+):(\d+) \((\w+)\); native gRPC (?:on (\S+)|off)/;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        server.kill();
        reject(new Error(`herald serve did not listen within ${timeoutMs} ms\n${server.stderr}`));
      }, timeoutMs);
      const check = () => {
        const match = listening.exec(server.stdout);
        if (!match) return;
        clearTimeout(timer);
        server.child.stdout?.off('data', check);
        server.url = `${match[1]}:${match[2]}`;
        server.port = Number(match[2]);
        server.engine = match[3]!;
        server.grpcUrl = match[4];
        server.bootstrapKey = /^\s+(hk_[A-Za-z0-9_-]{43})$/m.exec(server.stdout)?.[1];
        resolve();
      };
      server.child.stdout?.on('data', check);
      void server.exited.then((exit) => {
        clearTimeout(timer);
        reject(new Error(`herald serve exited early (${JSON.stringify(exit)})\n${server.stderr}`));
      });
    });
    return server;
  }

  /** Sends `signal` and waits for the exit; how long it took is part of the answer. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<Exit & { ms: number }> {
    const started = performance.now();
    killChild(this.child, signal);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.kill();
        reject(new Error(`herald serve did not exit within ${timeoutMs} ms after ${signal}\n${this.stderr}`));
      }, timeoutMs);
    });
    try {
      const exit = await Promise.race([this.exited, deadline]);
      return { ...exit, ms: performance.now() - started };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Last resort for cleanup: SIGKILL by PID if still running. */
  kill(): void {
    killChild(this.child);
  }

  /** The JSON log lines written to stderr. */
  logs(): Array<Record<string, unknown>> {
    return this.stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }
}

/** A temporary directory, removed by the returned function. */
export function tempDir(prefix: string): { path: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { path: dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A PGlite data directory made once with `herald migrate` (creating a cluster costs seconds; copying one
 * costs milliseconds). Returns the migrate command's result too, so a test can assert on it.
 */
export function migratedTemplate(root: string): () => Promise<{ dataDir: string; migrate: CliResult }> {
  let made: Promise<{ dataDir: string; migrate: CliResult }> | undefined;
  return () => {
    made ??= (async () => {
      const dataDir = path.join(root, 'template', 'data');
      const migrate = await runCli(['migrate'], { HERALD_DATA_DIR: dataDir });
      if (migrate.code !== 0) throw new Error(`herald migrate failed (${migrate.code})\n${migrate.stderr}`);
      return { dataDir, migrate };
    })();
    return made;
  };
}

/** A fresh copy of a closed PGlite data directory at `root/name/data`. */
export function copyDataDir(template: string, root: string, name: string): string {
  const dataDir = path.join(root, name, 'data');
  cpSync(template, dataDir, { recursive: true });
  return dataDir;
}
