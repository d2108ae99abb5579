// The providers file as an operator uses it, with real child processes on the embedded engine:
// - `herald providers check FILE` validates without starting (exit 0, or 2 with every problem by its path);
// - `herald serve` refuses to start on a bad file, naming the problems;
// - a channel the file does not list is SKIPPED `not_configured` at planning;
// - SIGHUP reloads a good file (new providers for new attempts, a newly listed channel delivered) and refuses
//   a bad one, keeping the providers it had and logging the problems;
// - `herald outbox` prints what the outbox captured.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel, createHeraldClient, DeliveryStatus, type HeraldClient } from '../../clients/node/index.js';
import { JWT_SECRET } from '../support/server.js';
import {
  copyDataDir,
  killLeftovers,
  migratedTemplate,
  runCli,
  ServeProcess,
  startCli,
  tempDir,
  until,
} from './lifecycle-process.js';

const dirs = tempDir('herald-providers-');
const template = migratedTemplate(dirs.path);

afterAll(() => {
  killLeftovers();
  dirs.remove();
});

function writeProviders(name: string, channels: Record<string, unknown>): string {
  const file = path.join(dirs.path, name);
  writeFileSync(file, JSON.stringify({ channels }));
  return file;
}

describe('herald providers check', () => {
  it('passes a good file and lists its providers', async () => {
    const file = writeProviders('good.json', {
      email: [
        { type: 'outbox', name: 'mail-a', timeout_ms: 2000, rate_limit: { per_second: 10, burst: 10 } },
      ],
      webhook: [{ type: 'webhook' }],
    });
    const result = await runCli(['providers', 'check', file], {});
    expect([result.code, result.stdout]).toEqual([
      0,
      `${file}: ok\n  email[0]: mail-a (outbox)\n  webhook[0]: webhook (webhook)\n`,
    ]);
  });

  it('refuses a bad file with exit 2, naming every problem by its path', async () => {
    const file = writeProviders('bad.json', {
      email: [{ type: 'smtp-that-does-not-exist' }],
      sms: [{ type: 'outbox', timeout_ms: 5 }],
      in_app: [],
    });
    const result = await runCli(['providers', 'check', file], {});
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('channels.in_app: in-app notifications are delivered by Herald itself');
    expect(result.stderr).toContain('channels.email[0].type:');
    expect(result.stderr).toContain('channels.sms[0].timeout_ms: must be 100..120000');
  });

  it('builds every adapter too: a key that does not parse is refused without starting', async () => {
    const keyFile = path.join(dirs.path, 'not-a-key.json');
    writeFileSync(keyFile, 'this is not JSON\n');
    const file = writeProviders('bad-key.json', {
      push: [{ type: 'fcm', settings: { projects: [{ service_account: { file: keyFile } }] } }],
    });
    const result = await runCli(['providers', 'check', file], {});
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      'channels.push[0].settings.projects[0].service_account: must be a service account key (JSON with project_id, client_email and private_key)',
    );
    expect(result.stderr).not.toContain('this is not JSON');
  });
});

describe('herald serve with a providers file', () => {
  let server: ServeProcess;
  let client: HeraldClient;
  let file: string;
  beforeAll(async () => {
    file = writeProviders('serve.json', { email: [{ type: 'outbox', name: 'mail-a' }] });
    server = await ServeProcess.start({
      HERALD_DATA_DIR: copyDataDir((await template()).dataDir, dirs.path, 'serve'),
      HERALD_JWT_SECRET: JWT_SECRET,
      HERALD_PROVIDERS_FILE: file,
      HERALD_DISPATCH_POLL_MS: '200',
      HERALD_SHUTDOWN_TIMEOUT_MS: '2000',
    });
    client = createHeraldClient({ baseUrl: server.url, apiKey: server.bootstrapKey! });
  }, 90_000);
  afterAll(() => {
    server?.kill();
  });

  async function send(channel: Channel, title: string) {
    const sent = await client.send({
      userId: 'ops',
      type: 'ops.check',
      title,
      recipient: { email: 'ops@example.com', phone: '+4915112345678' },
      channels: [channel],
    });
    return until(`${title} final`, 5_000, async () => {
      const { notification } = await client.getNotification({ notificationId: sent.notificationId });
      const d = notification!.deliveries[0]!;
      return d.status === DeliveryStatus.QUEUED || d.status === DeliveryStatus.SENDING ? undefined : d;
    });
  }

  const logged = (msg: string, from: number) =>
    until(`"${msg}" logged`, 5_000, () =>
      server
        .logs()
        .slice(from)
        .some((l) => l.msg === msg)
        ? true
        : undefined,
    );

  it('refuses to start on a bad file, naming the problem', async () => {
    const bad = writeProviders('bad-serve.json', { push: [{ type: 'outbox', name: 'Not A Name' }] });
    const refused = await ServeProcess.start({
      HERALD_DATA_DIR: copyDataDir((await template()).dataDir, dirs.path, 'refused'),
      HERALD_PROVIDERS_FILE: bad,
    }).then(
      () => 'started',
      (error: Error) => error.message,
    );
    expect(refused).toContain('"code":2');
    expect(refused).toContain('channels.push[0].name:');
  }, 60_000);

  it('delivers what the file lists and skips what it does not (not_configured)', async () => {
    const email = await send(Channel.EMAIL, 'first');
    expect([email.status, email.provider]).toEqual([DeliveryStatus.SENT, 'mail-a']);
    const sms = await send(Channel.SMS, 'unlisted');
    expect([sms.status, sms.reason, sms.attemptCount]).toEqual([
      DeliveryStatus.SKIPPED,
      'not_configured: no provider is configured for sms',
      0,
    ]);
  });

  it('reloads a good file on SIGHUP and refuses a bad one, keeping the providers it had', async () => {
    writeProviders('serve.json', {
      email: [{ type: 'outbox', name: 'mail-b' }],
      sms: [{ type: 'outbox', name: 'texts' }],
    });
    let from = server.logs().length;
    server.child.kill('SIGHUP');
    await logged('providers reloaded', from);
    const email = await send(Channel.EMAIL, 'after reload');
    expect([email.status, email.provider]).toEqual([DeliveryStatus.SENT, 'mail-b']);
    const sms = await send(Channel.SMS, 'now listed');
    expect([sms.status, sms.provider]).toEqual([DeliveryStatus.SENT, 'texts']);

    writeFileSync(file, '{"channels": {"email": [{"type": "outbox", "retry": {"attempts": 0}}]}}');
    from = server.logs().length;
    server.child.kill('SIGHUP');
    await logged('providers file refused on reload; the current providers stay', from);
    const problems = server
      .logs()
      .slice(from)
      .find((l) => Array.isArray(l.problems))?.problems;
    expect(problems).toEqual(['channels.email[0].retry.attempts: must be 1..100']);
    const still = await send(Channel.EMAIL, 'after a bad reload');
    expect([still.status, still.provider]).toEqual([DeliveryStatus.SENT, 'mail-b']);
  });

  it('herald outbox prints the captured messages', async () => {
    const result = await runCli(
      [
        'outbox',
        '--channel',
        'email',
        '--limit',
        '2',
        '--url',
        server.url,
        '--api-key',
        server.bootstrapKey!,
      ],
      {},
    );
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(
      / {2}email {2}mail-b {2}ops@example\.com {2}\(notification [0-9a-f-]{36}\)\n/,
    );
    expect(result.stdout).toContain('"subject": "after a bad reload"');
  });

  it('herald outbox --follow prints new messages as they arrive, and ends on SIGINT', async () => {
    const args = ['outbox', '--follow', '--channel', 'email', '--limit', '1', '--url', server.url];
    const follow = startCli([...args, '--api-key', server.bootstrapKey!], {});
    try {
      await until('the newest message printed', 20_000, () =>
        follow.output.stdout.includes('"subject": "after a bad reload"') ? true : undefined,
      );
      await send(Channel.EMAIL, 'followed');
      await until('the new message printed', 10_000, () =>
        follow.output.stdout.includes('"subject": "followed"') ? true : undefined,
      );
    } finally {
      const exit = await follow.stop('SIGINT');
      expect([exit.code, follow.output.stderr]).toEqual([0, '']);
    }
  });
});
