// The latency benchmark's sender: Sends (IN_APP) at a fixed rate in an open loop, each carrying its number
// in `data.n`, with its start time and the notification id Herald answered kept by that number.
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  Channel,
  NotificationService,
  SendRequestSchema,
  SendResponseSchema,
} from '../../clients/node/index.js';
import { epochNow } from './dispatch-child.js';
import type { RawGrpcClient } from './raw-grpc.js';
import { BODY, TITLE } from './workload.js';

const NOTIFICATION_TYPE = 'bench.latency';
const SEND = `/${NotificationService.typeName}/${NotificationService.method.send.name}`;
export const SEND_TIMEOUT_MS = 10_000;
/** Sends in flight at most; past this the sender skips (and reports) instead of piling up calls. */
export const MAX_IN_FLIGHT = 5_000;
export const NUDGE_WAIT_MS = 3_000;

/** What the sender did, by the number each Send carries in data.n. */
export interface SendLog {
  total: number;
  warmupCount: number;
  /** Epoch ms when the Send started; 0 when it was skipped. */
  startedAt: Float64Array;
  /** The notification id Herald answered with; undefined when the Send failed or was skipped. */
  ids: (string | undefined)[];
  /** Send call latency (start to answer) of the measured Sends. */
  answerMs: number[];
  /** How late each Send started against its slot in the schedule. */
  lagMs: number[];
  skipped: number;
  failures: number;
  firstFailure: string | undefined;
  /** First to last Send started. */
  sendingMs: number;
}

export function createSendLog(total: number, warmupCount: number): SendLog {
  return {
    total,
    warmupCount,
    startedAt: new Float64Array(total),
    ids: new Array<string | undefined>(total),
    answerMs: [],
    lagMs: [],
    skipped: 0,
    failures: 0,
    firstFailure: undefined,
    sendingMs: 0,
  };
}

export function latencyUserId(index: number): string {
  return `lat-user-${index}`;
}

function sendRequest(n: number, user: number): Uint8Array {
  return toBinary(
    SendRequestSchema,
    create(SendRequestSchema, {
      userId: latencyUserId(user),
      type: NOTIFICATION_TYPE,
      title: TITLE,
      body: BODY,
      data: { n },
      channels: [Channel.IN_APP],
    }),
  );
}

/**
 * Issues `log.total` Sends at `rate` per second: a 1 ms timer starts every Send whose slot has come, so a
 * slow answer never delays the next Send (open loop). `onMeasuredStart` fires when the warm-up is over.
 */
export async function sendOpenLoop(
  clients: RawGrpcClient[],
  options: { rate: number; users: number },
  log: SendLog,
  onMeasuredStart: () => void,
): Promise<void> {
  const inFlight = new Set<Promise<void>>();
  const start = (n: number) => {
    const startedAt = epochNow();
    log.startedAt[n] = startedAt;
    const call = clients[n % clients.length]!.unary(SEND, sendRequest(n, n % options.users), SEND_TIMEOUT_MS)
      .then((bytes) => {
        log.ids[n] = fromBinary(SendResponseSchema, bytes).notificationId;
        if (n >= log.warmupCount) log.answerMs.push(epochNow() - startedAt);
      })
      .catch((error: unknown) => {
        log.failures++;
        log.firstFailure ??= error instanceof Error ? error.message : String(error);
      })
      .finally(() => inFlight.delete(call));
    inFlight.add(call);
  };
  const t0 = performance.now();
  const slotMs = 1000 / options.rate;
  let issued = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(log.total, Math.floor((now - t0) / slotMs) + 1);
      while (issued < due) {
        const n = issued++;
        if (n === log.warmupCount) onMeasuredStart();
        log.lagMs.push(now - (t0 + n * slotMs));
        if (inFlight.size >= MAX_IN_FLIGHT) log.skipped++;
        else start(n);
      }
      if (issued >= log.total) {
        clearInterval(timer);
        log.sendingMs = now - t0;
        resolve();
      }
    };
    const timer = setInterval(tick, 1);
    tick();
  });
  await Promise.all(inFlight);
}

/**
 * A diagnosis for missing notifications: one more Send to each affected user (numbered after the run, so
 * not counted), then a short wait. A notification that arrives only now was stored and announced but its
 * session did not read it until the next announcement for the same user: a lost wake-up, not a lost row.
 */
export async function nudge(clients: RawGrpcClient[], log: SendLog, users: Set<number>): Promise<void> {
  await Promise.allSettled(
    [...users].map((user, k) =>
      clients[k % clients.length]!.unary(SEND, sendRequest(log.total + k, user), SEND_TIMEOUT_MS),
    ),
  );
  await new Promise((resolve) => setTimeout(resolve, NUDGE_WAIT_MS));
}
