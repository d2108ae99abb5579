// Joins what a receiver got with the send log: per acknowledged notification, did it arrive once, never,
// or more than once, and how long after its Send started did it first arrive.
import type { ReceivedReply, Transport } from './realtime-latency-receivers.js';
import type { SendLog } from './realtime-latency-sender.js';

export interface TransportResult {
  transport: Transport;
  connections: number;
  acknowledged: number;
  /** Acknowledged notifications that arrived at least once. */
  received: number;
  missing: number;
  /** Of the missing, those that were their user's last Send of the run. */
  missingLastOfUser: number;
  /** Missing notifications that arrived once one more Send went to their user (see nudge()). */
  arrivedAfterNudge: number;
  duplicates: number;
  /** Arrivals whose id differs from the one Send answered with, or with a number never sent. */
  mismatched: number;
  /** Arrivals of Sends that failed or timed out (stored anyway). */
  unacknowledged: number;
  unexpected: number;
  closed: number;
  firstClose: string | null;
  /** First arrival minus Send start, measured Sends only; ascending. */
  latenciesMs: Float64Array;
}

export function analyze(
  transport: Transport,
  connections: number,
  log: SendLog,
  got: ReceivedReply,
): TransportResult {
  const counts = new Uint32Array(log.total);
  const latencies: number[] = [];
  let mismatched = 0;
  got.ns.forEach((n, i) => {
    if (n >= log.total) return; // a nudge
    const id = log.ids[n];
    if (n < 0 || (id !== undefined && id !== got.ids[i])) {
      mismatched++;
      return;
    }
    if (++counts[n]! === 1 && n >= log.warmupCount && id !== undefined) {
      latencies.push(got.times[i]! - log.startedAt[n]!);
    }
  });
  let acknowledged = 0;
  let received = 0;
  let duplicates = 0;
  let unacknowledged = 0;
  let missingLastOfUser = 0;
  counts.forEach((count, n) => {
    if (count > 1) duplicates += count - 1;
    if (log.ids[n] === undefined) {
      if (count > 0) unacknowledged++;
      return;
    }
    acknowledged++;
    if (count > 0) received++;
    else if (n + connections >= log.total) missingLastOfUser++;
  });
  return {
    transport,
    connections,
    acknowledged,
    received,
    missing: acknowledged - received,
    missingLastOfUser,
    arrivedAfterNudge: 0,
    duplicates,
    mismatched,
    unacknowledged,
    unexpected: got.unexpected,
    closed: got.closed,
    firstClose: got.firstClose,
    latenciesMs: Float64Array.from(latencies).sort(),
  };
}

/** Users with an acknowledged notification that has not arrived on some transport. */
export function missingUsers(log: SendLog, got: ReceivedReply[], users: number): Set<number> {
  const affected = new Set<number>();
  for (const reply of got) {
    const arrived = new Set(reply.ns);
    log.ids.forEach((id, n) => {
      if (id !== undefined && !arrived.has(n)) affected.add(n % users);
    });
  }
  return affected;
}
