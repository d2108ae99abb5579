// PGlite is an in-process PostgreSQL: two openers of one data directory, in two processes or in one, would
// corrupt it. A lock file beside the directory, holding the owner's PID, refuses every second opener with a
// clear message.
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export class DataDirInUseError extends Error {
  constructor(dataDir: string, pid: number) {
    super(
      `the embedded database in ${dataDir} is in use by process ${pid}${pid === process.pid ? ' (this one)' : ''}; ` +
        'stop that process, or point both at a PostgreSQL server with DATABASE_URL',
    );
    this.name = 'DataDirInUseError';
  }
}

/** Lock files this process holds: a second opener in the same process is refused too. */
const heldHere = new Set<string>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(lockPath: string): number | undefined {
  try {
    const pid = Number(readFileSync(lockPath, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the lock or throws DataDirInUseError; returns the release function. The lock file appears with its
 * PID already inside (written aside, then hard-linked into place), so no reader ever sees it empty. A dead
 * owner's lock is taken over.
 */
export function lockDataDir(dataDir: string): () => void {
  const resolved = path.resolve(dataDir);
  const lockPath = `${resolved}.lock`;
  if (heldHere.has(lockPath)) throw new DataDirInUseError(resolved, process.pid);
  mkdirSync(path.dirname(resolved), { recursive: true });
  const staged = `${lockPath}.${process.pid}.${Date.now()}`;
  writeFileSync(staged, String(process.pid));
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(staged, lockPath);
        heldHere.add(lockPath);
        return () => release(lockPath);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const owner = readOwner(lockPath);
        if (owner !== undefined && isAlive(owner)) throw new DataDirInUseError(resolved, owner);
        rmSync(lockPath, { force: true }); // the owner died without releasing
      }
    }
    throw new Error(`could not lock ${lockPath}`);
  } finally {
    rmSync(staged, { force: true });
  }
}

/** Removes the lock file only while it is still this process's own. */
function release(lockPath: string): void {
  if (!heldHere.delete(lockPath)) return;
  if (readOwner(lockPath) === process.pid) rmSync(lockPath, { force: true });
}
