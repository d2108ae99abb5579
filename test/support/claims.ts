// Counts the dispatcher's claims of each delivery (every move into 'sending') with a trigger in the test's
// own database, so a test can assert that a delivery was claimed a bounded number of times: a claim loop
// shows up here as hundreds of rows for one delivery.
import type { Database } from '../../src/store/index.js';

export interface ClaimCounter {
  /** How often the delivery has been claimed so far. */
  claimsOf(deliveryId: string): Promise<number>;
}

export async function countClaims(database: Database): Promise<ClaimCounter> {
  const { sql } = database;
  await sql.query('create table if not exists test_claims (delivery_id uuid not null)', []);
  await sql.query(
    `create or replace function test_record_claim() returns trigger language plpgsql as $$
     begin insert into test_claims (delivery_id) values (new.id); return new; end $$`,
    [],
  );
  await sql.query('drop trigger if exists test_record_claim on deliveries', []);
  await sql.query(
    `create trigger test_record_claim after update of status on deliveries for each row
     when (new.status = 'sending' and old.status <> 'sending') execute function test_record_claim()`,
    [],
  );
  return {
    async claimsOf(deliveryId) {
      const [row] = await sql.query<{ n: string | number }>(
        'select count(*) as n from test_claims where delivery_id = $1::uuid',
        [deliveryId],
      );
      return Number(row?.n ?? 0);
    },
  };
}
