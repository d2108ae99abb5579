// The Herald e-mail phase: a Herald child on the bench database with its dispatcher on, HERALD_PUBLIC_URL and
// HERALD_LINK_SECRET set (required with a real e-mail provider), and a providers file listing only `smtp`
// pointed at the emulator child (STARTTLS with its certificate as `ca`, AUTH, `connections` = the bare pool's
// maxConnections); then N EMAIL notifications to N distinct recipients (the address given with each Send, as
// Recipient.email) handed over with SendBatch, one delivery each. Send time = when the SendBatch call carrying
// the notification started; a message is keyed by its Message-ID, <delivery id@herald>.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { create } from '@bufbuild/protobuf';
import postgres from 'postgres';
import {
  Channel,
  createClient,
  createHeraldTransport,
  DeliveryStatus,
  NotificationService,
  type SendBatchResponse,
  SendRequestSchema,
} from '../../clients/node/index.js';
import type { Cleanup } from './cleanup.js';
import { epochNow } from './dispatch-child.js';
import { startCpuWindow } from './dispatch-measure.js';
import { EMAIL_TIMEOUT_MS, type EmailPhase, type EmailSetup } from './email-bare.js';
import {
  EMAIL_BODY,
  EMAIL_SUBJECT,
  EMAIL_TYPE,
  emailAddress,
  emailUser,
  FROM,
  LINK_SECRET,
  messageId,
  PUBLIC_URL,
  REPLY_TO,
  SMTP_PASSWORD,
  SMTP_USER,
} from './email-workload.js';
import { startHeraldChild } from './herald-child.js';
import { MAX_FAILURES, PushSendLog } from './push-measure.js';

const RPC_TIMEOUT_MS = 30_000;
/** After the last arrival, how long the outcome writes may take before the count is reported short. */
const RECORD_WAIT_MS = 15_000;
const PROVIDER_NAME = 'relay';

type Sql = ReturnType<typeof postgres>;

/** Empty Herald tables and no API keys, so the new child prints a fresh bootstrap key. */
async function resetDatabase(sql: Sql, setup: EmailSetup): Promise<void> {
  await sql`delete from api_keys`;
  await sql`delete from suppressions`;
  await setup.database.reset();
}

/** A providers file listing only the smtp provider, its password in a file next to it; returns its path. */
function writeProvidersFile(dir: string, setup: EmailSetup): string {
  const passwordFile = path.join(dir, 'smtp-password');
  writeFileSync(passwordFile, `${SMTP_PASSWORD}\n`, { mode: 0o600 });
  const provider = {
    type: 'smtp',
    name: PROVIDER_NAME,
    timeout_ms: EMAIL_TIMEOUT_MS,
    settings: {
      host: '127.0.0.1',
      port: setup.emulator.port,
      username: SMTP_USER,
      password: { file: passwordFile },
      ca: { file: setup.emulator.caFile },
      from: FROM,
      reply_to: REPLY_TO,
      connections: setup.connections,
    },
  };
  const file = path.join(dir, 'providers.json');
  writeFileSync(file, JSON.stringify({ channels: { email: [provider] } }), { mode: 0o600 });
  return file;
}

/** Herald settings for the child, which inherits this process's environment; returns the restore. */
function heraldEnvironment(concurrency: number, providersFile: string): () => void {
  const names = [
    'HERALD_DISPATCHER',
    'HERALD_DISPATCH_CONCURRENCY_EMAIL',
    'HERALD_PROVIDERS_FILE',
    'HERALD_PUBLIC_URL',
    'HERALD_LINK_SECRET',
  ] as const;
  const saved = Object.fromEntries(names.map((name) => [name, process.env[name]]));
  process.env.HERALD_DISPATCHER = 'true';
  // The e-mail lane's in-flight limit, the same as the bare client's sendMail calls in flight.
  process.env.HERALD_DISPATCH_CONCURRENCY_EMAIL = String(concurrency);
  process.env.HERALD_PROVIDERS_FILE = providersFile;
  process.env.HERALD_PUBLIC_URL = PUBLIC_URL;
  process.env.HERALD_LINK_SECRET = LINK_SECRET;
  return () => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}

/** Each notification's one EMAIL delivery id; throws unless each has exactly one, queued. */
function emailDeliveries(response: SendBatchResponse, expected: number): string[] {
  if (response.results.length !== expected) {
    throw new Error(`expected ${expected} results, got ${response.results.length}`);
  }
  return response.results.map((result) => {
    const [delivery, ...others] = result.deliveries;
    if (!delivery || others.length > 0 || delivery.channel !== Channel.EMAIL) {
      throw new Error(`expected one e-mail delivery, got ${result.deliveries.length}`);
    }
    if (delivery.status !== DeliveryStatus.QUEUED) {
      throw new Error(`e-mail delivery not queued: ${delivery.reason || delivery.status}`);
    }
    return delivery.deliveryId;
  });
}

interface Recorded {
  deliveries: number;
  sent: number;
}

/** E-mail deliveries in the database, and those held as sent, waiting (bounded) for the outcome writes. */
async function recordedSent(sql: Sql, expected: number): Promise<Recorded> {
  const until = performance.now() + RECORD_WAIT_MS;
  for (;;) {
    const [row] = await sql<{ deliveries: string; sent: string }[]>`
      select count(*) as deliveries, count(*) filter (where status = 'sent') as sent
      from deliveries where channel = 'email'`;
    const recorded = { deliveries: Number(row!.deliveries), sent: Number(row!.sent) };
    if (recorded.sent >= expected || performance.now() > until) return recorded;
    await sleep(100);
  }
}

export interface HeraldEmailResult {
  phase: EmailPhase;
  serverLog: readonly string[];
}

/** The child is stopped when the phase ends and, if interrupted, by `cleanup` (it has no IPC to notice). */
export async function heraldEmailPhase(
  setup: EmailSetup,
  label: string,
  cleanup: Cleanup,
): Promise<HeraldEmailResult> {
  const n = setup.notifications;
  const sql = postgres(setup.database.url, { max: 1, onnotice: () => {} });
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-email-bench-'));
  cleanup.add(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  try {
    await resetDatabase(sql, setup);
    const restore = heraldEnvironment(setup.concurrency, writeProvidersFile(dir, setup));
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
      setup.emulator.expect(n);
      const endCpu = startCpuWindow(
        { serverPid: server.pid, database: setup.database.name },
        setup.emulator.pid,
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
              userId: emailUser(i),
              recipient: { email: emailAddress(i) },
              type: EMAIL_TYPE,
              title: EMAIL_SUBJECT,
              body: EMAIL_BODY,
              channels: [Channel.EMAIL],
            }),
          );
          const startedAt = epochNow();
          try {
            const ids = emailDeliveries(await herald.sendBatch({ requests }), count);
            const sent = ids.map((id, j) => ({ key: messageId(id), destination: emailAddress(indexes[j]!) }));
            log.log(sent, startedAt, epochNow());
          } catch (error) {
            log.failed(error);
          }
        }
      }
      await Promise.all(Array.from({ length: setup.senders }, sender));
      const complete = await setup.emulator.waitComplete(Math.max(1, deadline - performance.now()));
      const cpu = endCpu();
      const arrivals = await setup.emulator.collect();
      const phase = log.summarize(label, n, 250, arrivals, cpu);
      if (!complete) phase.notes.unshift(`timed out after ${setup.timeoutMs / 1000} s`);
      const recorded = await recordedSent(sql, n);
      phase.recorded = recorded.sent;
      if (recorded.deliveries !== n)
        phase.notes.push(`the database holds ${recorded.deliveries} e-mail deliveries`);
      if (recorded.sent < n) phase.notes.push(`${n - recorded.sent} deliveries not recorded as sent`);
      return { phase: { ...phase, sessions: arrivals.sessions }, serverLog: [...server.logLines()] };
    } finally {
      await server.stop();
    }
  } finally {
    await sql.end({ timeout: 5 });
    rmSync(dir, { recursive: true, force: true });
  }
}
