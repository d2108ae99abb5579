// The operator console (`GET /console`): static files from ./console (the page, its ES modules and its
// stylesheet) and uPlot's browser build from the `uplot` package, all read once when the server starts. The
// page signs in with an admin API key that it keeps in sessionStorage and sends only as the Authorization
// header of its own RPCs (POST /herald.v1.<Service>/<Method>, Connect with JSON), never in a URL.
//
// Under tsx the files are read from src/server/console; `npm run build` copies that folder next to the
// compiled module (dist/src/server/console), so both read the folder beside this file.
//
// The policy is strict: scripts and stylesheets from this origin only, no inline script or <style>, no
// style attributes in markup (uPlot positions its elements through element.style, the CSSOM, which
// style-src does not govern), no frames, no form submissions (the sign-in form is handled by script and its
// field has no name), and Trusted Types with no policy at all: the console never turns a string into HTML.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RequestHandler } from './listener.js';

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

const HEADERS = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

interface Asset {
  body: Buffer;
  contentType: string;
  etag: string;
}

function asset(body: Buffer, contentType: string): Asset {
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  return { body, contentType, etag };
}

/** The page and every asset by request path (the page under both /console and /console/). */
function loadConsole(): Map<string, Asset> {
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'console');
  if (!existsSync(path.join(dir, 'index.html'))) {
    throw new Error(`console files not found in ${dir} (npm run build copies src/server/console there)`);
  }
  const files = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const contentType = CONTENT_TYPES[path.extname(name)];
    if (contentType) files.set(`/console/${name}`, asset(readFileSync(path.join(dir, name)), contentType));
  }
  const page = files.get('/console/index.html')!;
  files.delete('/console/index.html');
  files.set('/console', page);
  files.set('/console/', page);
  const require = createRequire(import.meta.url);
  for (const name of ['uPlot.iife.min.js', 'uPlot.min.css']) {
    const file = require.resolve(`uplot/dist/${name}`);
    files.set(`/console/${name}`, asset(readFileSync(file), CONTENT_TYPES[path.extname(name)]!));
  }
  return files;
}

let loaded: Map<string, Asset> | undefined;

export function withConsolePage(next: RequestHandler): RequestHandler {
  loaded ??= loadConsole();
  const files = loaded;
  return (req, res) => {
    const pathname = (req.url ?? '/').split('?', 1)[0] ?? '/';
    const file = files.get(pathname);
    if (!file || (req.method !== 'GET' && req.method !== 'HEAD')) {
      next(req, res);
      return;
    }
    const isPage = file.contentType.startsWith('text/html');
    // The page is never cached (it is where a new version starts); the assets are revalidated by ETag.
    const caching = isPage
      ? { 'cache-control': 'no-store' }
      : { 'cache-control': 'no-cache', etag: file.etag };
    if (!isPage && req.headers['if-none-match'] === file.etag) {
      res.writeHead(304, { ...HEADERS, ...caching });
      res.end();
      return;
    }
    res.writeHead(200, {
      ...HEADERS,
      ...caching,
      'content-type': file.contentType,
      'content-length': file.body.length,
    });
    if (req.method === 'HEAD') res.end();
    else res.end(file.body);
  };
}
