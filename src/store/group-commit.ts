// Group commit, used by Send and by the dispatcher's outcome writes. Under load, Sends that arrive while `maxStatements` Send statements are already
// running wait for one to finish and are then written together, as one statement: one round trip, one
// write and one WAL commit for the whole group instead of one per notification. With less concurrency than
// `maxStatements` nothing waits, so an idle service adds no latency. Every caller still gets its answer only
// after its own rows are committed.
//
// One caller's items never fail another's: when a grouped statement fails for a reason that may be one
// item's fault (bad data the validation let through, a constraint, a conflict), every caller in the group is
// retried in a statement of its own, so only the caller at fault gets the error. A database that is away,
// timing out or out of resources fails the whole group at once, as it would fail each of them alone. Keyed Sends are never grouped, since a key
// conflict must fail only its own request. The dispatcher groups the final writes of its attempts the same
// way; each is fenced by its own lease, so one lost lease does not fail the others.
import type { SqlRunner } from './database.js';
import { mayBeOneItemsFault } from './errors.js';
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
  /**
   * Whether a failed group's callers are each retried alone. By default only for errors one item's data can
   * cause (mayBeOneItemsFault); a database that is unreachable, timing out or out of space would fail each of
   * them alone too, and retrying one by one would only add load.
   */
  isolate?: (error: unknown) => boolean;
}

/**
 * Turns a statement that writes many items at once into a writer for concurrent callers: calls that arrive
 * while `maxStatements` statements run wait and then share the next one. Each caller gets the results for
 * its own items, in order, once that statement has finished; if it fails, each caller is retried alone
 * (see `isolate`), so a caller fails only for its own items.
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

  const isolate = options.isolate ?? mayBeOneItemsFault;

  function settle(group: Waiting<I, O>[], results: O[]): void {
    let offset = 0;
    for (const w of group) {
      w.resolve(results.slice(offset, offset + w.items.length));
      offset += w.items.length;
    }
  }

  /** Writes a group; if it fails and may be one caller's fault, writes each caller alone, one after another. */
  async function writeGroup(group: Waiting<I, O>[]): Promise<void> {
    try {
      settle(group, await write(group.flatMap((w) => w.items)));
      return;
    } catch (error) {
      if (group.length === 1 || !isolate(error)) {
        for (const w of group) w.reject(error);
        return;
      }
    }
    for (const w of group) {
      try {
        w.resolve(await write(w.items));
      } catch (error) {
        w.reject(error);
      }
    }
  }

  function pump(): void {
    while (running < options.maxStatements && waiting.length > 0) {
      const group = nextGroup();
      running++;
      void writeGroup(group).finally(() => {
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
