// Database errors in the logs: the error's type, its SQLSTATE and the statement's first words, never the
// values bound to the statement (drizzle puts them in its message; postgres.js in `parameters` and `args`;
// PostgreSQL quotes some of them in its own message). Runs on every available engine, through both query
// paths (drizzle and the plain SQL runner).
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { notifications } from '../../src/store/schema.js';
import { engines, type TestDatabase } from '../support/engines.js';
import { LogCapture } from '../support/server.js';

const SECRET = 'secret-body-4711';

async function failure(run: () => Promise<unknown>): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    return error;
  }
  throw new Error('expected the query to fail');
}

describe.each(engines())('database errors in the logs on $name', (engine) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await engine.open();
  });
  afterAll(() => db?.destroy());

  it.each([
    [
      'a drizzle query',
      () => db.database.db.select().from(notifications).where(eq(notifications.id, SECRET)),
      'select',
    ],
    [
      'a plain SQL statement',
      () =>
        db.database.sql.query('select id from notifications where id = $1::uuid and title = $2', [
          SECRET,
          SECRET,
        ]),
      'select id from notifications where id = $1::uuid',
    ],
  ])(
    'logs %s that failed with its code and statement, without its parameters',
    async (_name, run, statement) => {
      const error = await failure(run);
      const logs = new LogCapture();
      createLogger('info', logs).error({ err: error }, 'unexpected error');
      await new Promise((resolve) => setImmediate(resolve));
      const text = logs.text();
      expect(text).not.toContain(SECRET);
      const line = JSON.parse(logs.lines[0]!) as { err: Record<string, unknown> };
      const codes = JSON.stringify(line.err);
      expect(codes).toContain('22P02'); // invalid_text_representation
      expect(codes.toLowerCase()).toContain(statement);
    },
  );
});
