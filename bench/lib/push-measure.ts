// What one push phase measured: each delivery's send time and intended device (kept here, by delivery key)
// joined with what the emulator child recorded (arrival time, status, device, checks), the rate from the
// first send to the last arrival, and the CPU of every process involved over the same window.
import type { DispatchCpu } from './dispatch-measure.js';
import type { ArrivalsMessage } from './push-emulators.js';

export interface PushPhase {
  label: string;
  expected: number;
  /** Distinct deliveries that arrived, with the expected status, at the device they were meant for. */
  delivered: number;
  /** Of those, the ones whose every check held (headers, payload, JWT, decryption). */
  verified: number;
  /** First send to last arrival of a delivered one. */
  elapsedMs: number;
  /** First send to the last send acknowledged (Herald: SendBatch; bare: the APNs answer). */
  handOverMs: number;
  /** Send to arrival per delivered delivery, sorted ascending. */
  latenciesMs: Float64Array;
  /** Herald phases: deliveries the database holds as sent at the end; undefined for the bare phase. */
  recorded: number | undefined;
  cpu: DispatchCpu;
  /** Problems that make the figures suspect. */
  notes: string[];
}

interface Sent {
  at: number;
  destination: string;
}

/** Send times (epoch ms) and intended devices by delivery key (APNs: apns-id; Web Push: notification id). */
export class PushSendLog {
  private readonly sent = new Map<string, Sent>();
  private firstSend = Number.POSITIVE_INFINITY;
  private lastAck = Number.NEGATIVE_INFINITY;
  private failures = 0;
  private firstFailure: string | undefined;

  /** `at`: when the call handing these deliveries over started. */
  log(deliveries: Iterable<{ key: string; destination: string }>, at: number, acknowledgedAt: number): void {
    for (const { key, destination } of deliveries) this.sent.set(key, { at, destination });
    this.firstSend = Math.min(this.firstSend, at);
    this.lastAck = Math.max(this.lastAck, acknowledgedAt);
  }

  failed(error: unknown): void {
    this.failures++;
    this.firstFailure ??= error instanceof Error ? error.message : String(error);
  }

  get failureCount(): number {
    return this.failures;
  }

  summarize(
    label: string,
    expected: number,
    okStatus: number,
    arrivals: ArrivalsMessage,
    cpu: DispatchCpu,
  ): PushPhase {
    const latencies: number[] = [];
    const seen = new Set<string>();
    let lastArrival = Number.NEGATIVE_INFINITY;
    let verified = 0;
    let unknown = 0;
    let anonymous = 0;
    let duplicates = 0;
    let badStatus = 0;
    let misrouted = 0;
    let checkFailures = 0;
    let firstBadStatus: string | undefined;
    let firstProblem: string | undefined;
    arrivals.keys.forEach((key, i) => {
      const problem = arrivals.problems[i]!;
      if (key === '') {
        anonymous++;
        firstProblem ??= problem || 'no delivery key';
        return;
      }
      const sent = this.sent.get(key);
      if (!sent) {
        unknown++;
        return;
      }
      if (seen.has(key)) {
        duplicates++;
        return;
      }
      seen.add(key);
      if (arrivals.statuses[i] !== okStatus) {
        badStatus++;
        firstBadStatus ??= problem;
        return;
      }
      if (arrivals.destinations[i] !== sent.destination) {
        misrouted++;
        return;
      }
      const arrivedAt = arrivals.times[i]!;
      latencies.push(arrivedAt - sent.at);
      lastArrival = Math.max(lastArrival, arrivedAt);
      if (problem === '') verified++;
      else {
        checkFailures++;
        firstProblem ??= problem;
      }
    });
    const notes: string[] = [];
    if (this.failures > 0) notes.push(`${this.failures} failed calls; first: ${this.firstFailure}`);
    if (this.sent.size !== expected) notes.push(`handed over ${this.sent.size} of ${expected}`);
    if (latencies.length < expected) notes.push(`${expected - latencies.length} deliveries not delivered`);
    if (badStatus > 0) notes.push(`${badStatus} answered other than ${okStatus}; first: ${firstBadStatus}`);
    if (misrouted > 0) notes.push(`${misrouted} reached another device than planned`);
    if (checkFailures > 0) notes.push(`${checkFailures} failed a content check; first: ${firstProblem}`);
    if (anonymous > 0) notes.push(`${anonymous} requests without a delivery key; first: ${firstProblem}`);
    if (unknown > 0) notes.push(`${unknown} arrivals of a delivery that was never sent`);
    if (duplicates > 0) notes.push(`${duplicates} duplicate arrivals of one delivery`);
    return {
      label,
      expected,
      delivered: latencies.length,
      verified,
      elapsedMs: latencies.length > 0 ? lastArrival - this.firstSend : Number.NaN,
      handOverMs: this.lastAck - this.firstSend,
      latenciesMs: Float64Array.from(latencies).sort(),
      recorded: undefined,
      cpu,
      notes,
    };
  }
}

export function deliveriesPerSecond(phase: PushPhase): number {
  return phase.delivered / (phase.elapsedMs / 1000);
}

// A phase whose calls keep failing is measuring the wrong thing; stop instead of spinning.
export const MAX_FAILURES = 20;
