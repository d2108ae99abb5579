// A Herald test server configured by a providers file, as production runs: the file and its secret files in
// a temporary directory, HERALD_PUBLIC_URL and HERALD_LINK_SECRET set (a real e-mail or SMS provider needs
// them), and a quick dispatcher poll. `stop()` stops the server and removes the directory.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Engine } from './engines.js';
import { startTestServer, type TestServer } from './server.js';

export const PUBLIC_URL = 'https://herald.example.com';
export const LINK_SECRET = 'a-link-secret-of-at-least-32-bytes!!';

/** Writes a secret file and answers its reference for the providers file ({"file": path}). */
export type SecretFile = (name: string, value: string) => { file: string };

export async function startWithProviders(
  engine: Engine,
  channels: (secret: SecretFile) => Record<string, unknown[]>,
  overrides: Record<string, string> = {},
): Promise<TestServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-providers-'));
  const secret: SecretFile = (name, value) => {
    writeFileSync(path.join(dir, name), value);
    return { file: path.join(dir, name) };
  };
  const file = path.join(dir, 'providers.json');
  writeFileSync(file, JSON.stringify({ channels: channels(secret) }));
  try {
    const server = await startTestServer(engine, {
      overrides: {
        HERALD_PROVIDERS_FILE: file,
        HERALD_PUBLIC_URL: PUBLIC_URL,
        HERALD_LINK_SECRET: LINK_SECRET,
        HERALD_DISPATCH_POLL_MS: '200',
        ...overrides,
      },
    });
    return {
      ...server,
      async stop() {
        await server.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
