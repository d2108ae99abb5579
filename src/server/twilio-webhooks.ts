// What Twilio posts back, each request verified with the twilio SDK's own validator (X-Twilio-Signature:
// HMAC-SHA1 keyed by the auth token of the account the request names, over the URL as Twilio called it —
// HERALD_PUBLIC_URL plus the path — and the sorted form fields; compared in constant time). Unsigned,
// forged or tampered requests, and accounts no configured provider has, are 403 and change nothing.
//
// - `POST /webhooks/twilio/status`: delivery receipts for the message SID a sent attempt recorded.
//   `delivered` → DELIVERED, `undelivered`/`failed` → FAILED with Twilio's error code; only a delivery still
//   SENT moves, so late, duplicate or out-of-order receipts never move a final status. Error 21610 (the
//   recipient had opted out) suppresses the number.
// - `POST /webhooks/twilio/inbound`: a reply of STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE or
//   OPTOUT suppresses the sender's number for SMS; START, YES or UNSTOP lifts an opt-out (never a suppression
//   an operator added or a failure caused). Answered with empty TwiML: Twilio's own opt-out handling replies.

import type { Logger } from 'pino';
import twilio from 'twilio';
import type { SmsEvent } from '../channels/sms/metrics.js';
import type { TwilioAccount } from '../channels/sms/twilio.js';
import { providerNumber } from '../core/phone.js';
import {
  type Database,
  deliveryStatus,
  type FeedbackDelivery,
  findDeliveryByProviderMessageId,
  liftOptOut,
  markReported,
  OPT_OUT_REASON,
  queueStatusEvents,
  type StatusEventDelivery,
  suppressAddress,
} from '../store/index.js';
import type { RequestHandler } from './listener.js';
import { readSmallBody } from './request-body.js';

export interface TwilioWebhookDeps {
  sql: Database['sql'];
  now: () => Date;
  /** The base URL Twilio calls Herald at (HERALD_PUBLIC_URL, else this server). */
  publicUrl: () => string;
  /** The Twilio accounts of the providers configured now, by account SID. */
  accounts: () => ReadonlyMap<string, readonly TwilioAccount[]>;
  statusEvents: (
    delivery: FeedbackDelivery,
    status: 'delivered' | 'failed',
    reason: string,
  ) => StatusEventDelivery[];
  onEvent?: (event: SmsEvent, provider: string) => void;
  logger: Logger;
}

const STATUS_PATH = '/webhooks/twilio/status';
const INBOUND_PATH = '/webhooks/twilio/inbound';
const MAX_BODY_BYTES = 64 * 1024;
const STOP = new Set(['STOP', 'STOPALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT', 'REVOKE', 'OPTOUT']);
const START = new Set(['START', 'YES', 'UNSTOP']);
const OPTED_OUT_CODE = '21610';
const EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>';

type Request = Parameters<RequestHandler>[0];
type Response = Parameters<RequestHandler>[1];

export function withTwilioWebhooks(deps: TwilioWebhookDeps, next: RequestHandler): RequestHandler {
  return (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== STATUS_PATH && path !== INBOUND_PATH) {
      next(req, res);
      return;
    }
    if (req.method !== 'POST') {
      answer(res, 405);
      req.resume();
      return;
    }
    verified(req)
      .then(async (request) => {
        if (!request) return answer(res, 403);
        if (path === STATUS_PATH) {
          const applied = await applyStatus(request.fields, request.account, request.url);
          return answer(res, applied ? 204 : 503);
        }
        await applyInbound(request.fields, request.account);
        return answer(res, 200, EMPTY_TWIML);
      })
      .catch((error) => {
        deps.logger.error({ err: error, path }, 'Twilio webhook could not be applied; Twilio will retry');
        answer(res, 503);
      });
  };

  /** The form fields and the account they came from, when the signature holds; else null. */
  async function verified(
    req: Request,
  ): Promise<{ fields: Record<string, string>; account: TwilioAccount; url: URL } | null> {
    const body = await readSmallBody(req, MAX_BODY_BYTES);
    const signature = req.headers['x-twilio-signature'];
    if (body === null || typeof signature !== 'string') return null;
    const fields: Record<string, string> = {};
    for (const [name, value] of new URLSearchParams(body)) fields[name] = value;
    const url = `${deps.publicUrl()}${req.url ?? ''}`;
    const account = (deps.accounts().get(fields.AccountSid ?? '') ?? []).find((a) =>
      twilio.validateRequest(a.authToken, signature, url, fields),
    );
    return account ? { fields, account, url: new URL(url) } : null;
  }

  /**
   * Applies a receipt; false when it came before Herald recorded the message (the delivery its callback names is
   * still being sent): answered 503, so a sender that retries comes back once the attempt is written.
   */
  async function applyStatus(
    fields: Record<string, string>,
    account: TwilioAccount,
    url: URL,
  ): Promise<boolean> {
    const status = fields.MessageStatus ?? fields.SmsStatus ?? '';
    if (status !== 'delivered' && status !== 'undelivered' && status !== 'failed') return true;
    const sid = fields.MessageSid ?? fields.SmsSid ?? '';
    const delivery = sid ? await findDeliveryByProviderMessageId(deps.sql, 'sms', sid) : undefined;
    if (!delivery) {
      const named = url.searchParams.get('delivery');
      if (named && (await deliveryStatus(deps.sql, named)) === 'sending') return false;
    }
    const code = fields.ErrorCode ?? '';
    const number = providerNumber(fields.To ?? '');
    if (code === OPTED_OUT_CODE && number) {
      await suppressAddress(deps.sql, {
        channel: 'sms',
        address: number,
        reason: `${OPT_OUT_REASON}: Twilio ${code}`,
        deliveryId: delivery?.id ?? null,
      });
    }
    deps.onEvent?.(status, delivery?.provider ?? account.name);
    if (!delivery?.current) return true;
    const reason =
      status === 'delivered'
        ? 'delivered: the carrier reported the handset received it'
        : `${status}: Twilio error ${code || 'unknown'}`;
    const final = status === 'delivered' ? 'delivered' : 'failed';
    await deps.sql.transaction(async (tx) => {
      if (await markReported(tx, delivery.id, final, reason)) {
        await queueStatusEvents(tx, deps.statusEvents(delivery, final, reason), deps.now());
      }
    });
    return true;
  }

  async function applyInbound(fields: Record<string, string>, account: TwilioAccount): Promise<void> {
    const keyword = (fields.Body ?? '')
      .trim()
      .replace(/[.!]+$/, '')
      .toUpperCase();
    const isStop = STOP.has(keyword);
    if (!isStop && !START.has(keyword)) return;
    const number = providerNumber(fields.From ?? '');
    if (!number) return;
    if (isStop) {
      await suppressAddress(deps.sql, {
        channel: 'sms',
        address: number,
        reason: `${OPT_OUT_REASON}: replied ${keyword}`,
        deliveryId: null,
      });
    } else {
      await liftOptOut(deps.sql, { channel: 'sms', address: number });
    }
    deps.onEvent?.(isStop ? 'stop' : 'start', account.name);
  }
}

function answer(res: Response, status: number, twiml?: string): void {
  if (res.headersSent) return;
  res.writeHead(status, twiml ? { 'content-type': 'text/xml; charset=utf-8' } : {});
  res.end(twiml ?? '');
}
