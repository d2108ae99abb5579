// A fresh PostgreSQL database per run, migrated with Herald's migrations, reset between phases and
// dropped at the end.
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { openDatabase } from '../../src/store/index.js';

export interface BenchDatabase {
  readonly name: string;
  readonly url: string;
  /** Empties the tables Send writes and checkpoints, so every phase starts from the same state. */
  reset(): Promise<void>;
  /** Rows in notifications and deliveries, to check what a phase stored. */
  countRows(): Promise<{ notifications: number; deliveries: number }>;
  serverVersion(): Promise<string>;
  drop(): Promise<void>;
}

function databaseUrl(serverUrl: string, name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function createBenchDatabase(serverUrl: string): Promise<BenchDatabase> {
  const name = `herald_bench_${randomBytes(6).toString('hex')}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const url = databaseUrl(serverUrl, name);
  const db = postgres(url, { max: 1, onnotice: () => {} });

  async function drop(): Promise<void> {
    await db.end({ timeout: 5 });
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end({ timeout: 5 });
  }

  try {
    const migrator = await openDatabase({ url, dataDir: '', poolMax: 1 });
    try {
      await migrator.migrate();
    } finally {
      await migrator.close();
    }
  } catch (error) {
    await drop();
    throw error;
  }

  return {
    name,
    url,
    async reset() {
      // api_keys stays: the running server's bootstrap key must keep working.
      await db`truncate recipients, notifications, deliveries, delivery_attempts, idempotency_keys`;
      // A checkpoint now means each phase pays the same full-page-write cost at its start.
      await db`checkpoint`;
    },
    async countRows() {
      const [row] = await db<{ notifications: string; deliveries: string }[]>`
        select (select count(*) from notifications) as notifications,
               (select count(*) from deliveries) as deliveries`;
      return { notifications: Number(row!.notifications), deliveries: Number(row!.deliveries) };
    },
    async serverVersion() {
      const [row] = await db<{ server_version: string }[]>`show server_version`;
      return row!.server_version;
    },
    drop,
  };
}
