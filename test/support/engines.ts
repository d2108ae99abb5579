// The database engines the integration suites run against: embedded PGlite always, PostgreSQL whenever
// TEST_DATABASE_URL is set. Each PostgreSQL use gets its own freshly created database, dropped afterwards.
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { type Database, openDatabase } from '../../src/store/index.js';

export interface Engine {
  name: 'pglite' | 'postgres';
  /** A migrated, empty database. */
  open(): Promise<TestDatabase>;
}

export interface TestDatabase {
  database: Database;
  /** URL for PostgreSQL; undefined for PGlite. */
  url: string | undefined;
  /** Closes the connection and drops the database. */
  destroy(): Promise<void>;
}

export const pgliteEngine: Engine = {
  name: 'pglite',
  async open() {
    const database = await openDatabase({ dataDir: 'memory://' });
    await database.migrate();
    return { database, url: undefined, destroy: () => database.close() };
  },
};

export async function createPostgresDatabase(
  serverUrl: string,
): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `herald_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const a = postgres(serverUrl, { max: 1, onnotice: () => {} });
      await a.unsafe(`drop database if exists ${name} with (force)`);
      await a.end();
    },
  };
}

export function postgresEngine(serverUrl: string): Engine {
  return {
    name: 'postgres',
    async open() {
      const created = await createPostgresDatabase(serverUrl);
      const database = await openDatabase({ url: created.url, dataDir: '', poolMax: 20 });
      await database.migrate();
      return {
        database,
        url: created.url,
        async destroy() {
          await database.close();
          await created.drop();
        },
      };
    },
  };
}

/** Every engine available in this run. */
export function engines(): Engine[] {
  const url = process.env.TEST_DATABASE_URL;
  return url ? [pgliteEngine, postgresEngine(url)] : [pgliteEngine];
}

export function postgresUrl(): string | undefined {
  return process.env.TEST_DATABASE_URL || undefined;
}
