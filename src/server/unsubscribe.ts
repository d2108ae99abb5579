// One-click unsubscribe (RFC 8058) for the links in every non-critical e-mail: `POST /unsubscribe/<token>`
// with the body `List-Unsubscribe=One-Click` (urlencoded or multipart, as mail clients send it) turns e-mail
// off at once — for the token's notification type, or all e-mail — and answers 200 without a redirect.
// `GET` shows a small page with a button that posts the same form, and changes nothing: link scanners and
// previews follow GETs. A forged, altered or expired token is 400 and changes nothing.
import type http from 'node:http';
import type http2 from 'node:http2';
import { escapeHtml } from '../core/html.js';
import { verifyUnsubscribeLink } from '../core/link-tokens.js';
import { type Db, updatePreferences } from '../store/index.js';
import type { RequestHandler } from './listener.js';
import { readSmallBody } from './request-body.js';

export interface UnsubscribeDeps {
  db: Db;
  linkSecret: Buffer;
  now: () => Date;
  onError: (error: unknown) => void;
}

const PREFIX = '/unsubscribe/';
const TOKEN = /^[A-Za-z0-9._-]{1,2048}$/;
/** A one-click body is a few dozen bytes; anything much larger is not one. */
const MAX_BODY_BYTES = 8 * 1024;
const HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'content-security-policy':
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
};

type Response = http.ServerResponse | http2.Http2ServerResponse;

export function withUnsubscribe(deps: UnsubscribeDeps, next: RequestHandler): RequestHandler {
  return (req, res) => {
    const pathname = (req.url ?? '/').split('?', 1)[0]!;
    if (!pathname.startsWith(PREFIX) || (req.method !== 'GET' && req.method !== 'POST')) {
      next(req, res);
      return;
    }
    // A token is base64url and dots: anything else is not one (and is never URL-decoded, which can throw).
    const token = pathname.slice(PREFIX.length);
    const link = TOKEN.test(token) ? verifyUnsubscribeLink(deps.linkSecret, token, deps.now()) : null;
    if (!link) {
      answer(res, 400, page('This link is not valid', 'It may have expired. Nothing was changed.'));
      req.resume();
      return;
    }
    const what = link.type === null ? 'all e-mail' : `e-mail about ${link.type}`;
    if (req.method === 'GET') {
      answer(
        res,
        200,
        page(
          'Unsubscribe',
          `Stop ${escapeHtml(what)}?`,
          `<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>`,
        ),
      );
      return;
    }
    readSmallBody(req, MAX_BODY_BYTES)
      .then(async (body) => {
        if (body === null || !isOneClick(body)) {
          answer(res, 400, page('Not a one-click unsubscribe', 'Nothing was changed.'));
          return;
        }
        await updatePreferences(deps.db, link.userId, {
          channels: link.type === null ? [{ channel: 'email', enabled: false }] : [],
          types: link.type === null ? [] : [{ type: link.type, channel: 'email', enabled: false }],
          quietHours: undefined,
        });
        answer(res, 200, page('Unsubscribed', `You will get no more ${escapeHtml(what)}.`));
      })
      .catch((error) => {
        deps.onError(error);
        answer(res, 503, page('Try again', 'The change could not be saved. Nothing was changed.'));
      });
  };
}

/** `List-Unsubscribe=One-Click`, urlencoded or as a multipart form field. */
function isOneClick(body: string): boolean {
  if (new URLSearchParams(body).get('List-Unsubscribe') === 'One-Click') return true;
  return /name="List-Unsubscribe"\r?\n\r?\nOne-Click\r?\n/.test(body);
}

function answer(res: Response, status: number, html: string): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...HEADERS });
  res.end(html);
}

function page(title: string, message: string, form = ''): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${title}</title><style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}button{font-size:1rem;padding:.5rem 1rem}</style></head><body><h1>${title}</h1><p>${message}</p>${form}</body></html>`;
}
