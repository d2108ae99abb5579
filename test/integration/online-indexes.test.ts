// The indexes built after the migrations (store/online-indexes.ts): present and valid after migrate() on both
// engines; on PostgreSQL an INVALID one (what an interrupted CREATE INDEX CONCURRENTLY leaves behind) is
// dropped and built again by the next migrate(), and a migrate() with everything in place changes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ONLINE_INDEXES } from '../../src/store/online-indexes.js';
import { engines, postgresEngine, postgresUrl, type TestDatabase } from '../support/engines.js';

const state = `select c.relname as name, i.indisvalid as valid, c.oid::int8::text as oid
  from pg_index i join pg_class c on c.oid = i.indexrelid
  where c.relname = any($1::text[]) order by c.relname`;

const indexes = (db: TestDatabase) =>
  db.database.sql.query<{ name: string; valid: boolean; oid: string }>(state, [
    `{${ONLINE_INDEXES.map((i) => i.name).join(',')}}`,
  ]);

describe.each(engines())('indexes built after the migrations on $name', (engine) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await engine.open();
  });
  afterAll(async () => {
    await db?.destroy();
  });

  const read = () => indexes(db);

  it('exist and are valid after migrate, and a second migrate leaves them as they are', async () => {
    const before = await read();
    expect(before.map((r) => [r.name, r.valid])).toEqual(
      ONLINE_INDEXES.map((i) => i.name)
        .sort()
        .map((name) => [name, true]),
    );
    await db.database.migrate();
    expect(await read()).toEqual(before);
  });

  it('drops the index a built one replaces', async () => {
    for (const index of ONLINE_INDEXES.filter((i) => i.replaces)) {
      const [row] = await db.database.sql.query<{ gone: boolean }>('select to_regclass($1) is null as gone', [
        index.replaces!,
      ]);
      expect(row?.gone, index.replaces).toBe(true);
    }
  });
});

describe.runIf(postgresUrl())('an interrupted concurrent build on PostgreSQL', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await postgresEngine(postgresUrl()!).open();
  });
  afterAll(async () => {
    await db?.destroy();
  });

  it('leaves an invalid index that the next migrate drops and builds again', async () => {
    const [victim] = await indexes(db);
    await db.database.sql.query('update pg_index set indisvalid = false where indexrelid = to_regclass($1)', [
      victim!.name,
    ]);
    expect((await indexes(db)).find((r) => r.name === victim!.name)?.valid).toBe(false);
    await db.database.migrate();
    const after = (await indexes(db)).find((r) => r.name === victim!.name)!;
    expect(after.valid).toBe(true);
    expect(after.oid).not.toBe(victim!.oid);
  });
});
