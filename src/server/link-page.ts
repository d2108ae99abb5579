// What the pages behind links in messages (unsubscribe, preferences) share: how a token in the path looks,
// the headers every answer carries (no caching, no framing, forms only to this origin), and the small
// unstyled-but-readable page around their content.
import type http from 'node:http';
import type http2 from 'node:http2';
import type { RequestHandler } from './listener.js';

/** A token is base64url and dots: anything else is not one (and is never URL-decoded, which can throw). */
const LINK_TOKEN = /^[A-Za-z0-9._-]{1,2048}$/;

const HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'content-security-policy':
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
};

export type PageResponse = http.ServerResponse | http2.Http2ServerResponse;

type Request = Parameters<RequestHandler>[0];

/**
 * GET and POST under `prefix` (`/unsubscribe/`): the token after it verified (`verify` answers null for a
 * forged, altered, expired or foreign one: 400, nothing else happens) and handed to `handle` with what it
 * says; every other request goes to `next`.
 */
export function withLinkPage<T>(
  prefix: string,
  verify: (token: string) => T | null,
  handle: (req: Request, res: PageResponse, link: T) => void,
  next: RequestHandler,
): RequestHandler {
  return (req, res) => {
    const pathname = (req.url ?? '/').split('?', 1)[0]!;
    if (!pathname.startsWith(prefix) || (req.method !== 'GET' && req.method !== 'POST')) {
      next(req, res);
      return;
    }
    const token = pathname.slice(prefix.length);
    const link = LINK_TOKEN.test(token) ? verify(token) : null;
    if (link === null) {
      answerPage(res, 400, linkPage('This link is not valid', 'It may have expired. Nothing was changed.'));
      req.resume();
      return;
    }
    handle(req, res, link);
  };
}

export function answerPage(res: PageResponse, status: number, html: string): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...HEADERS });
  res.end(html);
}

/** A page; `title` and `message` are HTML the caller escaped, `body` HTML it built. */
export function linkPage(title: string, message: string, body = ''): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${title}</title><style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}button{font-size:1rem;padding:.5rem 1rem}table{border-collapse:collapse;margin:1rem 0}th,td{padding:.35rem .75rem;text-align:left;border-bottom:1px solid #ddd}td.c{text-align:center}</style></head><body><h1>${title}</h1><p>${message}</p>${body}</body></html>`;
}
