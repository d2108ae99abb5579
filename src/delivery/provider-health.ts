// Each provider's circuit, as every instance sees it. Circuits are kept per instance (circuit-breaker.ts), so
// an operator asking "is SES tripping?" needs every dispatching instance's answer. With Redis, each one
// publishes its circuits every REPORT_MS under a key that expires after REPORT_TTL_MS (a stopped instance
// drops out by itself) and lists itself in one set; a reader fetches the set's keys in one MGET. Without
// Redis there is one instance, and its own circuits are the answer.
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { ChannelName } from '../core/channels.js';
import type { CircuitBreakers, CircuitState } from './circuit-breaker.js';
import type { ProviderSet } from './provider.js';
import type { RateLimit } from './rate-limiter.js';

export const REPORT_MS = 5_000;
export const REPORT_TTL_MS = 3 * REPORT_MS;
const INSTANCES_KEY = 'herald:circuits:instances';
const reportKey = (instance: string) => `herald:circuits:${instance}`;
const SEVERITY: Record<CircuitState, number> = { closed: 0, half_open: 1, open: 2 };
/** How long a reader waits for every instance's circuits before answering with its own. */
const READ_TIMEOUT_MS = 1_000;

export interface ProviderCircuitState {
  channel: ChannelName;
  provider: string;
  state: CircuitState;
}

export interface CircuitReport {
  instance: string;
  /** When the instance took the snapshot (its own clock), in milliseconds since the epoch. */
  at: number;
  circuits: ProviderCircuitState[];
}

export interface ConfiguredProvider {
  channel: ChannelName;
  provider: string;
  rateLimit: RateLimit | undefined;
}

export interface ProviderHealthSource {
  /** This instance's providers, in failover order per channel, with the rate limit each attempt takes. */
  providers(): ConfiguredProvider[];
  /** The circuits of every instance that dispatches (this one's alone without Redis). */
  circuits(): Promise<CircuitReport[]>;
  close(): Promise<void>;
}

/**
 * Each provider's state: the worst of its circuits (a provider keeps one per webhook host, APNs environment
 * or push service origin, keyed `<provider>:<...>`).
 */
export function providerCircuitStates(
  circuits: CircuitBreakers,
  providers: ProviderSet,
  now: number,
): ProviderCircuitState[] {
  const states = Object.entries(circuits.states(now));
  return providerList(providers).map(({ channel, provider }) => {
    let worst: CircuitState = 'closed';
    for (const [key, state] of states) {
      if (
        (key === provider.name || key.startsWith(`${provider.name}:`)) &&
        SEVERITY[state] > SEVERITY[worst]
      ) {
        worst = state;
      }
    }
    return { channel, provider: provider.name, state: worst };
  });
}

/** Every provider of the set with its channel, channels in the set's order, providers in failover order. */
function providerList(providers: ProviderSet) {
  return (Object.entries(providers) as [ChannelName, ProviderSet[ChannelName]][]).flatMap(([channel, list]) =>
    (list ?? []).map((provider) => ({ channel, provider })),
  );
}

export function createProviderHealth(options: {
  circuits: CircuitBreakers;
  providers: () => ProviderSet;
  rateLimits: Readonly<Record<string, RateLimit>>;
  /** Only dispatching instances have circuits worth reporting. */
  dispatching: boolean;
  redis: Redis | null;
  onError: (error: unknown) => void;
}): ProviderHealthSource {
  const instance = `${hostname()}/${process.pid}/${Math.random().toString(16).slice(2, 6)}`;
  const snapshot = (): CircuitReport => ({
    instance,
    at: Date.now(),
    circuits: providerCircuitStates(options.circuits, options.providers(), performance.now()),
  });
  const { redis } = options;
  // Two plain commands, not MULTI: when the connection closes with a MULTI queued, ioredis rejects the MULTI
  // command's own promise too, which nothing can await (an unhandled rejection). A report whose key is there
  // without its set entry (or the reverse) is read right, or dropped, by everyInstance.
  const publish = async () => {
    if (!redis) return;
    await Promise.all([
      redis.set(reportKey(instance), JSON.stringify(snapshot()), 'PX', REPORT_TTL_MS),
      redis.sadd(INSTANCES_KEY, instance),
    ]);
  };
  // A Redis outage is reported once, not every REPORT_MS; the first report that goes through again re-arms it.
  let reported = false;
  const tick = () =>
    publish().then(
      () => {
        reported = false;
      },
      (error) => {
        if (!reported) options.onError(error);
        reported = true;
      },
    );
  const timer = redis && options.dispatching ? setInterval(tick, REPORT_MS).unref() : undefined;
  if (timer) void tick();

  async function everyInstance(redis: Redis): Promise<CircuitReport[]> {
    const instances = await redis.smembers(INSTANCES_KEY);
    const reports = instances.length > 0 ? await redis.mget(...instances.map(reportKey)) : [];
    const live: CircuitReport[] = [];
    const gone: string[] = [];
    reports.forEach((report, i) => {
      if (report === null) gone.push(instances[i]!);
      else {
        const parsed = parseReport(report);
        // One instance's unreadable report (another version during a rolling deploy) hides only that one.
        if (parsed) live.push(parsed);
      }
    });
    // An instance whose report expired has stopped (or lost Redis); it leaves the set until it reports again.
    if (gone.length > 0) await redis.srem(INSTANCES_KEY, ...gone);
    // This instance's own circuits are read now rather than from its last report.
    if (options.dispatching) {
      const own = live.findIndex((r) => r.instance === instance);
      if (own >= 0) live[own] = snapshot();
      else live.push(snapshot());
    }
    return live.sort((a, b) => a.instance.localeCompare(b.instance));
  }

  return {
    providers: () =>
      providerList(options.providers()).map(({ channel, provider }) => ({
        channel,
        provider: provider.name,
        rateLimit: provider.rateLimit ?? options.rateLimits[provider.name],
      })),
    async circuits() {
      const own = options.dispatching ? [snapshot()] : [];
      if (!redis) return own;
      let timer: NodeJS.Timeout | undefined;
      const read = everyInstance(redis);
      // Past the timeout nobody awaits the read; its late failure (Redis closing, say) is not an error.
      read.catch(() => {});
      try {
        return await Promise.race([
          read,
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error('redis did not answer in time')), READ_TIMEOUT_MS);
          }),
        ]);
      } catch (error) {
        // Redis away or stalled: this instance still answers for itself, at once.
        options.onError(error);
        return own;
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      if (!timer || !redis) return;
      clearInterval(timer);
      await Promise.all([redis.del(reportKey(instance)), redis.srem(INSTANCES_KEY, instance)]).catch(
        options.onError,
      );
    },
  };
}

function parseReport(text: string): CircuitReport | undefined {
  try {
    const report = JSON.parse(text) as Partial<CircuitReport>;
    return typeof report.instance === 'string' &&
      typeof report.at === 'number' &&
      Array.isArray(report.circuits)
      ? (report as CircuitReport)
      : undefined;
  } catch {
    return undefined;
  }
}
