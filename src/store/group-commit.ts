// Group commit for Send. Under load, Sends that arrive while `maxStatements` Send statements are already
// running wait for one to finish and are then written together, as one statement: one round trip, one
// write and one WAL commit for the whole group instead of one per notification. With less concurrency than
// `maxStatements` nothing waits, so an idle service adds no latency. Every caller still gets its answer only
// after its own rows are committed.
//
// Grouping is safe because only validated, unkeyed Sends are grouped: what can still fail is the database
// itself (unreachable, shutting down), which fails every Send of the moment alike. Keyed Sends are never
// grouped, since a key conflict must fail only its own request.
import type { SqlRunner } from './database.js';
import { executeSends, type PreparedSend, type SendWriter, type StoredSend } from './send.js';

interface Waiting {
  prepared: PreparedSend[];
  resolve: (results: StoredSend[]) => void;
  reject: (error: unknown) => void;
}

export interface GroupCommitOptions {
  /** Send statements allowed to run at once; further Sends wait and are grouped. */
  maxStatements: number;
  /** Upper bound on notifications in one grouped statement (a request larger than this runs alone). */
  maxItems: number;
}

export function createGroupCommitWriter(sql: SqlRunner, options: GroupCommitOptions): SendWriter {
  const waiting: Waiting[] = [];
  let running = 0;

  function nextGroup(): Waiting[] {
    const group = [waiting.shift()!];
    let items = group[0]!.prepared.length;
    while (waiting.length > 0 && items + waiting[0]!.prepared.length <= options.maxItems) {
      const next = waiting.shift()!;
      items += next.prepared.length;
      group.push(next);
    }
    return group;
  }

  function pump(): void {
    while (running < options.maxStatements && waiting.length > 0) {
      const group = nextGroup();
      running++;
      executeSends(
        sql,
        group.flatMap((w) => w.prepared),
      )
        .then(
          (results) => {
            let offset = 0;
            for (const w of group) {
              w.resolve(results.slice(offset, offset + w.prepared.length));
              offset += w.prepared.length;
            }
          },
          (error: unknown) => {
            for (const w of group) w.reject(error);
          },
        )
        .finally(() => {
          running--;
          pump();
        });
    }
  }

  return (prepared) =>
    new Promise((resolve, reject) => {
      waiting.push({ prepared, resolve, reject });
      pump();
    });
}
