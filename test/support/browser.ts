// Headless Chromium for browser tests: the Debian package driven by playwright-core (never a downloaded
// browser). HERALD_CHROMIUM overrides the path. And what the pages those tests open need: a script bundled for
// the browser, served with its page from a server of their own (another origin than Herald's).
import { existsSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const chromiumPath = process.env.HERALD_CHROMIUM ?? '/usr/bin/chromium';
export const chromiumAvailable = existsSync(chromiumPath);

export const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const root = fileURLToPath(new URL('../..', import.meta.url));

/** A page's TypeScript, bundled for the browser (imports resolve from the repository's root). */
export async function bundlePageScript(contents: string, sourcefile: string): Promise<string> {
  const result = await build({
    stdin: { contents, loader: 'ts', resolveDir: root, sourcefile },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  return result.outputFiles[0]!.text;
}

/** A web app's server on its own port (its own origin): `/app.js` is the script, any other path the page. */
export async function startPageServer(
  page: string,
  script: string,
): Promise<{ origin: string; close(): Promise<void> }> {
  const app = http.createServer((req, res) => {
    const js = req.url === '/app.js';
    res.writeHead(200, { 'content-type': js ? 'text/javascript' : 'text/html; charset=utf-8' });
    res.end(js ? script : page);
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const { port } = app.address() as net.AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => app.close(() => resolve())),
  };
}
