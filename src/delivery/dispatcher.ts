// The dispatcher: claims due deliveries per channel (SKIP LOCKED + lease, see store/deliveries.ts), with at
// most `concurrency` attempts in flight per channel, and runs each through delivery-run.ts. It wakes on NOTIFY from
// the Send transaction, on a timer for the retries it scheduled itself, and on a slow fallback poll that
// also picks up leases other dispatchers left behind when they died.
//
// Due times are the service's clock (`now`, injected in tests): claims ask for what is due by it, and the
// timers for retries count down on it. Between claim batches the pump yields to the event loop, so a batch
// that misbehaves (an engine whose queries never yield, a delivery that keeps coming back) cannot starve
// timers, streams and health checks.
//
// Shutdown: stop claiming, let in-flight attempts finish within the deadline, then abort what is left;
// every claim ends with its lease released (requeued), so another instance can take it at once.
import { setMaxListeners } from 'node:events';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { ChannelName } from '../core/channels.js';
import type { Database } from '../store/database.js';
import { type ClaimedDelivery, claimDueDeliveries, requeueExpiredLeases } from '../store/deliveries.js';
import type { DeliveryRunner } from './delivery-run.js';

export interface DispatcherOptions {
  database: Database;
  run: DeliveryRunner;
  channels: readonly ChannelName[];
  /** Deliveries attempted at once, per channel. */
  concurrency: (channel: ChannelName) => number;
  /** How long a claim is held; a dispatcher that dies loses its claims when it runs out. */
  leaseMs: number;
  /** The longest one attempt can take now (timeout plus rate-limit wait; providers can be reloaded); shorter than leaseMs. */
  maxAttemptMs: () => number;
  /** The fallback poll. */
  pollMs: number;
  /** The service's clock: what is due is due by it. */
  now: () => Date;
  onError: (error: unknown) => void;
}

export interface Dispatcher {
  start(): Promise<void>;
  /** Checks for due deliveries now. */
  wake(): void;
  /** Deliveries being worked on right now. */
  inFlight(): number;
  stop(deadlineMs: number): Promise<void>;
}

export const WAKEUP_CHANNEL = 'herald_deliveries';

interface Lane {
  channel: ChannelName;
  /** Attempts in flight at most. */
  concurrency: number;
  inFlight: Set<Promise<void>>;
  /** Claimed and waiting for a free slot, oldest first, with when they were claimed. */
  ready: { claim: ClaimedDelivery; claimedAt: number }[];
  /** The claim loop while it runs; stop() waits for it, so no claim lands after stop() returns. */
  pumping: Promise<void> | null;
  again: boolean;
  timer: NodeJS.Timeout | null;
  timerAt: number;
}

export function createDispatcher(options: DispatcherOptions): Dispatcher {
  const lanes = options.channels.map<Lane>((channel) => ({
    channel,
    concurrency: options.concurrency(channel),
    inFlight: new Set(),
    ready: [],
    pumping: null,
    again: false,
    timer: null,
    timerAt: Number.POSITIVE_INFINITY,
  }));
  // Prefetch: a lane holds up to 2 x `concurrency` claimed deliveries beyond those in flight, so a freed
  // slot starts its next attempt at once instead of waiting for a claim round trip, and claims are made a
  // lane's worth at a time (one statement per `concurrency` deliveries under load). A prefetched claim that
  // waited so long that its lease could run out during its attempt is handed back instead of attempted.
  const maxReadyWaitMs = () => options.leaseMs - options.maxAttemptMs();
  // `stopping`: claims still waiting (rate limit) hand themselves back; `abort`: attempts are cut.
  const stopping = new AbortController();
  const abort = new AbortController();
  // Every attempt in flight listens on them; dozens at once is the normal case, not a leak.
  setMaxListeners(0, stopping.signal, abort.signal);
  let running = false;
  let unlisten: (() => Promise<void>) | null = null;
  let poll: NodeJS.Timeout | null = null;

  function wakeAll(): void {
    for (const lane of lanes) void pump(lane);
  }

  /** Wakes a lane at `at` (ms) unless it is woken earlier anyway. */
  function wakeAt(lane: Lane, at: number): void {
    if (!running || at >= lane.timerAt) return;
    if (lane.timer) clearTimeout(lane.timer);
    lane.timerAt = at;
    lane.timer = setTimeout(
      () => {
        lane.timer = null;
        lane.timerAt = Number.POSITIVE_INFINITY;
        void pump(lane);
      },
      Math.max(0, at - options.now().getTime()),
    );
    lane.timer.unref();
  }

  /** Room for more claims: none while the lane is nearly full, so claims come in batches. */
  function wanted(lane: Lane): number {
    const room = lane.concurrency * 3 - lane.inFlight.size - lane.ready.length;
    const idle = lane.inFlight.size === 0 && lane.ready.length === 0;
    return room >= lane.concurrency || (idle && room > 0) ? room : 0;
  }

  function pump(lane: Lane): Promise<void> {
    if (!running) return Promise.resolve();
    if (lane.pumping) {
      lane.again = true;
      return lane.pumping;
    }
    lane.pumping = claimWhileDue(lane).finally(() => {
      lane.pumping = null;
    });
    return lane.pumping;
  }

  async function claimWhileDue(lane: Lane): Promise<void> {
    do {
      // One claim per turn of the event loop, whatever the engine: timers and I/O run in between.
      await nextTurn();
      if (!running) break;
      lane.again = false;
      const limit = wanted(lane);
      if (limit <= 0) break;
      let claimed: ClaimedDelivery[];
      try {
        claimed = await claimDueDeliveries(
          options.database.sql,
          lane.channel,
          limit,
          options.leaseMs,
          options.now(),
        );
      } catch (error) {
        options.onError(error);
        break; // the poll tries again
      }
      if (!running) {
        // Stopped while claiming: hand the claims straight back.
        await options.run.release(claimed).catch(options.onError);
        break;
      }
      const claimedAt = performance.now();
      for (const claim of claimed) lane.ready.push({ claim, claimedAt });
      startReady(lane);
      // A full claim means more may be due: go on (slots freeing up wake the lane too).
      if (claimed.length === limit) lane.again = true;
    } while (lane.again && running);
  }

  /** Fills free slots from the prefetched claims. */
  function startReady(lane: Lane): void {
    const stale: ClaimedDelivery[] = [];
    while (running && lane.inFlight.size < lane.concurrency && lane.ready.length > 0) {
      const { claim, claimedAt } = lane.ready.shift()!;
      if (performance.now() - claimedAt > maxReadyWaitMs()) stale.push(claim);
      else start(lane, claim);
    }
    if (stale.length > 0) options.run.release(stale).then(() => pump(lane), options.onError);
  }
  /** The fallback poll: deliveries whose dispatcher died go back to the queue; then every lane looks. */
  function tick(): void {
    requeueExpiredLeases(options.database.sql, options.now()).then(wakeAll, (error: unknown) => {
      options.onError(error);
      wakeAll();
    });
  }

  function start(lane: Lane, claim: ClaimedDelivery): void {
    const work = options.run
      .run(claim, { stopping: stopping.signal, abort: abort.signal })
      .then(
        (nextDueAt) => {
          if (nextDueAt !== null) wakeAt(lane, nextDueAt.getTime());
        },
        (error: unknown) => options.onError(error),
      )
      .finally(() => {
        lane.inFlight.delete(work);
        if (!running) return;
        startReady(lane);
        void pump(lane);
      });
    lane.inFlight.add(work);
  }

  return {
    async start() {
      running = true;
      unlisten = await options.database.listen(WAKEUP_CHANNEL, wakeAll);
      poll = setInterval(tick, options.pollMs);
      poll.unref();
      tick();
    },
    wake: wakeAll,
    inFlight: () => lanes.reduce((n, lane) => n + lane.inFlight.size, 0),
    async stop(deadlineMs) {
      if (!running) return;
      running = false;
      if (poll) clearInterval(poll);
      for (const lane of lanes) if (lane.timer) clearTimeout(lane.timer);
      // Prefetched claims were never attempted: hand them back at once.
      const unstarted = lanes.flatMap((lane) => lane.ready.splice(0).map((r) => r.claim));
      await options.run.release(unstarted).catch(options.onError);
      stopping.abort();
      // A claim in progress hands its deliveries back when it returns (the database is still open).
      await Promise.all(lanes.map((lane) => lane.pumping));
      await unlisten?.().catch(options.onError);
      const all = () => Promise.all(lanes.flatMap((lane) => [...lane.inFlight]));
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'deadline'>((resolve) => {
        timer = setTimeout(() => resolve('deadline'), deadlineMs);
      });
      if ((await Promise.race([all(), deadline])) === 'deadline') {
        // Cut the attempts still running: each records its outcome and releases its lease.
        abort.abort();
        await all();
      }
      clearTimeout(timer);
      await options.run.drain();
    },
  };
}
