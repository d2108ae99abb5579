// The demo inbox page (`GET /inbox`) and the browser client bundle it loads (`GET /inbox/herald-web.js`,
// clients/web bundled as ESM by esbuild on first request). The quickstart's way to watch a notification
// arrive: open /inbox#user=u1&token=<API key with read, or a user JWT>[&transport=websocket]. The page's
// script is served as /inbox/page.js so the page runs under a strict Content-Security-Policy.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { RequestHandler } from './listener.js';

const here = path.dirname(fileURLToPath(import.meta.url));

function findClientEntry(): string | null {
  for (let dir = here; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'clients', 'web', 'index.ts');
    if (existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) return null;
  }
}

let bundle: Promise<string> | null = null;

/** The browser client as one ESM file (built once per process). */
export function webClientBundle(): Promise<string> {
  bundle ??= (async () => {
    const entry = findClientEntry();
    if (!entry) throw new Error('clients/web/index.ts not found');
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
  bundle.catch(() => {
    bundle = null;
  });
  return bundle;
}

export function withInboxPage(next: RequestHandler): RequestHandler {
  return (req, res) => {
    const pathname = (req.url ?? '/').split('?', 1)[0];
    const known =
      pathname === '/inbox' || pathname === '/inbox/page.js' || pathname === '/inbox/herald-web.js';
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
    if (pathname === '/inbox/page.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache' });
      res.end(PAGE_SCRIPT);
      return;
    }
    webClientBundle().then(
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
import { createHeraldWebClient } from '/inbox/herald-web.js';
const params = new URLSearchParams(location.hash.slice(1));
const token = params.get('token');
if (!token) {
  document.getElementById('status').textContent = 'Open /inbox#user=USER_ID&token=API_KEY_OR_JWT';
} else {
  const herald = createHeraldWebClient({
    baseUrl: location.origin,
    token,
    userId: params.get('user') ?? undefined,
    transport: params.get('transport') ?? 'auto',
    baseDelayMs: 200,
    maxDelayMs: 2000,
  });
  const list = document.getElementById('list');
  herald.subscribe((event) => {
    if (event.type === 'connected') document.getElementById('status').textContent = 'live (' + event.transport + ')';
    if (event.type === 'disconnected') document.getElementById('status').textContent = 'reconnecting…';
    if (event.type === 'unread_count') document.getElementById('unread').textContent = '(' + event.unread_count.count + ')';
    if (event.type === 'system') {
      const box = document.getElementById('system');
      box.style.display = 'block';
      box.textContent = event.system.type;
    }
    if (event.type === 'notification') {
      const n = event.notification;
      const item = document.createElement('li');
      item.dataset.seq = n.seq;
      item.dataset.id = n.id;
      if (!n.readAt) item.className = 'unread';
      const title = document.createElement('div');
      title.className = 'title';
      title.textContent = n.title || n.type;
      const body = document.createElement('div');
      body.className = 'body';
      body.textContent = n.body || '';
      item.append(title, body);
      list.prepend(item);
    }
  });
}
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Herald inbox</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; color: #222; }
  #status { color: #666; font-size: 13px; }
  #unread { font-weight: 600; }
  li { padding: .5rem 0; border-bottom: 1px solid #eee; list-style: none; }
  li.unread .title { font-weight: 600; }
  .body { color: #555; }
  #system { background: #fff6d6; padding: .25rem .5rem; display: none; }
</style>
</head>
<body>
<h1>Inbox <span id="unread"></span></h1>
<p id="status">connecting…</p>
<p id="system"></p>
<ul id="list"></ul>
<script type="module" src="/inbox/page.js"></script>
</body>
</html>
`;
