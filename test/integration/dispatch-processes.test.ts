// The dispatcher across real `herald serve` processes sharing one PostgreSQL database, as a webhook receiver
// sees it: a dispatcher killed with SIGKILL mid-run loses no delivery (its leases run out and another process
// claims them again: at-least-once, with at most one duplicate per claim the dead process held), and two live
// dispatchers split one queue without ever attempting the same delivery at the same time.
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { Channel, createHeraldAdminClient, createHeraldClient } from '../../clients/node/index.js';
import { startWebhookReceiver, type WebhookReceiver } from '../emulators/webhook-receiver.js';
import { createPostgresDatabase } from '../support/engines.js';
import { killLeftovers, ServeProcess, until } from './lifecycle-process.js';

afterAll(() => killLeftovers());

/** Claims held at once by one process (one lane: only the webhook channel has a provider). */
const CONCURRENCY = 16;
const BATCH_SIZE = 500;
const START_TIMEOUT_MS = 30_000;
const SETTLE_TIMEOUT_MS = 60_000;
const FINAL_STATUSES = new Set(['sent', 'delivered', 'failed', 'expired', 'cancelled', 'skipped']);

type Sql = ReturnType<typeof postgres>;
type StatusCounts = Record<string, number>;

/** One `herald serve` on the database; the webhook timeout stays below the shortest lease used here. */
function serveSettings(databaseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    HERALD_BOOTSTRAP_ADMIN_KEY: 'true',
    HERALD_WEBHOOK_ALLOW_NETWORKS: '127.0.0.1/32',
    HERALD_DISPATCH_CONCURRENCY: String(CONCURRENCY),
    HERALD_WEBHOOK_TIMEOUT_MS: '2000',
    HERALD_RETRY_WEBHOOK: 'attempts=5,base_ms=100,max_delay_ms=500',
    HERALD_SHUTDOWN_TIMEOUT_MS: '2000',
    ...extra,
  };
}

/** Queues `total` notifications, one webhook delivery each, in SendBatch calls of BATCH_SIZE. */
async function queueWebhooks(server: ServeProcess, apiKey: string, total: number, label: string) {
  const herald = createHeraldClient({ baseUrl: server.url, apiKey, defaultTimeoutMs: 30_000 });
  for (let first = 0; first < total; first += BATCH_SIZE) {
    const requests = Array.from({ length: Math.min(BATCH_SIZE, total - first) }, (_, i) => ({
      userId: `${label}-${first + i}`,
      type: 'dispatch.test',
      title: `${label} #${first + i}`,
      channels: [Channel.WEBHOOK],
    }));
    const { results } = await herald.sendBatch({ requests });
    expect(results).toHaveLength(requests.length);
  }
}

async function createEndpoint(server: ServeProcess, apiKey: string, receiver: WebhookReceiver) {
  const admin = createHeraldAdminClient({ baseUrl: server.url, apiKey, defaultTimeoutMs: 10_000 });
  const { secret } = await admin.createWebhookEndpoint({
    url: `${receiver.url}/hooks`,
    eventTypes: [],
    description: 'dispatch-processes test',
  });
  return secret;
}

async function statusCounts(sql: Sql): Promise<StatusCounts> {
  const rows = await sql<{ status: string; count: number }[]>`
    select status, count(*)::int as count from deliveries group by status`;
  return Object.fromEntries(rows.map((r) => [r.status, r.count]));
}

/** Waits until `total` deliveries exist and every one is final; returns the counts by status. */
async function settled(sql: Sql, total: number): Promise<StatusCounts> {
  let latest: StatusCounts = {};
  try {
    return await until(`${total} deliveries final`, SETTLE_TIMEOUT_MS, async () => {
      latest = await statusCounts(sql);
      const final = Object.entries(latest)
        .filter(([status]) => FINAL_STATUSES.has(status))
        .reduce((n, [, count]) => n + count, 0);
      return final === total ? latest : undefined;
    });
  } catch (error) {
    throw new Error(`${(error as Error).message}; deliveries by status: ${JSON.stringify(latest)}`);
  }
}

async function deliveryIds(sql: Sql): Promise<Set<string>> {
  const rows = await sql<{ id: string }[]>`select id::text as id from deliveries`;
  return new Set(rows.map((r) => r.id));
}

/** Delivery ids the receiver never saw, and webhook-ids it saw that are no delivery. */
function compareIds(ids: ReadonlySet<string>, counts: ReadonlyMap<string, number>) {
  return {
    missing: [...ids].filter((id) => !counts.has(id)),
    unknown: [...counts.keys()].filter((id) => !ids.has(id)),
  };
}

/** Ids that arrived more than once, and how many requests beyond the first they took. */
function duplicates(counts: ReadonlyMap<string, number>): { ids: number; extraRequests: number } {
  const repeated = [...counts.values()].filter((n) => n > 1);
  return { ids: repeated.length, extraRequests: repeated.reduce((sum, n) => sum + n - 1, 0) };
}

/** The process's herald_delivery_attempts_total, summed over channel, provider and outcome. */
async function deliveryAttempts(server: ServeProcess): Promise<number> {
  const res = await fetch(`${server.url}/metrics`, { signal: AbortSignal.timeout(5_000) });
  expect(res.status).toBe(200);
  return (await res.text())
    .split('\n')
    .filter((line) => line.startsWith('herald_delivery_attempts_total{'))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

/** Log lines that mean the dispatcher misbehaved: errors, and outcomes written after the lease was lost. */
function dispatcherTrouble(server: ServeProcess): unknown[] {
  return server
    .logs()
    .filter((line) => /dispatcher error|delivery run failed|lease was lost/.test(String(line.msg)));
}

async function stopAll(servers: readonly ServeProcess[]): Promise<void> {
  await Promise.all(servers.map((s) => s.stop('SIGTERM', 10_000).catch(() => s.kill())));
}

describe.runIf(Boolean(process.env.TEST_DATABASE_URL))('dispatcher processes on PostgreSQL', () => {
  it('sends every delivery after a dispatcher is killed mid-run, duplicating only the claims it held', async () => {
    const startedAt = performance.now();
    const total = 2_000;
    const db = await createPostgresDatabase(process.env.TEST_DATABASE_URL!);
    const sql = postgres(db.url, { max: 2, onnotice: () => {} });
    const receiver = await startWebhookReceiver();
    // A slow receiver keeps claims in flight, so the kill lands in the middle of attempts.
    receiver.setDefault({ status: 200, delayMs: 20 });
    const settings = serveSettings(db.url, {
      HERALD_DELIVERY_LEASE_MS: '4000',
      HERALD_DISPATCH_POLL_MS: '500',
    });
    const servers: ServeProcess[] = [];
    try {
      const doomed = await ServeProcess.start(settings, START_TIMEOUT_MS);
      servers.push(doomed);
      const apiKey = doomed.bootstrapKey!;
      expect(apiKey).toBeDefined();
      const secret = await createEndpoint(doomed, apiKey, receiver);
      await queueWebhooks(doomed, apiKey, total, 'crash');

      await receiver.waitFor((all) => all.length >= 300, 30_000);
      process.kill(doomed.pid, 'SIGKILL');
      expect(await doomed.exited).toEqual({ code: null, signal: 'SIGKILL' });
      const receivedAtKill = receiver.received.length;
      const atKill = await statusCounts(sql);
      // The kill interrupted the run: work was left queued or leased to the dead process.
      expect((atKill.queued ?? 0) + (atKill.sending ?? 0)).toBeGreaterThan(0);

      const successor = await ServeProcess.start(settings, START_TIMEOUT_MS);
      servers.push(successor);
      expect(await settled(sql, total)).toEqual({ sent: total });

      const counts = receiver.countsByWebhookId();
      expect(compareIds(await deliveryIds(sql), counts)).toEqual({ missing: [], unknown: [] });
      expect(receiver.unverified(secret)).toEqual([]);
      expect(dispatcherTrouble(successor)).toEqual([]);
      const repeated = duplicates(counts);
      console.log(
        `dispatch crash: ${receivedAtKill} requests before SIGKILL, deliveries then ${JSON.stringify(atKill)}; ` +
          `${receiver.received.length} requests in all; ${repeated.ids} ids received more than once ` +
          `(${repeated.extraRequests} extra requests); ${Math.round(performance.now() - startedAt)} ms`,
      );
      // Only a delivery still leased to the dead process ('sending' after the kill) can be attempted twice.
      // A lane leases at most 3 x CONCURRENCY claims (in flight and prefetched) plus the outcomes it has not
      // written yet (at most 512 before runs wait for their writes). The successor's attempts (20 ms, 2 s
      // timeout) end well inside their 4 s lease.
      const orphaned = atKill.sending ?? 0;
      expect(orphaned).toBeLessThanOrEqual(3 * CONCURRENCY + 512);
      expect(repeated.ids).toBeLessThanOrEqual(orphaned);
      expect(repeated.extraRequests).toBeLessThanOrEqual(orphaned);
    } finally {
      await stopAll(servers);
      await sql.end();
      await receiver.close();
      await db.drop();
    }
  }, 110_000);

  it('splits 5,000 deliveries between two processes and never attempts one delivery twice at once', async () => {
    const startedAt = performance.now();
    const total = 5_000;
    const db = await createPostgresDatabase(process.env.TEST_DATABASE_URL!);
    const sql = postgres(db.url, { max: 2, onnotice: () => {} });
    const receiver = await startWebhookReceiver();
    // The default lease (60 s) is far longer than any attempt here, so no claim may run out.
    const settings = serveSettings(db.url, { HERALD_DISPATCH_POLL_MS: '1000' });
    const servers: ServeProcess[] = [];
    try {
      // One after the other: the first applies the migrations and creates the admin key.
      const first = await ServeProcess.start(settings, START_TIMEOUT_MS);
      servers.push(first);
      const second = await ServeProcess.start(settings, START_TIMEOUT_MS);
      servers.push(second);
      expect(second.port).not.toBe(first.port);
      const apiKey = first.bootstrapKey!;
      expect(apiKey).toBeDefined();
      expect(second.bootstrapKey).toBeUndefined();
      const secret = await createEndpoint(first, apiKey, receiver);
      await queueWebhooks(first, apiKey, total, 'shared');

      expect(await settled(sql, total)).toEqual({ sent: total });
      const counts = receiver.countsByWebhookId();
      expect(compareIds(await deliveryIds(sql), counts)).toEqual({ missing: [], unknown: [] });
      expect(receiver.maxConcurrentPerWebhookId()).toBe(1);
      expect(receiver.unverified(secret)).toEqual([]);

      const attempts = [await deliveryAttempts(first), await deliveryAttempts(second)];
      const repeated = duplicates(counts);
      console.log(
        `dispatch shared: attempts per process ${attempts.join(' + ')}; ${receiver.received.length} requests; ` +
          `${repeated.ids} ids received more than once; ${Math.round(performance.now() - startedAt)} ms`,
      );
      expect(attempts.every((n) => n > 0)).toBe(true);
      expect(attempts[0]! + attempts[1]!).toBe(receiver.received.length);
      expect(repeated).toEqual({ ids: 0, extraRequests: 0 });
      expect(servers.flatMap(dispatcherTrouble)).toEqual([]);
    } finally {
      await stopAll(servers);
      await sql.end();
      await receiver.close();
      await db.drop();
    }
  }, 110_000);
});
