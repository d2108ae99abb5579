// The client packages as their users get them: `npm pack` in clients/node and clients/web (which builds them),
// both tarballs installed into a scratch project outside the repository (their dependencies from the registry),
// then a plain `node` script there that imports them by package name, sends and streams against a live Herald,
// and a TypeScript file there type-checked against the packages' .d.ts. Needs the npm registry (or npm's cache):
// it never skips.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgliteEngine } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const STEP_TIMEOUT_MS = 120_000;

/** The environment without what npm or vitest set for this process, so the children start clean. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !/^(npm_|vitest|node_options$)/i.test(key)),
  );
  return { ...env, ...extra };
}

interface Packed {
  filename: string;
  files: { path: string }[];
}

async function pack(dir: string, destination: string): Promise<Packed> {
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', destination], {
    cwd: path.join(root, dir),
    env: cleanEnv(),
    timeout: STEP_TIMEOUT_MS,
  });
  // npm prints the prepack build's output before the JSON
  const [packed] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Packed[];
  if (!packed) throw new Error(`npm pack in ${dir} printed no package`);
  return packed;
}

const SCRIPT = `
import { Channel, Code, ConnectError, createHeraldClient } from '@herald-notify/client';
import * as web from '@herald-notify/web';

const { HERALD_URL: baseUrl, HERALD_API_KEY: apiKey } = process.env;
const herald = createHeraldClient({ baseUrl, apiKey });
const sent = await herald.send({ userId: 'pkg-user', type: 'package.check', title: 'From the package',
  channels: [Channel.IN_APP] });
let streamed;
for await (const event of herald.streamNotifications({ userId: 'pkg-user' })) {
  if (event.event.case === 'notification') { streamed = event.event.value; break; }
}
let error;
try { await herald.getNotification({ notificationId: 'not-a-uuid' }); } catch (e) {
  error = { isConnectError: e instanceof ConnectError, code: Code[e.code] };
}
const browser = web.createHeraldWebClient({ baseUrl, token: apiKey, userId: 'pkg-user' });
console.log(JSON.stringify({
  sent: { notificationId: sent.notificationId, seq: String(sent.seq), idempotentReplay: sent.idempotentReplay },
  streamed: { id: streamed.id, title: streamed.title, createdAtIsDate: streamed.createdAt instanceof Date },
  error,
  web: { exports: Object.keys(web).sort(), unreadCount: await browser.unreadCount() },
}));
`;

const TYPED_USE = `
import { Channel, createHeraldClient, type HeraldClient } from '@herald-notify/client';
import { createHeraldWebClient, type HeraldEvent } from '@herald-notify/web';

const herald: HeraldClient = createHeraldClient({ baseUrl: 'http://localhost:8080', apiKey: 'hk_example' });

export async function later(): Promise<Date | undefined> {
  const { notificationId } = await herald.send({ userId: 'u1', type: 't', sendAt: new Date(), channels: [Channel.IN_APP] });
  return (await herald.getNotification({ notificationId })).notification?.createdAt;
}

export function describeEvent(event: HeraldEvent): string {
  switch (event.type) {
    case 'notification':
      return event.notification.title ?? '';
    case 'unread_count':
      return event.unread_count.count ?? '0';
    default:
      return event.type;
  }
}

export const browser = createHeraldWebClient({ baseUrl: 'https://herald.example.com', token: 'jwt' });
`;

describe('client packages, packed and installed', () => {
  let scratch: string;
  let project: string;
  let server: TestServer;
  const packed: Partial<Record<'node' | 'web', Packed>> = {};
  const took: Record<string, number> = {};

  beforeAll(async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'herald-packages-'));
    project = path.join(scratch, 'project');
    await mkdir(project);
    let started = Date.now();
    const [node, web] = [await pack('clients/node', scratch), await pack('clients/web', scratch)];
    packed.node = node;
    packed.web = web;
    took.packMs = Date.now() - started;
    await writeFile(
      path.join(project, 'package.json'),
      JSON.stringify({ name: 'herald-packages-check', private: true, type: 'module' }),
    );
    started = Date.now();
    await run(
      'npm',
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        path.join(scratch, node.filename),
        path.join(scratch, web.filename),
      ],
      { cwd: project, env: cleanEnv(), timeout: STEP_TIMEOUT_MS },
    );
    took.installMs = Date.now() - started;
    server = await startTestServer(pgliteEngine);
  }, 4 * STEP_TIMEOUT_MS);

  afterAll(async () => {
    process.stdout.write(`client packages: pack ${took.packMs} ms, npm install ${took.installMs} ms\n`);
    await server?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('ship their built ESM with .d.ts and generated code, and no sources', () => {
    for (const tarball of [packed.node, packed.web]) {
      const names = tarball?.files.map((f) => f.path) ?? [];
      expect(names).toContain('package.json');
      expect(names).toContain('dist/index.js');
      expect(names).toContain('dist/index.d.ts');
      expect(names).toContain('dist/gen/herald/v1/notification_service_pb.js');
      expect(
        names.filter((name) => !name.startsWith('dist/') && name !== 'package.json' && name !== 'README.md'),
      ).toEqual([]);
      expect(names.filter((name) => name.endsWith('.ts') && !name.endsWith('.d.ts'))).toEqual([]);
    }
  });

  it('send and stream from a plain node script that imports them by name', async () => {
    await writeFile(path.join(project, 'check.mjs'), SCRIPT);
    const { stdout } = await run(process.execPath, ['check.mjs'], {
      cwd: project,
      env: cleanEnv({ HERALD_URL: server.url, HERALD_API_KEY: server.adminKey }),
      timeout: 30_000,
    });
    const result = JSON.parse(stdout);
    expect(result.sent.idempotentReplay).toBe(false);
    expect(result.streamed).toEqual({
      id: result.sent.notificationId,
      title: 'From the package',
      createdAtIsDate: true,
    });
    expect(result.error).toEqual({ isConnectError: true, code: 'InvalidArgument' });
    expect(result.web.exports).toEqual(['createHeraldWebClient']);
    expect(result.web.unreadCount).toBe(1);
  });

  it('type-check in a TypeScript project that uses them', async () => {
    await writeFile(path.join(project, 'use.ts'), TYPED_USE);
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const flags = ['--noEmit', '--strict', '--skipLibCheck', '--target', 'es2022', '--module', 'nodenext'];
    const result = await run(process.execPath, [tsc, ...flags, 'use.ts'], {
      cwd: project,
      env: cleanEnv(),
      timeout: 60_000,
    }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? String(error), failed: true }));
    expect(result.stdout).toBe('');
  });
});
