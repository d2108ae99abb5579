// The Herald push phases: a Herald child on the bench database with its dispatcher on and a providers file
// listing one provider (apns or webpush) pointed at the emulator child; one device per recipient, inserted
// straight into push_tokens (registering 10,000 devices over RPC would take longer than the phase itself and
// measures nothing here); then N PUSH notifications (priority HIGH and collapse key = the type, so APNs gets
// apns-priority 10 and apns-collapse-id as in the baseline) handed over with SendBatch, one delivery each.
// Send time = when the SendBatch call carrying the notification started; a delivery is keyed by its apns-id
// (= the delivery id SendBatch returns) or, for Web Push, by the notification id its decrypted payload names.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { create } from '@bufbuild/protobuf';
import postgres from 'postgres';
import webPush from 'web-push';
import {
  Channel,
  createClient,
  createHeraldTransport,
  DeliveryStatus,
  NotificationService,
  Priority,
  type SendBatchResponse,
  SendRequestSchema,
} from '../../clients/node/index.js';
import type { TestSubscription } from '../../test/emulators/webpush.js';
import type { Cleanup } from './cleanup.js';
import { epochNow } from './dispatch-child.js';
import { startCpuWindow } from './dispatch-measure.js';
import { startHeraldChild } from './herald-child.js';
import type { PushSetup } from './push-bare.js';
import type { PushPlatform } from './push-emulators.js';
import { MAX_FAILURES, type PushPhase, PushSendLog } from './push-measure.js';
import {
  APP_ID,
  apnsToken,
  KEY_ID,
  PUSH_BODY,
  PUSH_TITLE,
  PUSH_TYPE,
  pushData,
  pushUser,
  TEAM_ID,
} from './push-workload.js';

const RPC_TIMEOUT_MS = 30_000;
const PROVIDER_TIMEOUT_MS = 10_000;
const LOOPBACK = '127.0.0.1/32';
/** After the last arrival, how long the outcome writes may take before the count is reported short. */
const RECORD_WAIT_MS = 15_000;
const INSERT_CHUNK = 5_000;

/** The device of each recipient, by index: what its delivery must reach (token or subscription id). */
interface Devices {
  platform: PushPlatform;
  destinations: string[];
  /** Web Push only. */
  subscriptions: TestSubscription[];
}

type Sql = ReturnType<typeof postgres>;

/** Empty Herald tables, no devices, and no API keys, so the new child prints a fresh bootstrap key. */
async function resetDatabase(sql: Sql, setup: PushSetup): Promise<void> {
  await sql`delete from push_tokens`;
  await sql`delete from api_keys`;
  await setup.database.reset();
}

async function insertDevices(sql: Sql, devices: Devices): Promise<void> {
  const n = devices.destinations.length;
  for (let from = 0; from < n; from += INSERT_CHUNK) {
    const indexes = Array.from({ length: Math.min(INSERT_CHUNK, n - from) }, (_, i) => from + i);
    // One JSON parameter per chunk, unpacked by jsonb_to_recordset: no dependence on the driver's array types.
    if (devices.platform === 'apns') {
      const rows = JSON.stringify(indexes.map((i) => ({ u: pushUser(i), t: devices.destinations[i]! })));
      await sql`
        insert into push_tokens (id, user_id, platform, token, app_id)
        select gen_random_uuid(), u, 'apns', t, ${APP_ID}
        from jsonb_to_recordset(${rows}::text::jsonb) as x(u text, t text)`;
    } else {
      // As RegisterToken stores them: the endpoint as a normalized URL, the keys base64url without padding.
      const rows = JSON.stringify(
        indexes.map((i) => {
          const sub = devices.subscriptions[i]!;
          return {
            u: pushUser(i),
            e: new URL(sub.endpoint).toString(),
            p: sub.keys.p256dh.replace(/=+$/, ''),
            a: sub.keys.auth.replace(/=+$/, ''),
          };
        }),
      );
      await sql`
        insert into push_tokens (id, user_id, platform, token, web_push_p256dh, web_push_auth)
        select gen_random_uuid(), u, 'webpush', e, p, a
        from jsonb_to_recordset(${rows}::text::jsonb) as x(u text, e text, p text, a text)`;
    }
  }
  const [row] = await sql<{ n: string }[]>`select count(*) as n from push_tokens where active`;
  if (Number(row!.n) !== n) throw new Error(`inserted ${row!.n} push tokens, expected ${n}`);
}

/** A providers file listing only the phase's provider, its secrets in files next to it; returns its path. */
function writeProvidersFile(dir: string, setup: PushSetup, platform: PushPlatform): string {
  const secret = (name: string, value: string) => {
    const file = path.join(dir, name);
    writeFileSync(file, `${value}\n`, { mode: 0o600 });
    return { file };
  };
  const provider =
    platform === 'apns'
      ? {
          type: 'apns',
          timeout_ms: PROVIDER_TIMEOUT_MS,
          settings: {
            auth: {
              type: 'token',
              key: secret('apns.p8', setup.apnsPrivateKeyPem),
              key_id: KEY_ID,
              team_id: TEAM_ID,
            },
            apps: [{ app_id: APP_ID, environment: 'production' }],
            endpoint: {
              address: '127.0.0.1',
              port: setup.emulators.apnsPort,
              ca: { file: setup.emulators.apnsCaFile },
            },
          },
        }
      : (() => {
          const vapid = webPush.generateVAPIDKeys();
          return {
            type: 'webpush',
            timeout_ms: PROVIDER_TIMEOUT_MS,
            settings: {
              vapid_public_key: vapid.publicKey,
              vapid_private_key: secret('vapid.key', vapid.privateKey),
              subject: 'mailto:bench@example.com',
              allow_networks: [LOOPBACK],
              ca: { file: setup.emulators.webPushCaFile },
            },
          };
        })();
  const file = path.join(dir, 'providers.json');
  writeFileSync(file, JSON.stringify({ channels: { push: [provider] } }), { mode: 0o600 });
  return file;
}

/** Herald settings for the child, which inherits this process's environment; returns the restore. */
function heraldEnvironment(concurrency: number, providersFile: string): () => void {
  const names = ['HERALD_DISPATCHER', 'HERALD_DISPATCH_CONCURRENCY_PUSH', 'HERALD_PROVIDERS_FILE'] as const;
  const saved = Object.fromEntries(names.map((name) => [name, process.env[name]]));
  process.env.HERALD_DISPATCHER = 'true';
  // The push lane's in-flight limit, the same as the bare client's.
  process.env.HERALD_DISPATCH_CONCURRENCY_PUSH = String(concurrency);
  process.env.HERALD_PROVIDERS_FILE = providersFile;
  return () => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}

/** Each notification's one PUSH delivery id; throws unless each has exactly one, queued. */
function pushDeliveries(response: SendBatchResponse, expected: number) {
  if (response.results.length !== expected) {
    throw new Error(`expected ${expected} results, got ${response.results.length}`);
  }
  return response.results.map((result) => {
    const [delivery, ...others] = result.deliveries;
    if (!delivery || others.length > 0 || delivery.channel !== Channel.PUSH) {
      throw new Error(`expected one push delivery, got ${result.deliveries.length}`);
    }
    if (delivery.status !== DeliveryStatus.QUEUED) {
      throw new Error(`push delivery not queued: ${delivery.reason || delivery.status}`);
    }
    return { deliveryId: delivery.deliveryId, notificationId: result.notificationId };
  });
}

/** Deliveries the database holds as sent, waiting (bounded) for the outcome writes to catch up. */
async function recordedSent(sql: Sql, expected: number): Promise<number> {
  const until = performance.now() + RECORD_WAIT_MS;
  for (;;) {
    const [row] = await sql<{ n: string }[]>`select count(*) as n from deliveries where status = 'sent'`;
    const n = Number(row!.n);
    if (n >= expected || performance.now() > until) return n;
    await sleep(100);
  }
}

export interface HeraldPushResult {
  phase: PushPhase;
  serverLog: readonly string[];
}

/** The child is stopped when the phase ends and, if interrupted, by `cleanup` (it has no IPC to notice). */
export async function heraldPushPhase(
  setup: PushSetup,
  platform: PushPlatform,
  label: string,
  cleanup: Cleanup,
): Promise<HeraldPushResult> {
  const n = setup.notifications;
  const sql = postgres(setup.database.url, { max: 1, onnotice: () => {} });
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-push-bench-'));
  cleanup.add(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  try {
    const subscriptions = platform === 'webpush' ? await setup.emulators.subscribe(n) : [];
    const devices: Devices = {
      platform,
      destinations:
        platform === 'apns'
          ? Array.from({ length: n }, (_, i) => apnsToken(i))
          : subscriptions.map((s) => s.id),
      subscriptions,
    };
    await resetDatabase(sql, setup);
    await insertDevices(sql, devices);
    const restore = heraldEnvironment(setup.concurrency, writeProvidersFile(dir, setup, platform));
    const server = await startHeraldChild({
      databaseUrl: setup.database.url,
      dataDir: undefined,
      cpuProfDir: setup.cpuProfDir,
    }).finally(restore);
    cleanup.add('stop Herald', () => server.stop());
    try {
      const herald = createClient(
        NotificationService,
        createHeraldTransport({
          baseUrl: server.grpcUrl,
          apiKey: server.apiKey,
          defaultTimeoutMs: RPC_TIMEOUT_MS,
        }),
      );
      const log = new PushSendLog();
      setup.emulators.expect(platform, n);
      const endCpu = startCpuWindow(
        { serverPid: server.pid, database: setup.database.name },
        setup.emulators.pid,
      );
      const deadline = performance.now() + setup.timeoutMs;
      let next = 0;
      async function sender(): Promise<void> {
        while (next < n && performance.now() < deadline && log.failureCount < MAX_FAILURES) {
          const first = next;
          const count = Math.min(setup.batchSize, n - first);
          next += count;
          const indexes = Array.from({ length: count }, (_, i) => first + i);
          const requests = indexes.map((i) =>
            create(SendRequestSchema, {
              userId: pushUser(i),
              type: PUSH_TYPE,
              title: PUSH_TITLE,
              body: PUSH_BODY,
              data: pushData(i),
              channels: [Channel.PUSH],
              priority: Priority.HIGH,
              // Named, so Herald sends apns-collapse-id (and a Web Push Topic) as the baseline does.
              push: { collapseKey: PUSH_TYPE },
            }),
          );
          const startedAt = epochNow();
          try {
            const planned = pushDeliveries(await herald.sendBatch({ requests }), count);
            const sent = planned.map((p, j) => ({
              key: platform === 'apns' ? p.deliveryId : p.notificationId,
              destination: devices.destinations[indexes[j]!]!,
            }));
            log.log(sent, startedAt, epochNow());
          } catch (error) {
            log.failed(error);
          }
        }
      }
      await Promise.all(Array.from({ length: setup.senders }, sender));
      const complete = await setup.emulators.waitComplete(Math.max(1, deadline - performance.now()));
      const cpu = endCpu();
      const arrivals = await setup.emulators.collect();
      const phase = log.summarize(label, n, platform === 'apns' ? 200 : 201, arrivals, cpu);
      if (!complete) phase.notes.unshift(`timed out after ${setup.timeoutMs / 1000} s`);
      phase.recorded = await recordedSent(sql, n);
      if (phase.recorded < n) phase.notes.push(`${n - phase.recorded} deliveries not recorded as sent`);
      return { phase, serverLog: [...server.logLines()] };
    } finally {
      await server.stop();
    }
  } finally {
    await sql.end({ timeout: 5 });
    rmSync(dir, { recursive: true, force: true });
  }
}
