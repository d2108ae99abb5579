// One server's fanout run: RSS before and after the idle connections, then a unicast burst and a broadcast
// burst, each from the first hand-over to the last arrival, with the CPU of every process over the burst.
import { type RealtimeCpu, startCpuWindow, waitUntilQuiet } from './realtime-cpu.js';
import type { ArrivalsReply, ClientGroup } from './realtime-fanout-clients.js';
import type { FanoutServer } from './realtime-fanout-servers.js';
import { type MemoryBreakdown, residentBytes } from './realtime-memory.js';

export interface FanoutSettings {
  connections: number;
  broadcasts: number;
  /** Wait after a GC (or instead of one) before RSS is read. */
  settleMs: number;
  connectTimeoutMs: number;
  phaseTimeoutMs: number;
}

export interface IdleResult {
  connected: number;
  failed: number;
  firstError: string | null;
  connectMs: number;
  rssBefore: number;
  rssAfter: number;
  /** V8 heap in use after the forced GCs (NaN without them): steadier than RSS, which moves with old pages. */
  heapBefore: number;
  heapAfter: number;
  /** Whether RSS was read after a forced full GC (else after the settle wait only). */
  forcedGc: boolean;
  /** Where the memory sat at both readings (Herald only). */
  memoryBefore: MemoryBreakdown | null;
  memoryAfter: MemoryBreakdown | null;
}

export interface DeliveryResult {
  kind: 'unicast' | 'broadcast';
  expected: number;
  received: number;
  duplicates: number;
  unexpected: number;
  /** First hand-over to last arrival. */
  elapsedMs: number;
  /** Hand-over to arrival, ascending. */
  latenciesMs: Float64Array;
  cpu: RealtimeCpu;
  completed: boolean;
  /** Whether the server had gone quiet before the phase started. */
  quiet: boolean;
  failures: string[];
}

export interface ServerRun {
  label: string;
  idle: IdleResult;
  /** The unicast's Sends with nobody connected (Herald only). */
  storeOnly: { notifications: number; elapsedMs: number; failures: string[]; cpu: RealtimeCpu } | undefined;
  unicast: DeliveryResult;
  broadcast: DeliveryResult;
  /** Live connections the server closed during the run. */
  closed: number;
  firstClose: string | null;
  serverLog: readonly string[];
}

/** Connections opened and closed before the RSS baseline is read. */
const WARM_UP_CONNECTIONS = 100;
/** How long a phase waits for the previous one's leftover work to finish. */
const QUIET_TIMEOUT_MS = 30_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function deliveriesPerSecond(result: DeliveryResult): number {
  return result.received / (result.elapsedMs / 1000);
}

async function settledRss(
  server: FanoutServer,
  settleMs: number,
): Promise<{ rss: number; heap: number; forcedGc: boolean; memory: MemoryBreakdown | null }> {
  const heap = await server.collectGarbage().catch(() => null);
  await sleep(settleMs);
  const rss = residentBytes(server.pid);
  const memory = (await server.memory?.().catch(() => null)) ?? null;
  return { rss, heap: heap ?? Number.NaN, forcedGc: heap !== null, memory };
}

/**
 * A few connections opened and closed first, so code loaded and compiled on the first connection (and pools
 * sized for them) count as the server's fixed cost, not as the cost of each idle connection.
 */
async function warmUp(server: FanoutServer, groups: ClientGroup[], settings: FanoutSettings): Promise<void> {
  const first = groups[0];
  if (!first) return;
  await first.connect(server.wsUrl, settings.connectTimeoutMs, WARM_UP_CONNECTIONS);
  await first.disconnect();
}

async function connectIdle(
  server: FanoutServer,
  groups: ClientGroup[],
  settings: FanoutSettings,
): Promise<IdleResult> {
  await warmUp(server, groups, settings);
  const before = await settledRss(server, settings.settleMs);
  const started = performance.now();
  const replies = await Promise.all(groups.map((g) => g.connect(server.wsUrl, settings.connectTimeoutMs)));
  const connectMs = performance.now() - started;
  const after = await settledRss(server, settings.settleMs);
  return {
    connected: replies.reduce((sum, r) => sum + r.opened, 0),
    failed: replies.reduce((sum, r) => sum + r.failed, 0),
    firstError: replies.find((r) => r.firstError !== null)?.firstError ?? null,
    connectMs,
    rssBefore: before.rss,
    rssAfter: after.rss,
    heapBefore: before.heap,
    heapAfter: after.heap,
    forcedGc: before.forcedGc && after.forcedGc,
    memoryBefore: before.memory,
    memoryAfter: after.memory,
  };
}

/** Joins arrival times with hand-over times: slot s of group g is user g.firstUser + s (unicast) or message i. */
function summarize(
  kind: DeliveryResult['kind'],
  groups: ClientGroup[],
  arrivals: ArrivalsReply[],
  sentAt: Float64Array,
  expected: number,
): Omit<DeliveryResult, 'cpu' | 'completed' | 'quiet' | 'failures'> {
  const latencies: number[] = [];
  let lastArrival = Number.NEGATIVE_INFINITY;
  groups.forEach((group, g) => {
    arrivals[g]!.times.forEach((arrivedAt, slot) => {
      if (arrivedAt === 0) return;
      const sent =
        kind === 'unicast' ? sentAt[group.firstUser + slot]! : sentAt[Math.floor(slot / group.count)]!;
      latencies.push(arrivedAt - sent);
      lastArrival = Math.max(lastArrival, arrivedAt);
    });
  });
  const firstSend = sentAt.reduce((min, t) => (t > 0 ? Math.min(min, t) : min), Number.POSITIVE_INFINITY);
  return {
    kind,
    expected,
    received: latencies.length,
    duplicates: arrivals.reduce((sum, a) => sum + a.duplicates, 0),
    unexpected: arrivals.reduce((sum, a) => sum + a.unexpected, 0),
    elapsedMs: latencies.length > 0 ? lastArrival - firstSend : Number.NaN,
    latenciesMs: Float64Array.from(latencies).sort(),
  };
}

async function deliveryPhase(
  kind: DeliveryResult['kind'],
  phase: number,
  server: FanoutServer,
  groups: ClientGroup[],
  idle: IdleResult,
  settings: FanoutSettings,
): Promise<{ result: DeliveryResult; arrivals: ArrivalsReply[] }> {
  const messages = kind === 'unicast' ? 1 : settings.broadcasts;
  const subjects = { serverPid: server.pid, database: server.database };
  const quiet = await waitUntilQuiet(subjects, QUIET_TIMEOUT_MS);
  await Promise.all(groups.map((g) => g.expect(phase, kind, messages)));
  const sentAt = new Float64Array(kind === 'unicast' ? settings.connections : messages);
  const stopCpu = startCpuWindow(
    subjects,
    groups.map((g) => g.pid),
  );
  const completing = Promise.all(groups.map((g) => g.waitComplete(phase, settings.phaseTimeoutMs)));
  const stopProfile = await server.profile(kind);
  const failures =
    kind === 'unicast'
      ? await server.unicast(settings.connections, (first, count, at) =>
          sentAt.fill(at, first, first + count),
        )
      : await server.broadcast(messages, (i, at) => {
          sentAt[i] = at;
        });
  const completed = (await completing).every(Boolean);
  const cpu = stopCpu();
  await stopProfile();
  const arrivals = await Promise.all(groups.map((g) => g.collect()));
  const summary = summarize(kind, groups, arrivals, sentAt, idle.connected * messages);
  return { result: { ...summary, cpu, completed, quiet, failures }, arrivals };
}

/** Connects every client to `server`, measures, and disconnects them again. */
export async function measureServer(
  server: FanoutServer,
  groups: ClientGroup[],
  settings: FanoutSettings,
  progress: (message: string) => void,
): Promise<ServerRun> {
  progress(`  ${server.label}: connecting ${settings.connections} WebSockets`);
  const idle = await connectIdle(server, groups, settings);
  try {
    progress(`  ${server.label}: unicast burst (${idle.connected} notifications)`);
    const unicast = await deliveryPhase('unicast', 1, server, groups, idle, settings);
    progress(`  ${server.label}: ${settings.broadcasts} broadcasts`);
    const broadcast = await deliveryPhase('broadcast', 2, server, groups, idle, settings);
    let storeOnly: ServerRun['storeOnly'];
    if (server.storeOnly) {
      progress(`  ${server.label}: the same Sends with nobody connected`);
      const subjects = { serverPid: server.pid, database: server.database };
      await waitUntilQuiet(subjects, QUIET_TIMEOUT_MS);
      const stopCpu = startCpuWindow(subjects, []);
      const stopProfile = await server.profile('store-only');
      const sent = await server.storeOnly(settings.connections);
      const cpu = stopCpu();
      await stopProfile();
      storeOnly = { notifications: settings.connections, ...sent, cpu };
    }
    return {
      label: server.label,
      idle,
      storeOnly,
      unicast: unicast.result,
      broadcast: broadcast.result,
      closed: broadcast.arrivals.reduce((sum, a) => sum + a.closed, 0),
      firstClose: broadcast.arrivals.find((a) => a.firstClose !== null)?.firstClose ?? null,
      serverLog: [...server.logLines()],
    };
  } finally {
    progress(`  ${server.label}: disconnecting`);
    await Promise.all(groups.map((g) => g.disconnect()));
  }
}
