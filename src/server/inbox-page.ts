// The demo inbox page (`GET /inbox`), built on the <herald-inbox> element, and the two browser bundles it and
// other pages load, each clients/web/src bundled as minified ESM by esbuild on first request:
// `/inbox/herald-inbox.js` (the element and the client) and `/inbox/herald-web.js` (the client alone). The
// quickstart's way to watch a notification arrive: open /inbox#user=u1&token=<API key with read, or a user
// JWT>[&transport=websocket]; the credential stays in the fragment, which is never sent to the server, and is
// handed to the element as a property. The page's script is served as /inbox/page.js so the page runs under a
// strict Content-Security-Policy; the element styles its shadow root with a constructed stylesheet, which that
// policy allows.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { RequestHandler } from './listener.js';

const here = path.dirname(fileURLToPath(import.meta.url));

function findClientSource(file: string): string | null {
  for (let dir = here; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'clients', 'web', 'src', file);
    if (existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) return null;
  }
}

const bundles = new Map<string, Promise<string>>();

/** clients/web/src/<file> and everything it imports as one minified ESM file (built once per process). */
function bundleOf(file: string): Promise<string> {
  let bundle = bundles.get(file);
  if (bundle) return bundle;
  bundle = (async () => {
    const entry = findClientSource(file);
    if (!entry) throw new Error(`clients/web/src/${file} not found`);
    const result = await build({
      entryPoints: [entry],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      minify: true,
      write: false,
      logLevel: 'silent',
    });
    return result.outputFiles[0]!.text;
  })();
  bundles.set(file, bundle);
  bundle.catch(() => bundles.delete(file));
  return bundle;
}

/** The browser client as one ESM file. */
export const webClientBundle = (): Promise<string> => bundleOf('index.ts');

/** The <herald-inbox> element with the browser client, as one ESM file that registers the element. */
export const inboxElementBundle = (): Promise<string> => bundleOf('inbox-element.ts');

const SCRIPTS: Record<string, () => Promise<string>> = {
  '/inbox/herald-web.js': webClientBundle,
  '/inbox/herald-inbox.js': inboxElementBundle,
};

export function withInboxPage(next: RequestHandler): RequestHandler {
  return (req, res) => {
    const pathname = (req.url ?? '/').split('?', 1)[0] ?? '/';
    const bundle = Object.hasOwn(SCRIPTS, pathname) ? SCRIPTS[pathname] : undefined;
    const known = pathname === '/inbox' || pathname === '/inbox/page.js' || bundle !== undefined;
    if (req.method !== 'GET' || !known) {
      next(req, res);
      return;
    }
    if (pathname === '/inbox') {
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'content-security-policy':
          "default-src 'self'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:",
      });
      res.end(PAGE);
      return;
    }
    if (!bundle) {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache' });
      res.end(PAGE_SCRIPT);
      return;
    }
    bundle().then(
      (code) => {
        res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache' });
        res.end(code);
      },
      () => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('the browser client could not be built\n');
      },
    );
  };
}

const PAGE_SCRIPT = `
import '/inbox/herald-inbox.js';
const params = new URLSearchParams(location.hash.slice(1));
const token = params.get('token');
const status = document.getElementById('status');
const inbox = document.querySelector('herald-inbox');
if (!token) {
  status.textContent = 'Open /inbox#user=USER_ID&token=API_KEY_OR_JWT';
} else {
  const states = { live: 'live', connecting: 'connecting…', reconnecting: 'reconnecting…', idle: '' };
  inbox.addEventListener('herald-connection', (event) => {
    const { state, transport } = event.detail;
    status.textContent = state === 'live' ? 'live (' + transport + ')' : states[state];
  });
  inbox.addEventListener('herald-system', (event) => {
    const box = document.getElementById('system');
    box.hidden = false;
    box.textContent = event.detail.system.type;
  });
  if (params.get('user')) inbox.userId = params.get('user');
  inbox.transport = params.get('transport') ?? 'auto';
  inbox.token = token;
  inbox.open = true;
}
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Herald inbox</title>
<style>
  :root { color-scheme: light dark; }
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
  header { display: flex; align-items: center; justify-content: space-between; }
  h1 { margin: 0; font-size: 1.5rem; }
  #status { color: GrayText; font-size: 13px; }
  #system { background: #fff6d6; color: #222; padding: .25rem .5rem; }
  herald-inbox { --herald-panel-width: min(28rem, calc(100vw - 2rem)); }
</style>
</head>
<body>
<header><h1>Inbox</h1><herald-inbox></herald-inbox></header>
<p id="status">connecting…</p>
<p id="system" hidden></p>
<script type="module" src="/inbox/page.js"></script>
</body>
</html>
`;
