// Cross-origin access to the RPCs (HERALD_CORS_ORIGINS), so a web app on another origin can use Connect-Web
// and gRPC-Web. Only RPC paths (`/<package>.<Service>/<Method>`) take part: the plain pages, /unsubscribe,
// /preferences and /webhooks/* never answer a preflight and never carry CORS headers.
//
// - A preflight (OPTIONS with Origin and Access-Control-Request-Method) from an allowed origin is answered
//   204 with the methods and headers Connect clients send (connect-es's `cors` lists, plus Authorization:
//   Herald authenticates with a bearer header); from any other origin, 403 without CORS headers.
// - An actual request from an allowed origin gets Access-Control-Allow-Origin and the headers a client must
//   read (grpc-status and grpc-message carry gRPC-Web's status when it arrives without a body). From any other
//   origin it is served without them, and the browser withholds the answer from the page.
// - Never Access-Control-Allow-Credentials: Herald reads no cookies, so a browser has nothing to send but the
//   Authorization header the page sets itself.
// The answer depends on Origin, so every RPC response says `Vary: Origin` for caches in between.
import { cors } from '@connectrpc/connect';
import type { RequestHandler } from './listener.js';

/** Origins allowed to call Herald from a browser: exact origins as browsers send them, or `*` for any. */
export type CorsOrigins = '*' | readonly string[];

/** How long a browser may reuse a preflight answer (Chromium caps it at 7200 s). */
const PREFLIGHT_MAX_AGE_S = 7200;
/** `/<package>.<Service>/<Method>`: the shape of every RPC path, and of no other path Herald serves. */
const RPC_PATH = /^\/[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\/[A-Za-z_]\w*$/;

const PREFLIGHT_HEADERS = {
  'access-control-allow-methods': cors.allowedMethods.join(', '),
  'access-control-allow-headers': [...cors.allowedHeaders, 'Authorization'].join(', '),
  'access-control-max-age': String(PREFLIGHT_MAX_AGE_S),
};
const EXPOSED_HEADERS = cors.exposedHeaders.join(', ');

/** Whether a request's `Origin` is one of `origins`. */
export function createOriginCheck(origins: CorsOrigins): (origin: string) => boolean {
  if (origins === '*') return () => true;
  const allowed = new Set(origins);
  return (origin) => allowed.has(origin);
}

/** CORS for the RPCs `next` serves; without origins (unset), `next` itself, untouched. */
export function withCors(origins: CorsOrigins | undefined, next: RequestHandler): RequestHandler {
  if (origins === undefined) return next;
  const isAllowed = createOriginCheck(origins);
  // The wildcard is answered as such, so a shared cache may hand it to any origin.
  const allowOrigin = (origin: string) => (origins === '*' ? '*' : origin);
  return (req, res) => {
    if (!RPC_PATH.test((req.url ?? '/').split('?', 1)[0]!)) {
      next(req, res);
      return;
    }
    res.setHeader('vary', 'Origin');
    const origin = req.headers.origin;
    if (origin === undefined) {
      next(req, res);
      return;
    }
    const allowed = isAllowed(origin);
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
      req.resume();
      if (!allowed) {
        res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('this origin may not call Herald (HERALD_CORS_ORIGINS)\n');
        return;
      }
      res.writeHead(204, { ...PREFLIGHT_HEADERS, 'access-control-allow-origin': allowOrigin(origin) });
      res.end();
      return;
    }
    if (allowed) {
      res.setHeader('access-control-allow-origin', allowOrigin(origin));
      res.setHeader('access-control-expose-headers', EXPOSED_HEADERS);
    }
    next(req, res);
  };
}
