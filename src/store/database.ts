// One interface, two engines: embedded PGlite (the zero-configuration default) and PostgreSQL through
// postgres.js. Repositories are written against `Db` only, so the same code and the same test suite run
// on both.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { lockDataDir } from './data-dir-lock.js';
import { buildIndexesInPlace, buildOnlineIndexes } from './online-indexes.js';
import * as schema from './schema.js';

export type Schema = typeof schema;
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
/** A transaction handle; repositories accept either. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
export type Executor = Db | Tx;

/** A value bound to a `$n` placeholder. JSON travels as text and is cast in SQL (`$1::text::jsonb`). */
export type SqlParam = string | number | boolean | null;

/**
 * Plain SQL for the hot paths (Send), where the query builder's per-call cost and unprepared statements
 * matter. On PostgreSQL each text is prepared once per connection and reused. Rows come back keyed by column
 * name; select int8 columns as text, since the engines parse them differently.
 */
export interface SqlRunner {
  query<Row extends Record<string, unknown>>(
    text: string,
    params: readonly SqlParam[],
    options?: QueryOptions,
  ): Promise<Row[]>;
}

export interface QueryOptions {
  /**
   * false: plan this execution for its own parameters. For occasional reads over a time window (operator
   * figures): once a prepared statement settles on a generic plan, PostgreSQL estimates `started_at >= $1`
   * without knowing $1, as a third of the table, and scans it all.
   */
  prepare?: boolean;
}

export interface Database {
  readonly engine: 'pglite' | 'postgres';
  readonly db: Db;
  readonly sql: SqlRunner & {
    /** Runs `fn` in one transaction; commits when it resolves, rolls back when it throws. */
    transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T>;
  };
  /** Resolves when the database answers a trivial query within `timeoutMs`; rejects otherwise. */
  ping(timeoutMs?: number): Promise<void>;
  /** Applies the committed migrations in drizzle/ (idempotent). */
  migrate(): Promise<void>;
  /**
   * LISTEN on a channel: `onNotify` runs for every NOTIFY after the notifying transaction commits. PostgreSQL
   * uses a dedicated connection that reconnects by itself. Resolves to the function that stops listening.
   */
  listen(channel: string, onNotify: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** drizzle/ at the package root, found from both src/store (tsx) and dist/src/store (compiled). */
export const migrationsFolder = findMigrationsFolder(path.dirname(fileURLToPath(import.meta.url)));

function findMigrationsFolder(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'drizzle');
    if (existsSync(path.join(candidate, 'meta', '_journal.json'))) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`no drizzle/ migrations folder above ${from}`);
  }
}

export interface DatabaseOptions {
  /** PostgreSQL connection URL; without it the embedded engine is used. */
  url?: string | undefined;
  /** PGlite data directory; `memory://` keeps everything in memory. */
  dataDir: string;
  poolMax?: number;
  /** Called for connection-level notices and errors; never receives query parameters. */
  onNotice?: (message: string) => void;
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  return options.url ? openPostgres(options.url, options) : openPglite(options.dataDir);
}

async function openPglite(dataDir: string): Promise<Database> {
  const inMemory = dataDir.startsWith('memory://');
  const unlock = inMemory ? noop : lockDataDir(dataDir);
  let client: PGlite;
  try {
    if (!inMemory) mkdirSync(dataDir, { recursive: true });
    client = await PGlite.create(inMemory ? undefined : dataDir);
  } catch (error) {
    unlock();
    throw error;
  }
  const db = drizzlePglite(client, { schema }) as unknown as Db;
  const runner = (on: Pick<PGlite, 'query'>): SqlRunner => ({
    query: async <Row>(text: string, params: readonly SqlParam[]) =>
      (await on.query<Row>(text, [...params])).rows,
  });
  return {
    engine: 'pglite',
    db,
    sql: { ...runner(client), transaction: (fn) => client.transaction((tx) => fn(runner(tx))) },
    ping: (timeoutMs) => withTimeout(client.query('select 1').then(noop), timeoutMs),
    migrate: async () => {
      await migratePglite(drizzlePglite(client), { migrationsFolder });
      await buildIndexesInPlace(
        async (text, params) =>
          (await client.query(text, params ? [...params] : [])).rows as Record<string, unknown>[],
      );
    },
    listen: async (channel, onNotify) => {
      const stop = await client.listen(channel, onNotify);
      return () => stop();
    },
    close: async () => {
      await client.close();
      unlock();
    },
  };
}

function openPostgres(url: string, options: DatabaseOptions): Database {
  const client = postgres(url, {
    max: options.poolMax ?? 10,
    idle_timeout: 60,
    connect_timeout: 5,
    // Notices go to the logger instead of the console; they never carry query parameters.
    onnotice: (notice) => options.onNotice?.(String(notice.message)),
    // Statements are fixed shapes; prepared statements make the hot path cheaper.
    prepare: true,
  });
  const db = drizzlePostgres(client, { schema }) as unknown as Db;
  const runner = (on: Pick<postgres.Sql, 'unsafe'>): SqlRunner => ({
    query: async <Row>(text: string, params: readonly SqlParam[], options?: QueryOptions) =>
      (await on.unsafe(text, [...params], { prepare: options?.prepare ?? true })) as unknown as Row[],
  });
  return {
    engine: 'postgres',
    db,
    sql: {
      ...runner(client),
      transaction: async (fn) =>
        (await client.begin((tx) => fn(runner(tx)))) as Awaited<ReturnType<typeof fn>>,
    },
    ping: (timeoutMs) => withTimeout(client`select 1`.then(noop), timeoutMs),
    migrate: async () => {
      // A dedicated single connection, so the advisory lock and the migration share a session and two
      // instances starting together do not both migrate.
      const one = postgres(url, { max: 1, onnotice: () => {} });
      try {
        await one`select pg_advisory_lock(1752329316)`;
        await migratePostgres(drizzlePostgres(one), { migrationsFolder });
        // Still holding the lock: no other instance builds them at the same time.
        await buildOnlineIndexes((text, params) => one.unsafe(text, params ? [...params] : []));
      } finally {
        await one.end({ timeout: 5 });
      }
    },
    listen: async (channel, onNotify) => {
      const { unlisten } = await client.listen(channel, onNotify);
      return unlisten;
    },
    close: () => client.end({ timeout: 5 }),
  };
}

function noop(): void {}

async function withTimeout<T>(promise: Promise<T>, timeoutMs = 2_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`database did not answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
