// Group commit, used by Send and by the dispatcher's outcome writes. Under load, Sends that arrive while `maxStatements` Send statements are already
// running wait for one to finish and are then written together, as one statement: one round trip, one
// write and one WAL commit for the whole group instead of one per notification. With less concurrency than
// `maxStatements` nothing waits, so an idle service adds no latency. Every caller still gets its answer only
// after its own rows are committed.
//
// Grouping is safe because only validated, unkeyed Sends are grouped: what can still fail is the database
// itself (unreachable, shutting down), which fails every Send of the moment alike. Keyed Sends are never
// grouped, since a key conflict must fail only its own request. The dispatcher groups the final writes of its
// attempts the same way; each is fenced by its own lease, so one lost lease does not fail the others.
import type { SqlRunner } from './database.js';
import { executeSends, type PreparedSend, type SendWriter, type StoredSend } from './send.js';

interface Waiting<I, O> {
  items: I[];
  resolve: (results: O[]) => void;
  reject: (error: unknown) => void;
}

export interface GroupCommitOptions {
  /** Statements allowed to run at once; further calls wait and are grouped. */
  maxStatements: number;
  /** Upper bound on items in one grouped statement (a call larger than this runs alone). */
  maxItems: number;
}

/**
 * Turns a statement that writes many items at once into a writer for concurrent callers: calls that arrive
 * while `maxStatements` statements run wait and then share the next one. Each caller gets the results for
 * its own items, in order, once that statement has finished; if it fails, every caller in it fails.
 */
export function createGroupWriter<I, O>(
  write: (items: I[]) => Promise<O[]>,
  options: GroupCommitOptions,
): (items: I[]) => Promise<O[]> {
  const waiting: Waiting<I, O>[] = [];
  let running = 0;

  function nextGroup(): Waiting<I, O>[] {
    const group = [waiting.shift()!];
    let count = group[0]!.items.length;
    while (waiting.length > 0 && count + waiting[0]!.items.length <= options.maxItems) {
      const next = waiting.shift()!;
      count += next.items.length;
      group.push(next);
    }
    return group;
  }

  function pump(): void {
    while (running < options.maxStatements && waiting.length > 0) {
      const group = nextGroup();
      running++;
      write(group.flatMap((w) => w.items))
        .then(
          (results) => {
            let offset = 0;
            for (const w of group) {
              w.resolve(results.slice(offset, offset + w.items.length));
              offset += w.items.length;
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

  return (items) =>
    new Promise((resolve, reject) => {
      waiting.push({ items, resolve, reject });
      pump();
    });
}

/** Send's group commit: unkeyed Sends grouped into one INSERT_FRESH statement under load. */
export function createGroupCommitWriter(sql: SqlRunner, options: GroupCommitOptions): SendWriter {
  return createGroupWriter<PreparedSend, StoredSend>((prepared) => executeSends(sql, prepared), options);
}
