// Herald's life as a process: restarts keep everything, the embedded data directory has one owner at a
// time, shutdown is graceful, a database outage is UNAVAILABLE and heals by itself, and the probes that
// orchestrators and Prometheus use (grpc.health.v1, /readyz, /metrics) say what is true.
import { existsSync, readFileSync } from 'node:fs';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createHeraldTransport,
  NotificationService,
  type NotificationServiceClient,
} from '../../clients/node/index.js';
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '../../gen/grpc/health/v1/health_pb.js';
import { createLogger } from '../../src/observability/logger.js';
import { startHerald } from '../../src/server/index.js';
import { createApiKey, type Database, openDatabase, type SqlParam } from '../../src/store/index.js';
import { createPostgresDatabase, pgliteEngine, type TestDatabase } from '../support/engines.js';
import { codeOf } from '../support/errors.js';
import { LogCapture, startTestServer, type TestServer, testConfig } from '../support/server.js';
import {
  API_KEY_PATTERN,
  copyDataDir,
  killLeftovers,
  migratedTemplate,
  runCli,
  ServeProcess,
  tempDir,
  until,
} from './lifecycle-process.js';
import { TcpProxy } from './lifecycle-proxy.js';

const SEND = 'herald.v1.NotificationService/Send';

/** The generated client, one attempt per call: what the server answers is what the test sees. */
function client(baseUrl: string, apiKey?: string): NotificationServiceClient {
  const transport = createHeraldTransport({
    baseUrl,
    ...(apiKey ? { apiKey } : {}),
    defaultTimeoutMs: 10_000,
  });
  return createClient(NotificationService, transport);
}

/** The error code of a plain HTTP request that cannot connect (ECONNREFUSED), or its status. */
async function httpOutcome(url: string): Promise<number | string> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    await response.arrayBuffer();
    return response.status;
  } catch (error) {
    const cause = error instanceof Error ? (error.cause as { code?: string } | undefined) : undefined;
    return cause?.code ?? String(error);
  }
}

const dirs = tempDir('herald-lifecycle-');
const template = migratedTemplate(dirs.path);

afterAll(() => {
  killLeftovers();
  dirs.remove();
});

describe('restart on the embedded engine', () => {
  it('keeps notifications, the bootstrap key and the per-user seq across a restart', async () => {
    // A data directory prepared by `herald migrate`: the database is empty, so this is a first start.
    const dataDir = copyDataDir((await template()).dataDir, dirs.path, 'restart');
    const config = testConfig({ HERALD_DATA_DIR: dataDir });

    const first = await startHerald({ config, logger: createLogger('info', new LogCapture()) });
    let adminKey: string;
    let sent: { id: string; seq: bigint }[];
    try {
      expect(first.database.engine).toBe('pglite');
      expect(first.bootstrapKey).toMatch(API_KEY_PATTERN);
      adminKey = first.bootstrapKey!;
      // The data directory is locked by this process while the server runs.
      expect(readFileSync(`${dataDir}.lock`, 'utf8').trim()).toBe(String(process.pid));
      const c = client(`http://127.0.0.1:${first.port}`, adminKey);
      sent = [];
      for (const title of ['first', 'second']) {
        const r = await c.send({ userId: 'restart-user', type: 'welcome', title });
        sent.push({ id: r.notificationId, seq: r.seq });
      }
      expect(sent.map((s) => s.seq)).toEqual([1n, 2n]);
    } finally {
      await first.close();
    }
    expect(existsSync(`${dataDir}.lock`)).toBe(false);

    const second = await startHerald({ config, logger: createLogger('info', new LogCapture()) });
    try {
      expect(second.bootstrapKey).toBeUndefined();
      const c = client(`http://127.0.0.1:${second.port}`, adminKey);
      for (const [i, s] of sent.entries()) {
        const { notification } = await c.getNotification({ notificationId: s.id });
        expect(notification?.userId).toBe('restart-user');
        expect(notification?.seq).toBe(s.seq);
        expect(notification?.title).toBe(i === 0 ? 'first' : 'second');
      }
      const third = await c.send({ userId: 'restart-user', type: 'welcome', title: 'third' });
      expect(third.seq).toBe(3n);
    } finally {
      await second.close();
    }
  }, 60_000);
});

describe('herald serve as a process (embedded engine)', () => {
  // One server child for both tests: the first checks it holds its directory, the second stops it.
  const deadlineMs = 1_000;
  let server: ServeProcess;
  let env: Record<string, string>;
  beforeAll(async () => {
    const dataDir = copyDataDir((await template()).dataDir, dirs.path, 'serve');
    env = { HERALD_DATA_DIR: dataDir, HERALD_SHUTDOWN_TIMEOUT_MS: String(deadlineMs) };
    server = await ServeProcess.start(env);
  }, 90_000);
  afterAll(() => {
    server?.kill();
  });

  it('refuses a second process on the data directory while the server holds it', async () => {
    expect(server.engine).toBe('pglite');
    const refused = await runCli(['keys', 'list'], env);
    expect(refused.code, refused.stdout).not.toBe(0);
    expect(refused.stderr).toContain(`in use by process ${server.pid}`);
    // The refused opener did not disturb the owner.
    expect(await httpOutcome(`${server.url}/readyz`)).toBe(200);
    expect(readFileSync(`${env.HERALD_DATA_DIR}.lock`, 'utf8').trim()).toBe(String(server.pid));
  }, 30_000);

  it('on SIGTERM drains an open stream until the deadline, exits 0, refuses connections and frees the directory', async () => {
    // Long-lived RPCs in flight: health Watch streams, on the main port and on the native gRPC port, run until
    // the server cancels them.
    const watch = async (baseUrl: string) => {
      const health = createClient(Health, createGrpcTransport({ baseUrl }));
      const stream = health.watch({ service: '' })[Symbol.asyncIterator]();
      const firstUpdate = await stream.next();
      expect(firstUpdate.done).toBe(false);
      expect(firstUpdate.value?.status).toBe(ServingStatus.SERVING);
      // Wrapped, so awaiting `watch` does not wait for the end of the stream too.
      return {
        end: (async () => {
          try {
            for (let r = await stream.next(); !r.done; r = await stream.next());
            return 'ended';
          } catch (error) {
            return Code[ConnectError.from(error).code];
          }
        })(),
      };
    };
    const rest = (await watch(server.url)).end;
    const nativeRest = (await watch(server.grpcUrl!)).end;

    const exit = await server.stop('SIGTERM');
    expect(exit.code, server.stderr).toBe(0);
    expect(exit.signal).toBeNull();
    // It waited for the in-flight stream, but not much longer than the deadline.
    expect(exit.ms).toBeGreaterThanOrEqual(deadlineMs - 100);
    expect(exit.ms).toBeLessThan(deadlineMs + 8_000);
    const messages = server.logs().map((line) => line.msg);
    expect(messages).toEqual(
      expect.arrayContaining([
        'signal received',
        'shutting down',
        'shutdown deadline passed; cancelling in-flight RPCs',
        'stopped',
      ]),
    );
    expect(server.logs().find((line) => line.msg === 'shutting down')?.inFlight).toBe(2);
    // The clients saw their streams finish rather than hang; the native port names the reason.
    expect(['ended', 'Canceled', 'Unavailable']).toContain(await rest);
    expect(await nativeRest).toBe('Unavailable');
    expect(await httpOutcome(`${server.url}/healthz`)).toBe('ECONNREFUSED');

    // The directory is free again: the command refused above now works.
    expect(existsSync(`${env.HERALD_DATA_DIR}.lock`)).toBe(false);
    const allowed = await runCli(['keys', 'list'], env);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(allowed.stdout).toContain('bootstrap-admin');
  }, 30_000);
});

describe('the data-directory lock within one process', () => {
  // BUG (src/store/data-dir-lock.ts): lockDataDir treats a lock file holding its own PID as stale and takes
  // it over, and each release removes the file unconditionally. So a second openDatabase on a directory this
  // process already serves succeeds (two PGlite instances on one directory), and closing that second handle
  // deletes the lock while the server still runs, letting another process open the directory as well.
  it('refuses a second opener in the process that holds the directory, and keeps the lock for the owner', async () => {
    const dataDir = copyDataDir((await template()).dataDir, dirs.path, 'reentrant');
    const herald = await startHerald({
      config: testConfig({ HERALD_DATA_DIR: dataDir }),
      logger: createLogger('info', new LogCapture()),
    });
    let second: Database | undefined;
    try {
      const outcome = await openDatabase({ dataDir }).then(
        (db) => {
          second = db;
          return 'opened a second time';
        },
        (error: unknown) => String(error),
      );
      expect.soft(outcome).toContain(`in use by process ${process.pid}`);
      await second?.close();
      second = undefined;

      // Whatever happened above, the running server still owns the directory.
      expect.soft(existsSync(`${dataDir}.lock`)).toBe(true);
      const other = await runCli(['keys', 'list'], { HERALD_DATA_DIR: dataDir });
      expect(other.code, other.stdout).not.toBe(0);
      expect(other.stderr).toContain(`in use by process ${process.pid}`);
    } finally {
      await second?.close();
      await herald.close();
    }
  }, 60_000);
});

describe('a crash (SIGKILL)', () => {
  it('loses no acknowledged Send, and its stale lock does not block the next start', async () => {
    const env = { HERALD_DATA_DIR: copyDataDir((await template()).dataDir, dirs.path, 'crash') };
    const crashed = await ServeProcess.start(env);
    let adminKey: string;
    const sent: { id: string; seq: bigint }[] = [];
    try {
      adminKey = crashed.bootstrapKey!;
      expect(adminKey).toMatch(API_KEY_PATTERN);
      const c = client(crashed.url, adminKey);
      for (const title of ['one', 'two', 'three']) {
        const r = await c.send({ userId: 'crash', type: 'welcome', title });
        sent.push({ id: r.notificationId, seq: r.seq });
      }
      // Killed right after the last acknowledgement: no chance to flush or clean up.
      expect((await crashed.stop('SIGKILL')).signal).toBe('SIGKILL');
    } finally {
      crashed.kill();
    }
    expect(readFileSync(`${env.HERALD_DATA_DIR}.lock`, 'utf8').trim()).toBe(String(crashed.pid));

    // Restarted in this process (a different PID): the dead owner's lock is taken over.
    const restarted = await startHerald({
      config: testConfig(env),
      logger: createLogger('info', new LogCapture()),
    });
    try {
      expect(restarted.bootstrapKey).toBeUndefined();
      const c = client(`http://127.0.0.1:${restarted.port}`, adminKey);
      for (const s of sent) {
        expect((await c.getNotification({ notificationId: s.id })).notification?.seq).toBe(s.seq);
      }
      expect((await c.send({ userId: 'crash', type: 'welcome', title: 'four' })).seq).toBe(4n);
      expect(readFileSync(`${env.HERALD_DATA_DIR}.lock`, 'utf8').trim()).toBe(String(process.pid));
    } finally {
      await restarted.close();
    }
  }, 60_000);
});

/** Holds every database transaction at a gate while armed, so RPCs can be caught mid-flight. */
function gatedDatabase(inner: Database) {
  let gate: Promise<void> | undefined;
  let open: () => void = () => {};
  let held = 0;
  // Send writes through the plain-SQL runner; hold those statements at the gate while it is armed.
  const query = async <Row extends Record<string, unknown>>(text: string, params: readonly SqlParam[]) => {
    const waitFor = gate;
    if (waitFor) {
      held++;
      await waitFor;
    }
    return inner.sql.query<Row>(text, params);
  };
  const database: Database = { ...inner, sql: { ...inner.sql, query } };
  return {
    database,
    arm() {
      gate = new Promise((resolve) => {
        open = resolve;
      });
    },
    release() {
      gate = undefined;
      open();
    },
    held: () => held,
  };
}

describe.runIf(Boolean(process.env.TEST_DATABASE_URL))('database outage (PostgreSQL)', () => {
  it('answers UNAVAILABLE and /readyz 503 while PostgreSQL is unreachable, and recovers by itself', async () => {
    const serverUrl = new URL(process.env.TEST_DATABASE_URL!);
    const created = await createPostgresDatabase(serverUrl.toString());
    const target = new URL(created.url);
    const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
    await proxy.start();
    const viaProxy = new URL(created.url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    const logs = new LogCapture();
    const herald = await startHerald({
      config: testConfig({ DATABASE_URL: viaProxy.toString(), HERALD_DB_POOL_MAX: '4' }),
      logger: createLogger('info', logs),
    });
    try {
      const url = `http://127.0.0.1:${herald.port}`;
      const c = client(url, herald.bootstrapKey);
      const health = createClient(Health, createGrpcTransport({ baseUrl: url }));
      const send = (title: string) =>
        c.send({ userId: 'outage', type: 'welcome', title }, { timeoutMs: 10_000 });

      const before = await send('before');
      expect(before.seq).toBe(1n);
      expect(await httpOutcome(`${url}/readyz`)).toBe(200);
      // A valid key the server has never seen (so not cached): checking it needs the database.
      const direct = await openDatabase({ url: created.url, dataDir: '' });
      const unseenKey = (await createApiKey(direct.db, 'unseen', ['read'])).key;
      await direct.close();
      const getBefore = () =>
        client(url, unseenKey).getNotification(
          { notificationId: before.notificationId },
          { timeoutMs: 10_000 },
        );

      await proxy.stop();
      const started = Date.now();
      expect(await codeOf(send('during'))).toBe(Code.Unavailable);
      // Not "unknown or revoked": a key that cannot be checked is not a bad key.
      expect(await codeOf(getBefore())).toBe(Code.Unavailable);
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(await httpOutcome(`${url}/readyz`)).toBe(503);
      expect((await health.check({ service: '' })).status).toBe(ServingStatus.NOT_SERVING);
      expect(await httpOutcome(`${url}/healthz`)).toBe(200); // alive, just not ready
      expect(logs.text()).toContain('database unavailable');

      await proxy.start();
      const recovered = await until('Send succeeds again', 15_000, async () => {
        try {
          return await send('after');
        } catch (error) {
          expect(ConnectError.from(error).code).toBe(Code.Unavailable);
          return undefined;
        }
      });
      expect(recovered.seq).toBe(2n); // the failed Send wrote nothing
      expect((await getBefore()).notification?.title).toBe('before');
      expect(await httpOutcome(`${url}/readyz`)).toBe(200);
      expect((await health.check({ service: '' })).status).toBe(ServingStatus.SERVING);
    } finally {
      await herald.close();
      await proxy.stop();
      await created.drop();
    }
  }, 60_000);
});

describe('in-process server on an in-memory database', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    // A copy of the migrated template opens in a fraction of the time a fresh cluster takes.
    const database = await openDatabase({
      dataDir: copyDataDir((await template()).dataDir, dirs.path, 'shared'),
    });
    db = { database, url: undefined, destroy: () => database.close() };
  });
  afterAll(async () => {
    await db?.destroy();
  });

  // gRPC runs over HTTP/2 (to the native gRPC port, and to the main port); Connect here over HTTP/1.1
  // keep-alive connections, one per concurrent call.
  it.each(['grpc', 'grpc-main-port', 'connect'] as const)(
    'lets every %s Send that reached the server finish, then refuses new connections',
    async (protocol) => {
      const userId = `drain-${protocol}`;
      const gated = gatedDatabase(db.database);
      const server = await startTestServer(pgliteEngine, {
        db: { ...db, database: gated.database },
        // Generous, so a slow machine cannot turn draining into cancelling.
        // One statement slot per Send, so every one of them is held at the gate (no group commit here).
        overrides: { HERALD_SHUTDOWN_TIMEOUT_MS: '15000', HERALD_SEND_MAX_STATEMENTS: '8' },
      });
      try {
        const c = server.admin(protocol);
        await c.send({ userId, type: 'welcome', title: 'warm-up' });

        gated.arm();
        const sends = Array.from({ length: 8 }, (_, i) =>
          c.send({ userId, type: 'welcome', title: `in flight ${i}` }, { timeoutMs: 10_000 }),
        );
        await until('all Sends reached the database', 5_000, async () =>
          gated.held() === 8 ? true : undefined,
        );

        let closed = false;
        const closing = server.herald.close().then(() => {
          closed = true;
        });
        await new Promise((resolve) => setTimeout(resolve, 200));
        expect(closed).toBe(false); // still draining
        gated.release();

        const results = await Promise.allSettled(sends);
        expect(results.map((r) => r.status)).toEqual(Array(8).fill('fulfilled'));
        const seqs = results.flatMap((r) => (r.status === 'fulfilled' ? [Number(r.value.seq)] : []));
        expect(seqs.sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
        await closing;
        expect(closed).toBe(true);

        expect(
          await codeOf(client(server.url, server.adminKey).send({ userId, type: 'welcome', title: 'late' })),
        ).toBe(Code.Unavailable);
        expect(
          await codeOf(
            client(server.grpcUrl, server.adminKey).send({ userId, type: 'welcome', title: 'late' }),
          ),
        ).toBe(Code.Unavailable);
        expect(await httpOutcome(`${server.url}/healthz`)).toBe('ECONNREFUSED');

        // Nothing acknowledged was lost: a new server on the same database finds every one.
        const again = await startHerald({
          config: testConfig(),
          logger: createLogger('info', new LogCapture()),
          database: db.database,
        });
        try {
          const c2 = client(`http://127.0.0.1:${again.port}`, server.adminKey);
          for (const r of results) {
            if (r.status !== 'fulfilled') continue;
            const { notification } = await c2.getNotification({ notificationId: r.value.notificationId });
            expect(notification?.title).toMatch(/^in flight \d$/);
          }
        } finally {
          await again.close();
        }
      } finally {
        gated.release();
        await server.herald.close();
      }
    },
    30_000,
  );

  describe('probes', () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer(pgliteEngine, { db });
    });
    afterAll(async () => {
      await server?.stop();
    });

    it('grpc.health.v1.Health/Check answers SERVING without credentials and NOT_FOUND for unknown services', async () => {
      const health = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
      expect((await health.check({ service: '' })).status).toBe(ServingStatus.SERVING);
      expect((await health.check({ service: 'herald.v1.NotificationService' })).status).toBe(
        ServingStatus.SERVING,
      );
      expect(await codeOf(health.check({ service: 'no.such.Service' }))).toBe(Code.NotFound);
      expect(await httpOutcome(`${server.url}/healthz`)).toBe(200);
      expect(await httpOutcome(`${server.url}/readyz`)).toBe(200);
    });

    it('/metrics counts RPCs by method and code, with latency buckets and process metrics', async () => {
      await server.admin().send({ userId: 'metrics', type: 'welcome', title: 'counted' });
      const unknownKey = `hk_${'A'.repeat(43)}`;
      expect(
        await codeOf(
          client(server.url, unknownKey).send({ userId: 'metrics', type: 'welcome', title: 'no' }),
        ),
      ).toBe(Code.Unauthenticated);
      expect(await codeOf(client(server.url).send({ userId: 'metrics', type: 'welcome', title: 'no' }))).toBe(
        Code.Unauthenticated,
      );

      const response = await fetch(`${server.url}/metrics`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
      const text = await response.text();
      expect(text).toMatch(new RegExp(`^herald_rpc_requests_total\\{method="${SEND}",code="ok"\\} 1$`, 'm'));
      expect(text).toMatch(
        new RegExp(`^herald_rpc_requests_total\\{method="${SEND}",code="unauthenticated"\\} 2$`, 'm'),
      );
      expect(text).toMatch(
        /^herald_rpc_duration_seconds_bucket\{le="[^"]+",method="herald\.v1\.NotificationService\/Send",code="ok"\} 1$/m,
      );
      expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
    });
  });
});
