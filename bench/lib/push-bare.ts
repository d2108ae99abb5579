// The baseline: APNs requests made straight from this process with node:http2, exactly as @parse/node-apn
// makes them (one HTTP/2 session, the same pseudo-headers and apns-* headers, a provider JWT signed once and
// reused, the body written then the stream ended), `concurrency` requests in flight; no database, no queue.
// Send time = when the request started; arrival = when the emulator recorded it.
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import { importPKCS8, SignJWT } from 'jose';
import type { BenchDatabase } from './bench-database.js';
import { epochNow } from './dispatch-child.js';
import { startCpuWindow } from './dispatch-measure.js';
import type { PushEmulators } from './push-emulators.js';
import { MAX_FAILURES, type PushPhase, PushSendLog } from './push-measure.js';
import { APNS_EXPIRY_S, APP_ID, apnsBody, apnsToken, KEY_ID, PUSH_TYPE, TEAM_ID } from './push-workload.js';

// node-apn's default request timeout.
const REQUEST_TIMEOUT_MS = 5_000;
const CONNECT_TIMEOUT_MS = 10_000;

/** What every push phase shares: the amount of work, the concurrency, the services, the database. */
export interface PushSetup {
  notifications: number;
  /** Requests in flight at most (Herald: HERALD_DISPATCH_CONCURRENCY). */
  concurrency: number;
  /** Notifications per SendBatch call. */
  batchSize: number;
  /** SendBatch calls in flight while handing over. */
  senders: number;
  /** Each phase gives up this long after its first send. */
  timeoutMs: number;
  emulators: PushEmulators;
  database: BenchDatabase;
  /** The .p8 key (PKCS#8 PEM) the APNs emulator trusts for KEY_ID / TEAM_ID. */
  apnsPrivateKeyPem: string;
  /** Directory for a V8 CPU profile of each Herald child, or undefined. */
  cpuProfDir: string | undefined;
}

/** The provider JWT node-apn sends: ES256, kid = key id, iss = team id, iat = now; signed once, reused. */
export async function providerToken(privateKeyPem: string): Promise<string> {
  const key = await importPKCS8(privateKeyPem, 'ES256');
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: KEY_ID })
    .setIssuer(TEAM_ID)
    .setIssuedAt()
    .sign(key);
}

async function connect(port: number, ca: string): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca });
  // A session error also fails the streams on it; those are counted there.
  session.on('error', () => {});
  const timer = setTimeout(() => session.destroy(new Error('APNs connect timed out')), CONNECT_TIMEOUT_MS);
  try {
    await once(session, 'connect');
  } finally {
    clearTimeout(timer);
  }
  return session;
}

/** One APNs POST as node-apn's Client.request makes it; resolves to the :status. */
function post(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body: string,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = session.request(headers);
    request.setEncoding('utf8');
    let status = 0;
    let response = '';
    request.on('response', (h) => {
      status = Number(h[http2.constants.HTTP2_HEADER_STATUS]);
    });
    request.on('data', (chunk: string) => {
      response += chunk;
    });
    request.on('end', () => {
      if (status === 200) resolve(status);
      else reject(new Error(`APNs answered ${status} ${response}`.trim()));
    });
    request.on('error', reject);
    request.setTimeout(REQUEST_TIMEOUT_MS, () => {
      request.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error('APNs request timed out'));
    });
    request.write(body);
    request.end();
  });
}

/** `notifications` requests to devices 0..n-1, each with a fresh apns-id, `concurrency` at a time. */
export async function bareHttp2Phase(setup: PushSetup, label: string): Promise<PushPhase> {
  const { emulators } = setup;
  const session = await connect(emulators.apnsPort, readFileSync(emulators.apnsCaFile, 'utf8'));
  try {
    const authorization = `bearer ${await providerToken(setup.apnsPrivateKeyPem)}`;
    const log = new PushSendLog();
    emulators.expect('apns', setup.notifications);
    const endCpu = startCpuWindow({ database: setup.database.name }, emulators.pid);
    const deadline = performance.now() + setup.timeoutMs;
    let next = 0;
    async function worker(): Promise<void> {
      while (next < setup.notifications && performance.now() < deadline && log.failureCount < MAX_FAILURES) {
        const index = next++;
        const token = apnsToken(index);
        const apnsId = randomUUID();
        const startedAt = epochNow();
        // Built per request, as node-apn compiles each Notification.
        const headers: http2.OutgoingHttpHeaders = {
          ':scheme': 'https',
          ':method': 'POST',
          ':authority': '127.0.0.1',
          ':path': `/3/device/${token}`,
          'apns-priority': 10,
          'apns-id': apnsId,
          'apns-collapse-id': PUSH_TYPE,
          'apns-expiration': Math.floor(Date.now() / 1000) + APNS_EXPIRY_S,
          'apns-topic': APP_ID,
          'apns-push-type': 'alert',
          authorization,
        };
        try {
          await post(session, headers, apnsBody(randomUUID(), index + 1, index));
          log.log([{ key: apnsId, destination: token }], startedAt, epochNow());
        } catch (error) {
          log.failed(error);
        }
      }
    }
    await Promise.all(Array.from({ length: setup.concurrency }, worker));
    const complete = await emulators.waitComplete(Math.max(1, deadline - performance.now()));
    const cpu = endCpu();
    const phase = log.summarize(label, setup.notifications, 200, await emulators.collect(), cpu);
    if (!complete) phase.notes.unshift(`timed out after ${setup.timeoutMs / 1000} s`);
    return phase;
  } finally {
    session.destroy();
  }
}
