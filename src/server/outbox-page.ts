// The outbox page (`GET /outbox`) and its script (`GET /outbox/page.js`): what the outbox provider captured,
// newest first, followed live by polling AdminService.ListOutboxMessages with after_id. Open
// /outbox#token=<API key with the admin scope>; the key stays in the fragment and is sent only as the
// Authorization header of the page's own RPCs.
//
// Message content is untrusted (it is whatever a template or a Send put there), so the page puts it into the
// DOM with textContent only. The one exception is an e-mail's HTML part, shown in an <iframe sandbox=""> via
// srcdoc: no scripts, an opaque origin, no forms, no popups, no navigation out (frame-src 'none'), and a
// Content-Security-Policy of its own prepended so nothing remote ever loads. A srcdoc document inherits the
// page's policy as well (both apply), which is why the page's policy allows inline styles and data: images:
// without them an e-mail would render unstyled and without its inline images. The page itself never parses
// message data as HTML, and Trusted Types make the browser refuse any HTML string assignment except the
// srcdoc policy's.
import type { RequestHandler } from './listener.js';

export const OUTBOX_PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "connect-src 'self'",
  // Inline styles and data: images are for the e-mail frame, which inherits this policy.
  "style-src 'self' 'unsafe-inline'",
  'img-src data:',
  // srcdoc frames are not fetched, so this blocks only navigating a frame somewhere (links, meta refresh).
  "frame-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  'trusted-types outbox-srcdoc',
].join('; ');

const HEADERS = {
  'content-security-policy': OUTBOX_PAGE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

export function withOutboxPage(next: RequestHandler): RequestHandler {
  return (req, res) => {
    const pathname = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' || (pathname !== '/outbox' && pathname !== '/outbox/page.js')) {
      next(req, res);
      return;
    }
    if (pathname === '/outbox') {
      res.writeHead(200, { ...HEADERS, 'content-type': 'text/html; charset=utf-8' });
      res.end(PAGE);
      return;
    }
    res.writeHead(200, { ...HEADERS, 'content-type': 'text/javascript; charset=utf-8' });
    res.end(PAGE_SCRIPT);
  };
}

const PAGE_SCRIPT = `'use strict';
const RPC = '/herald.v1.AdminService/ListOutboxMessages';
const PAGE = 50;
const POLL_MS = 1000;
const CHANNELS = { CHANNEL_EMAIL: 'email', CHANNEL_SMS: 'sms', CHANNEL_PUSH: 'push', CHANNEL_WEBHOOK: 'webhook' };
// Nothing remote, no scripts: the e-mail frame's own policy, on top of the page's and the empty sandbox.
const FRAME_CSP =
  '<meta http-equiv="Content-Security-Policy" content="default-src \\'none\\'; img-src data:; style-src \\'unsafe-inline\\'">';

const list = document.getElementById('list');
const status = document.getElementById('status');
const error = document.getElementById('error');
const older = document.getElementById('older');
const token = new URLSearchParams(location.hash.slice(1)).get('token');
// The only place an HTML string reaches the DOM (the CSP refuses any other).
const srcdocPolicy = window.trustedTypes
  ? window.trustedTypes.createPolicy('outbox-srcdoc', { createHTML: (html) => html })
  : { createHTML: (html) => html };
let newest = '';
let cursor = '';

addEventListener('hashchange', () => location.reload());

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function showError(text) {
  error.textContent = text;
  error.hidden = false;
}

async function listOutbox(request) {
  const res = await fetch(RPC, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'connect-protocol-version': '1',
      authorization: 'Bearer ' + token,
    },
    body: JSON.stringify(request),
    cache: 'no-store',
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const failure = new Error(body.message || res.statusText);
    failure.code = body.code || 'http ' + res.status;
    throw failure;
  }
  return { messages: body.messages || [], nextCursor: body.nextCursor || '' };
}

/** The frame's document: its own CSP first (after a leading doctype, so standards mode is kept). */
function framed(html) {
  const doctype = /^\\s*<!doctype[^>]*>/i.exec(html);
  const head = doctype ? doctype[0] : '';
  return head + FRAME_CSP + html.slice(head.length);
}

function render(m) {
  const channel = CHANNELS[m.channel] || 'unknown';
  const message = m.message || {};
  const item = el('article', 'message');
  item.dataset.id = m.id;
  item.dataset.channel = channel;
  const meta = el('dl', 'meta');
  const time = el('time', 'time', m.createdAt ? new Date(m.createdAt).toLocaleString() : '');
  time.dateTime = m.createdAt || '';
  const fields = [
    ['channel', channel],
    ['provider', m.provider],
    ['to', m.destination],
    ['notification', m.notificationId],
  ];
  const when = el('dd');
  when.append(time);
  meta.append(el('dt', '', 'time'), when);
  for (const [label, value] of fields) meta.append(el('dt', '', label), el('dd', label, value || ''));
  item.append(meta);
  if (channel === 'email') {
    const headers = Object.entries(message.headers || {}).map(([k, v]) => k + ': ' + v);
    const frame = el('iframe', 'email-html');
    frame.setAttribute('sandbox', '');
    frame.title = 'HTML part';
    frame.srcdoc = srcdocPolicy.createHTML(framed(String(message.html || '')));
    item.append(
      el('h2', 'subject', message.subject || ''),
      el('pre', 'headers', headers.join('\\n')),
      frame,
      el('pre', 'text', message.text || ''),
    );
  } else if (channel === 'sms') {
    const n = message.segments;
    const shape = n + (n === 1 ? ' segment, ' : ' segments, ') + message.encoding;
    item.append(el('pre', 'text', message.text || ''), el('p', 'segments', shape));
  } else {
    item.append(el('pre', 'payload', JSON.stringify(message, null, 2)));
  }
  return item;
}

function fatal(e) {
  if (e.code === 'permission_denied') {
    showError(e.code + ': ' + e.message + '. This page needs an API key with the admin scope.');
    return true;
  }
  if (e.code === 'unauthenticated') {
    showError(e.code + ': ' + e.message + '. Check the API key in the address (#token=...).');
    return true;
  }
  showError((e.code || 'network error') + ': ' + e.message + ' (retrying)');
  return false;
}

async function poll() {
  try {
    if (!newest) {
      const page = await listOutbox({ limit: PAGE });
      list.replaceChildren(...page.messages.map(render));
      if (page.messages.length > 0) newest = page.messages[0].id;
      cursor = page.nextCursor;
      older.hidden = !cursor;
    } else {
      // Newer than the newest shown, oldest first: each goes on top.
      for (;;) {
        const { messages } = await listOutbox({ afterId: newest, limit: PAGE });
        for (const m of messages) {
          list.prepend(render(m));
          newest = m.id;
        }
        if (messages.length < PAGE) break;
      }
    }
    error.hidden = true;
    status.textContent = 'live: ' + list.childElementCount + ' shown, checking every second';
  } catch (e) {
    status.textContent = '';
    if (fatal(e)) return;
  }
  setTimeout(poll, POLL_MS);
}

older.addEventListener('click', async () => {
  older.disabled = true;
  try {
    const page = await listOutbox({ limit: PAGE, cursor });
    list.append(...page.messages.map(render));
    cursor = page.nextCursor;
    older.hidden = !cursor;
  } catch (e) {
    fatal(e);
  }
  older.disabled = false;
});

if (token) {
  poll();
} else {
  status.textContent = '';
  showError('No API key: open /outbox#token=API_KEY with a key that has the admin scope.');
}
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Herald outbox</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 56rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  #status { color: #666; font-size: 13px; }
  #error { background: #fde8e8; color: #8a1c1c; padding: .25rem .5rem; }
  .message { border-top: 1px solid #ddd; padding: .75rem 0; }
  .meta { display: grid; grid-template-columns: max-content 1fr; gap: 0 .75rem; margin: 0; font-size: 13px; }
  .meta dt { color: #666; }
  .meta dd { margin: 0; overflow-wrap: anywhere; }
  h2 { font-size: 16px; margin: .5rem 0; }
  pre { background: #f6f6f6; padding: .5rem; white-space: pre-wrap; overflow-wrap: anywhere; margin: .5rem 0; }
  .email-html { width: 100%; height: 20rem; border: 1px solid #ddd; resize: vertical; background: #fff; }
  .segments { color: #555; font-size: 13px; }
</style>
</head>
<body>
<h1>Outbox</h1>
<p id="status">loading…</p>
<p id="error" role="alert" hidden></p>
<div id="list"></div>
<button id="older" type="button" hidden>Show older</button>
<script src="/outbox/page.js" defer></script>
</body>
</html>
`;
