// One-click unsubscribe (RFC 8058) for the links in every non-critical e-mail: `POST /unsubscribe/<token>`
// with the body `List-Unsubscribe=One-Click` (urlencoded or multipart, as mail clients send it) turns e-mail
// off at once — for the token's notification type, or all e-mail — and answers 200 without a redirect.
// `GET` shows a small page with a button that posts the same form, and changes nothing: link scanners and
// previews follow GETs. A forged, altered or expired token is 400 and changes nothing.
import { escapeHtml } from '../core/html.js';
import { verifyUnsubscribeLink } from '../core/link-tokens.js';
import { type Db, updatePreferences } from '../store/index.js';
import { answerPage as answer, linkPage as page, withLinkPage } from './link-page.js';
import type { RequestHandler } from './listener.js';
import { readSmallBody } from './request-body.js';

export interface UnsubscribeDeps {
  db: Db;
  linkSecret: Buffer;
  now: () => Date;
  onError: (error: unknown) => void;
}

const PREFIX = '/unsubscribe/';
/** A one-click body is a few dozen bytes; anything much larger is not one. */
const MAX_BODY_BYTES = 8 * 1024;

export function withUnsubscribe(deps: UnsubscribeDeps, next: RequestHandler): RequestHandler {
  const verify = (token: string) => verifyUnsubscribeLink(deps.linkSecret, token, deps.now());
  return withLinkPage(
    PREFIX,
    verify,
    (req, res, link) => {
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
    },
    next,
  );
}

/** `List-Unsubscribe=One-Click`, urlencoded or as a multipart form field. */
function isOneClick(body: string): boolean {
  if (new URLSearchParams(body).get('List-Unsubscribe') === 'One-Click') return true;
  return /name="List-Unsubscribe"\r?\n\r?\nOne-Click\r?\n/.test(body);
}
