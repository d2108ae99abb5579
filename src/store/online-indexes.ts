// Indexes on the large, busy tables, built after the migrations with CREATE INDEX CONCURRENTLY instead of
// inside them. Drizzle runs every pending migration in one transaction, so an index built there would hold
// its table's write lock (and the ACCESS EXCLUSIVE lock of any column added in the same run) for the whole
// build: on a table of millions, every Send and every dispatcher write would wait. Built concurrently, the
// tables stay writable; only the instance running the migration waits. The schema (schema.ts) and the
// migration snapshots still declare these indexes, so drizzle-kit sees the schema it expects.
//
// A concurrent build that failed (or was interrupted) leaves an INVALID index behind under its name: it is
// dropped and built again. The caller holds the migration lock, so no other instance is building it.

export interface OnlineIndex {
  readonly name: string;
  readonly table: string;
  /** The column list as CREATE INDEX takes it. */
  readonly columns: string;
  /** A partial index's predicate. */
  readonly where?: string;
  /** An index this one replaces: dropped (concurrently) once this one is built and valid. */
  readonly replaces?: string;
}

export const ONLINE_INDEXES: readonly OnlineIndex[] = [
  // Migration 0012: the operator's reads (store/console.ts).
  { name: 'notifications_created', table: 'notifications', columns: '(created_at, id)' },
  { name: 'notifications_user_created', table: 'notifications', columns: '(user_id, created_at, id)' },
  { name: 'deliveries_created', table: 'deliveries', columns: '(created_at)' },
  { name: 'delivery_attempts_started', table: 'delivery_attempts', columns: '(started_at)' },
  // Migration 0013: the dispatcher's claims, per channel.
  {
    name: 'deliveries_due_by_channel',
    table: 'deliveries',
    columns: '(channel, next_attempt_at)',
    where: "status = 'queued'",
    replaces: 'deliveries_due',
  },
];

function definition(index: OnlineIndex): string {
  return `${index.name} on ${index.table} using btree ${index.columns}${index.where ? ` where ${index.where}` : ''}`;
}

/** Runs one statement outside any transaction. */
type Run = (text: string, params?: readonly string[]) => Promise<readonly Record<string, unknown>[]>;

/** PostgreSQL: each missing or invalid index built concurrently, one at a time. */
export async function buildOnlineIndexes(run: Run): Promise<void> {
  for (const index of ONLINE_INDEXES) {
    const [found] = await run('select indisvalid as valid from pg_index where indexrelid = to_regclass($1)', [
      index.name,
    ]);
    if (found?.valid !== true) {
      if (found) await run(`drop index concurrently if exists ${index.name}`);
      await run(`create index concurrently ${definition(index)}`);
    }
    if (index.replaces) await run(`drop index concurrently if exists ${index.replaces}`);
  }
}

/** The embedded engine has one connection and no concurrent writers to spare: a plain build. */
export async function buildIndexesInPlace(run: Run): Promise<void> {
  for (const index of ONLINE_INDEXES) {
    await run(`create index if not exists ${definition(index)}`);
    if (index.replaces) await run(`drop index if exists ${index.replaces}`);
  }
}
