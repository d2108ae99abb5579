// The `herald` command as an operator uses it: migrate, keys create/list/revoke, send, and what `serve`
// writes to its logs. Every command runs as a real child process.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHeraldClient } from '../../clients/node/index.js';
import { createPostgresDatabase } from '../support/engines.js';
import { JWT_SECRET, signUserToken } from '../support/server.js';
import {
  API_KEY_PATTERN,
  copyDataDir,
  killLeftovers,
  migratedTemplate,
  runCli,
  ServeProcess,
  tempDir,
} from './lifecycle-process.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function codeOf(call: Promise<unknown>): Promise<Code | 'ok'> {
  try {
    await call;
    return 'ok';
  } catch (error) {
    return ConnectError.from(error).code;
  }
}

/** The `keys list` line for the key with this prefix. */
function listLine(stdout: string, prefix: string): string | undefined {
  return stdout.split('\n').find((line) => line.split(/\s+/)[1] === prefix);
}

const dirs = tempDir('herald-cli-');
const template = migratedTemplate(dirs.path);

afterAll(() => {
  killLeftovers();
  dirs.remove();
});

describe('herald CLI on the embedded engine', () => {
  it('migrate prints "migrations applied", exits 0 and leaves no lock behind', async () => {
    const { dataDir, migrate } = await template();
    expect(migrate.code, migrate.stderr).toBe(0);
    expect(migrate.stdout).toBe('migrations applied\n');
    expect(existsSync(path.join(dataDir, 'PG_VERSION'))).toBe(true);
    expect(existsSync(`${dataDir}.lock`)).toBe(false);
  }, 60_000);

  it('keys create prints only the key; keys list shows its prefix and scopes, never the key; keys revoke by prefix', async () => {
    const env = { HERALD_DATA_DIR: copyDataDir((await template()).dataDir, dirs.path, 'keys') };

    const created = await runCli(['keys', 'create', '--name', 'ci', '--scope', 'send,read'], env);
    expect(created.code, created.stderr).toBe(0);
    const lines = created.stdout.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    const key = lines[0]!;
    expect(key).toMatch(API_KEY_PATTERN);
    const prefix = key.slice(0, 11);
    expect(created.stderr).toContain(`created key ${prefix}`);
    expect(created.stderr).not.toContain(key);

    const listed = await runCli(['keys', 'list'], env);
    expect(listed.code, listed.stderr).toBe(0);
    const line = listLine(listed.stdout, prefix);
    expect(line).toBeDefined();
    expect(line).toMatch(/\bsend,read\b/);
    expect(line).toMatch(/\bactive\b/);
    expect(line).toMatch(/\bci$/);
    expect(listed.stdout + listed.stderr).not.toContain(key.slice(11));

    const revoked = await runCli(['keys', 'revoke', prefix], env);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(new RegExp(`^revoked ${prefix} \\([0-9a-f-]{36}\\) "ci"$`, 'm'));

    const after = await runCli(['keys', 'list'], env);
    expect(after.code, after.stderr).toBe(0);
    expect(listLine(after.stdout, prefix)).toMatch(/\brevoked \d{4}-\d\d-\d\dT/);
    expect(after.stdout).not.toContain(key.slice(11));
  }, 60_000);

  it('keys create with an unknown scope exits 2, names the scope and prints no key', async () => {
    const env = { HERALD_DATA_DIR: copyDataDir((await template()).dataDir, dirs.path, 'bad-scope') };
    const result = await runCli(['keys', 'create', '--name', 'bad', '--scope', 'send,superuser'], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown scope "superuser"');
    expect(result.stdout).toBe('');
  }, 60_000);
});

describe('herald CLI argument errors', () => {
  // BUG (src/main.ts, keys()): the scope check runs inside withDatabase, after the database is opened and
  // migrated. With the database unreachable (or a PGlite directory held by a running server) an unknown
  // scope is reported as a connection error with exit code 1 instead of a usage error with exit code 2.
  it('keys create rejects an unknown scope before touching the database', async () => {
    const result = await runCli(['keys', 'create', '--name', 'bad', '--scope', 'superuser'], {
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/unreachable',
    });
    expect(result.stderr).toContain('unknown scope "superuser"');
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
  }, 30_000);
});

describe('herald send, and what herald serve logs (embedded engine)', () => {
  let server: ServeProcess;
  let adminKey: string;
  beforeAll(async () => {
    server = await ServeProcess.start({
      HERALD_DATA_DIR: copyDataDir((await template()).dataDir, dirs.path, 'serve'),
      HERALD_JWT_SECRET: JWT_SECRET,
      HERALD_LOG_LEVEL: 'trace',
      HERALD_SHUTDOWN_TIMEOUT_MS: '2000',
    });
    expect(server.bootstrapKey).toMatch(API_KEY_PATTERN);
    adminKey = server.bootstrapKey!;
  }, 90_000);
  afterAll(() => {
    server?.kill();
  });

  it('herald send prints the SendResponse as JSON', async () => {
    const args = ['send', '--user', 'alice', '--type', 'welcome', '--title', 'Hi', '--url', server.url];
    const result = await runCli([...args, '--api-key', adminKey], {});
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('"seq": "1"');
    const json = JSON.parse(result.stdout) as { notificationId?: unknown; seq?: unknown };
    expect(json.notificationId).toMatch(UUID);
    expect(json.seq).toBe('1');

    const { notification } = await createHeraldClient({
      baseUrl: server.url,
      apiKey: adminKey,
    }).getNotification({
      notificationId: String(json.notificationId),
    });
    expect(notification?.userId).toBe('alice');
    expect(notification?.title).toBe('Hi');
  });

  it('herald send without a key exits non-zero and names HERALD_API_KEY', async () => {
    const result = await runCli(
      ['send', '--user', 'alice', '--type', 'welcome', '--title', 'Hi', '--url', server.url],
      {},
    );
    expect(result.code, result.stdout).not.toBe(0);
    expect(result.stderr).toContain('HERALD_API_KEY');
    expect(result.stdout).toBe('');
  });

  // Stops the server: keep it last in this describe.
  it('never writes an API key, a user token or the JWT secret to its logs', async () => {
    const admin = createHeraldClient({ baseUrl: server.url, apiKey: adminKey });
    const sent = await admin.send({ userId: 'bob', type: 'welcome', title: 'secret-free' });
    const token = await signUserToken('bob');
    const asBob = createHeraldClient({ baseUrl: server.url, token });
    expect((await asBob.getNotification({ notificationId: sent.notificationId })).notification?.userId).toBe(
      'bob',
    );
    const forged = await signUserToken('bob', { secret: 'another-secret-that-is-at-least-32-bytes' });
    expect(
      await codeOf(
        createHeraldClient({ baseUrl: server.url, token: forged }).getPreferences({ userId: 'bob' }),
      ),
    ).toBe(Code.Unauthenticated);
    const unknownKey = `hk_${'Z'.repeat(43)}`;
    expect(
      await codeOf(
        createHeraldClient({ baseUrl: server.url, apiKey: unknownKey }).send({ userId: 'bob', type: 'x' }),
      ),
    ).toBe(Code.Unauthenticated);
    expect(await codeOf(admin.send({ userId: '', type: 'welcome' }))).toBe(Code.InvalidArgument);

    const exit = await server.stop('SIGTERM');
    expect(exit.code, server.stderr).toBe(0);
    const messages = server.logs().map((line) => line.msg);
    expect(messages).toContain('herald listening');
    expect(messages).toContain('stopped');
    for (const secret of [
      adminKey,
      adminKey.slice(11),
      JWT_SECRET,
      token,
      token.split('.')[2]!,
      forged,
      unknownKey,
    ]) {
      expect(server.stderr).not.toContain(secret);
    }
  });
});

describe.runIf(Boolean(process.env.TEST_DATABASE_URL))(
  'herald keys against PostgreSQL and a running server',
  () => {
    it('a key created by the CLI works until the CLI revokes it', async () => {
      const created = await createPostgresDatabase(process.env.TEST_DATABASE_URL!);
      const env = { DATABASE_URL: created.url };
      let server: ServeProcess | undefined;
      try {
        const made = await runCli(
          ['keys', 'create', '--name', 'ci', '--scope', 'send', '--scope', 'read'],
          env,
        );
        expect(made.code, made.stderr).toBe(0);
        const key = made.stdout.trim();
        expect(key).toMatch(API_KEY_PATTERN);
        const prefix = key.slice(0, 11);

        server = await ServeProcess.start({ ...env, HERALD_API_KEY_CACHE_TTL_MS: '0' });
        expect(server.engine).toBe('postgres');
        expect(server.bootstrapKey).toBeUndefined(); // a key exists already
        const c = createHeraldClient({ baseUrl: server.url, apiKey: key, defaultTimeoutMs: 10_000 });
        const sent = await c.send({ userId: 'carol', type: 'welcome', title: 'with a CLI key' });
        expect(sent.seq).toBe(1n);
        expect((await c.getNotification({ notificationId: sent.notificationId })).notification?.userId).toBe(
          'carol',
        );

        const revoked = await runCli(['keys', 'revoke', prefix], env);
        expect(revoked.code, revoked.stderr).toBe(0);
        expect(revoked.stdout).toContain(`revoked ${prefix}`);
        expect(await codeOf(c.send({ userId: 'carol', type: 'welcome', title: 'after revoke' }))).toBe(
          Code.Unauthenticated,
        );

        const listed = await runCli(['keys', 'list'], env);
        expect(listed.code, listed.stderr).toBe(0);
        expect(listLine(listed.stdout, prefix)).toMatch(/\bsend,read\b.*\brevoked \d{4}-/);
        expect((await server.stop('SIGTERM')).code).toBe(0);
      } finally {
        server?.kill();
        await created.drop();
      }
    }, 60_000);
  },
);
