// SMS through Twilio with the `twilio` SDK: one Messages.create per delivery, from a number or a Messaging
// Service, with a StatusCallback to Herald's `/webhooks/twilio/status` so delivery reports reach the
// delivery. The SDK does not retry (no autoRetry): the dispatcher's backoff and failover decide. The message
// SID is the provider message id (stored on the attempt, indexed), which status callbacks are matched by.
//
// Twilio's error codes decide the outcome:
// - 21610 (the recipient replied STOP): the number is suppressed, never retried;
// - 21211, 21214, 21217, 21401, 21614 (not a valid or not a mobile number): invalid_destination;
// - 21408, 21612 (a region or carrier this account does not reach): the next provider, at once;
// - 20003, 20005, 20404 and the sender refused (21212, 21606, 21659): credentials or configuration, the circuit;
// - 20429, 429, 5xx, timeouts and connection errors: retried, the next provider first;
// - anything else 4xx: permanent for the message.
import twilio from 'twilio';
import type RequestClient from 'twilio/lib/base/RequestClient.js';
import { maskNumbersIn } from '../../core/destinations.js';
import type { DeliveryTask, Outcome, ProviderAdapter } from '../../delivery/provider.js';
import { channelAdapter } from '../adapter.js';
import { withinBudget } from '../budget.js';
import { estimatedCost, type SmsPricing } from './pricing.js';

export interface TwilioAdapterOptions {
  name?: string;
  timeoutMs: number;
  accountSid: string;
  authToken: string;
  /** The sender: a number (E.164), short code or alphanumeric ID; or a Messaging Service. */
  from?: string | undefined;
  messagingServiceSid?: string | undefined;
  /** Herald's status callback URL (the delivery id is added as a query); null: no delivery reports. */
  statusCallback: string | null;
  /** Another API base than https://api.twilio.com (a test emulator). */
  apiBase?: string | undefined;
  pricing?: SmsPricing | undefined;
}

const TWILIO_API = 'https://api.twilio.com';
const OPTED_OUT = 21610;
const INVALID_NUMBER = new Set([21211, 21214, 21217, 21401, 21614]);
const UNREACHABLE_HERE = new Set([21408, 21612]);
const CREDENTIALS = new Set([20003, 20005, 20404, 21212, 21606, 21659]);
const TOO_MANY_REQUESTS = 20429;

export function createTwilioAdapter(options: TwilioAdapterOptions): ProviderAdapter {
  const name = options.name ?? 'twilio';
  const client = twilio(options.accountSid, options.authToken, {
    httpClient: new BaseUrlClient(options.apiBase ?? TWILIO_API, options.timeoutMs),
    autoRetry: false,
  });

  async function send(task: DeliveryTask, signal: AbortSignal): Promise<Outcome> {
    const { destination, content } = task;
    if (destination.channel !== 'sms' || content.channel !== 'sms') {
      return { kind: 'failed', reason: 'Twilio delivery without a number and a text' };
    }
    const attempt = client.messages
      .create({
        to: destination.number,
        body: content.text,
        ...(options.messagingServiceSid
          ? { messagingServiceSid: options.messagingServiceSid }
          : { from: options.from ?? '' }),
        // The delivery id travels with the message and comes back on every receipt.
        ...(options.statusCallback
          ? { statusCallback: `${options.statusCallback}?delivery=${encodeURIComponent(task.deliveryId)}` }
          : {}),
      })
      .then(
        (message): Outcome => ({
          kind: 'sent',
          providerMessageId: message.sid,
          statusCode: 201,
          cost: estimatedCost(options.pricing, destination.number, content.segments),
        }),
        classify,
      );
    return withinBudget(attempt, options.timeoutMs, signal);
  }

  const adapter: ProviderAdapter & { [ACCOUNT]: TwilioAccount } = {
    ...channelAdapter('sms', { name, timeoutMs: options.timeoutMs, send, close: async () => {} }),
    [ACCOUNT]: { accountSid: options.accountSid, authToken: options.authToken, name },
  };
  return adapter;
}

/**
 * Each Twilio adapter's account, for verifying the webhooks Twilio signs with its auth token; a symbol, so it
 * stays with the adapter when the providers file's settings wrap it (an object spread copies it).
 */
const ACCOUNT = Symbol('twilio account');

export interface TwilioAccount {
  accountSid: string;
  authToken: string;
  /** The provider's configured name. */
  name: string;
}

/**
 * The Twilio accounts among the providers now configured, by account SID; one SID may come with several auth
 * tokens (two providers of one account while its token is rotated), and a webhook signed with any is valid.
 */
export function twilioAccounts(providers: Iterable<ProviderAdapter>): Map<string, TwilioAccount[]> {
  const found = new Map<string, TwilioAccount[]>();
  for (const provider of providers) {
    const account = (provider as { [ACCOUNT]?: TwilioAccount })[ACCOUNT];
    if (account) found.set(account.accountSid, [...(found.get(account.accountSid) ?? []), account]);
  }
  return found;
}

/** The SDK's request client, pointed at another base URL when configured, with the attempt's timeout. */
class BaseUrlClient extends twilio.RequestClient {
  readonly #base: string;
  readonly #timeoutMs: number;

  constructor(base: string, timeoutMs: number) {
    super({ timeout: timeoutMs, keepAlive: true });
    this.#base = base.replace(/\/+$/, '');
    this.#timeoutMs = timeoutMs;
  }

  override request<TData>(opts: RequestClient.RequestOptions<TData>) {
    const uri = opts.uri.startsWith(TWILIO_API)
      ? `${this.#base}${opts.uri.slice(TWILIO_API.length)}`
      : opts.uri;
    return super.request({ ...opts, uri, timeout: this.#timeoutMs });
  }
}

function classify(error: unknown): Outcome {
  const e = (error ?? {}) as { status?: unknown; code?: unknown; message?: string };
  const status = typeof e.status === 'number' ? e.status : undefined;
  const code = typeof e.code === 'number' ? e.code : undefined;
  const label = code ?? status ?? (typeof e.code === 'string' ? e.code : 'error');
  // Twilio's messages quote the number ("The 'To' number +1… is not valid"): never whole in a reason.
  const said = maskNumbersIn(`Twilio ${label}: ${e.message ?? ''}`).slice(0, 500);
  const detail = { statusCode: status, code: code === undefined ? undefined : String(code) };
  if (status === undefined) return { kind: 'retry', reason: said, ...detail };
  if (code === OPTED_OUT) return { kind: 'invalid_destination', reason: `opted_out: ${said}`, ...detail };
  if (code !== undefined && INVALID_NUMBER.has(code)) {
    return { kind: 'invalid_destination', reason: said, ...detail };
  }
  if (code !== undefined && UNREACHABLE_HERE.has(code)) {
    return { kind: 'retry', reason: said, elsewhere: true, ...detail };
  }
  if ((code !== undefined && CREDENTIALS.has(code)) || status === 401 || status === 403) {
    return { kind: 'failed', reason: said, credentials: true, ...detail };
  }
  if (code === TOO_MANY_REQUESTS || status === 429 || status >= 500) {
    return { kind: 'retry', reason: said, ...detail };
  }
  return { kind: 'failed', reason: said, ...detail };
}
