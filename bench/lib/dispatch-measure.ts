// What one dispatch phase measured: each delivery's send time (kept here) joined on webhook-id with its
// arrival at the receiver (kept there), the rate from the first send to the last arrival, and the CPU of
// every process involved over the same window.
import type { BenchDatabase } from './bench-database.js';
import { type CpuShares, type CpuSubjects, cpuShares, snapshotCpu } from './cpu.js';
import type { ArrivalsMessage, WebhookReceiver } from './dispatch-receiver.js';

/** What every phase shares: the same amount of work, concurrency, receiver and database. */
export interface DispatchSetup {
  notifications: number;
  /** Webhook POSTs in flight at most (Herald: HERALD_DISPATCH_CONCURRENCY). */
  concurrency: number;
  /** Recipients the notifications go to, round-robin (as in bench/send.ts). */
  users: number;
  /** Deliveries per SendBatch call or pg-boss insert. */
  batchSize: number;
  /** SendBatch calls or inserts in flight while handing the deliveries over. */
  senders: number;
  /** The receiver verifies the signature of one request in this many. */
  verifyEvery: number;
  /** Each phase gives up this long after its first send. */
  timeoutMs: number;
  receiver: WebhookReceiver;
  database: BenchDatabase;
}

export interface DispatchCpu extends CpuShares {
  /** The receiver child, taken out of `other`. */
  receiver: number;
}

export interface DispatchPhase {
  label: string;
  expected: number;
  /** Distinct webhook-ids that arrived. */
  received: number;
  /** First send to last arrival. */
  elapsedMs: number;
  /** First send to the last send acknowledged: how long handing all of them over took. */
  handOverMs: number;
  /** Send to arrival per delivery, sorted ascending. */
  latenciesMs: Float64Array;
  /** Sampled signatures the receiver verified with `standardwebhooks`, and those it rejected. */
  verified: number;
  rejected: number;
  cpu: DispatchCpu;
  /** Problems that make the figures suspect. */
  notes: string[];
}

/** Send times (epoch ms) by webhook-id. */
export class SendLog {
  private readonly sentAt = new Map<string, number>();
  private firstSend = Number.POSITIVE_INFINITY;
  private lastAck = Number.NEGATIVE_INFINITY;
  private failures = 0;
  private firstFailure: string | undefined;

  /** `at`: when the call handing these deliveries over started. */
  sent(ids: Iterable<string>, at: number, acknowledgedAt: number): void {
    for (const id of ids) this.sentAt.set(id, at);
    this.firstSend = Math.min(this.firstSend, at);
    this.lastAck = Math.max(this.lastAck, acknowledgedAt);
  }

  failed(error: unknown): void {
    this.failures++;
    this.firstFailure ??= error instanceof Error ? error.message : String(error);
  }

  summarize(label: string, expected: number, arrivals: ArrivalsMessage, cpu: DispatchCpu): DispatchPhase {
    const latencies: number[] = [];
    let lastArrival = Number.NEGATIVE_INFINITY;
    let unknown = 0;
    arrivals.ids.forEach((id, i) => {
      const sentAt = this.sentAt.get(id);
      const arrivedAt = arrivals.times[i]!;
      if (sentAt === undefined) {
        unknown++;
        return;
      }
      latencies.push(arrivedAt - sentAt);
      lastArrival = Math.max(lastArrival, arrivedAt);
    });
    const notes: string[] = [];
    if (this.failures > 0) notes.push(`${this.failures} failed calls; first: ${this.firstFailure}`);
    if (this.sentAt.size !== expected) notes.push(`handed over ${this.sentAt.size} of ${expected}`);
    if (latencies.length < expected) notes.push(`${expected - latencies.length} deliveries never arrived`);
    if (unknown > 0) notes.push(`${unknown} arrivals with a webhook-id that was never sent`);
    if (arrivals.duplicates > 0) notes.push(`${arrivals.duplicates} duplicate arrivals (at-least-once)`);
    if (arrivals.anonymous > 0) notes.push(`${arrivals.anonymous} requests without a webhook-id`);
    if (arrivals.rejected > 0 || arrivals.verified === 0) {
      notes.push(
        `signatures: ${arrivals.verified} verified, ${arrivals.rejected} rejected` +
          (arrivals.firstRejection ? ` (first: ${arrivals.firstRejection})` : ''),
      );
    }
    return {
      label,
      expected,
      received: latencies.length,
      elapsedMs: latencies.length > 0 ? lastArrival - this.firstSend : Number.NaN,
      handOverMs: this.lastAck - this.firstSend,
      latenciesMs: Float64Array.from(latencies).sort(),
      verified: arrivals.verified,
      rejected: arrivals.rejected,
      cpu,
      notes,
    };
  }
}

/** Starts counting CPU; the returned function ends the window. */
export function startCpuWindow(subjects: CpuSubjects, receiverPid: number): () => DispatchCpu {
  const before = snapshotCpu(subjects);
  const receiverBefore = snapshotCpu({ serverPid: receiverPid });
  return () => {
    const after = snapshotCpu(subjects);
    const receiverAfter = snapshotCpu({ serverPid: receiverPid });
    const shares = cpuShares(before, after);
    const receiver = cpuShares(receiverBefore, receiverAfter).server ?? 0;
    return { ...shares, receiver, other: Math.max(0, shares.other - receiver) };
  };
}

export function deliveriesPerSecond(phase: DispatchPhase): number {
  return phase.received / (phase.elapsedMs / 1000);
}

// A phase whose calls keep failing is measuring the wrong thing; stop handing over instead of spinning.
export const MAX_FAILURES = 20;

/**
 * Hands the setup's `notifications` deliveries over in calls of up to `batchSize`, `senders` calls at a
 * time, as fast as the calls return; `handOver(count)` makes one call and logs what it handed over. Stops
 * early at `deadline` (performance.now() ms) or after repeated failures.
 */
export async function handOverInBatches(
  setup: DispatchSetup,
  log: SendLog,
  deadline: number,
  handOver: (count: number) => Promise<void>,
): Promise<void> {
  let remaining = setup.notifications;
  let failures = 0;
  async function sender(): Promise<void> {
    while (remaining > 0 && performance.now() < deadline && failures < MAX_FAILURES) {
      const count = Math.min(setup.batchSize, remaining);
      remaining -= count;
      try {
        await handOver(count);
      } catch (error) {
        failures++;
        log.failed(error);
      }
    }
  }
  await Promise.all(Array.from({ length: setup.senders }, sender));
}

/** Waits for the receiver until the phase's deadline, then ends the CPU window and collects the arrivals. */
export async function finishPhase(
  setup: DispatchSetup,
  log: SendLog,
  label: string,
  deadline: number,
  endCpu: () => DispatchCpu,
): Promise<DispatchPhase> {
  const complete = await setup.receiver.waitComplete(Math.max(1, deadline - performance.now()));
  const cpu = endCpu();
  const arrivals = await setup.receiver.collect();
  const phase = log.summarize(label, setup.notifications, arrivals, cpu);
  if (!complete) phase.notes.unshift(`timed out after ${setup.timeoutMs / 1000} s`);
  return phase;
}
