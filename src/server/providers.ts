// The providers the engine delivers with, composed from the providers file (HERALD_PROVIDERS_FILE), or the
// development default without one: webhooks through the webhook adapter, every other channel into the
// outbox. A file is validated whole before anything is built; a bad one is refused with every problem.
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { createSesAdapter } from '../channels/email/ses.js';
import { createSmtpAdapter } from '../channels/email/smtp.js';
import { createOutboxAdapter } from '../channels/outbox/adapter.js';
import { providerTypes } from '../channels/provider-types.js';
import {
  loadProvidersFile,
  type ProviderEntry,
  providerMatches,
  redactedSettings,
} from '../channels/providers-file.js';
import { createApnsAdapter } from '../channels/push/apns.js';
import { createFcmAdapter } from '../channels/push/fcm.js';
import { createWebPushAdapter } from '../channels/push/webpush.js';
import { smsPricing } from '../channels/sms/pricing.js';
import { createSnsSmsAdapter } from '../channels/sms/sns.js';
import { createTwilioAdapter } from '../channels/sms/twilio.js';
import { createWebhookAdapter } from '../channels/webhook/adapter.js';
import { type AddressGuard, createAddressGuard } from '../channels/webhook/address-guard.js';
import type { DeliveryConfig } from '../config.js';
import type { ChannelName } from '../core/channels.js';
import type { Destination, ProviderAdapter, ProviderSet } from '../delivery/provider.js';
import type { SqlRunner } from '../store/index.js';

export interface ProviderDeps {
  delivery: DeliveryConfig;
  sql: SqlRunner;
  /** The webhook address guard from HERALD_WEBHOOK_ALLOW_NETWORKS. */
  webhookGuard: AddressGuard;
  env?: Record<string, string | undefined>;
  logger?: Logger | undefined;
  /** HERALD_PUBLIC_URL: the base of provider callbacks (Twilio's status callback). */
  publicUrl?: string | undefined;
}

export type LoadedProviders =
  | {
      ok: true;
      providers: ProviderSet;
      /** Channels delivered into the outbox because there is no providers file. */
      outboxChannels: ChannelName[];
      /** What was configured, secrets redacted: for the start-up log. */
      summary: { channel: string; name: string; type: string; settings: Record<string, unknown> }[];
    }
  | { ok: false; problems: string[] };

const OUTBOX_DEFAULT_CHANNELS = ['push', 'email', 'sms'] as const;
/** An e-mail attempt's budget when the file sets no timeout_ms (SMTP: connect, TLS, AUTH and DATA). */
const DEFAULT_EMAIL_TIMEOUT_MS = 30_000;
/** Twilio and SNS answer an SMS request within seconds; a longer wait is a provider problem. */
const DEFAULT_SMS_TIMEOUT_MS = 15_000;
/** Where Twilio posts delivery reports (server/twilio-webhooks.ts). */
export const TWILIO_STATUS_PATH = '/webhooks/twilio/status';
/** A push attempt's budget when the file sets no timeout_ms. */
const DEFAULT_PUSH_TIMEOUT_MS = 10_000;

/** Reads and validates the providers file (or takes the default), and builds every adapter. */
export function loadProviders(deps: ProviderDeps): LoadedProviders {
  const path = deps.delivery.providersFile;
  if (!path) {
    const providers: ProviderSet = { webhook: [webhookAdapter(deps, null)] };
    for (const channel of OUTBOX_DEFAULT_CHANNELS) {
      providers[channel] = [
        createOutboxAdapter({ channel, sql: deps.sql, maxMessages: deps.delivery.outboxMaxMessages }),
      ];
    }
    return { ok: true, providers, outboxChannels: [...OUTBOX_DEFAULT_CHANNELS], summary: [] };
  }
  const result = checkProvidersFile(path, deps.env);
  if (!result.ok) return result;
  const providers: ProviderSet = {};
  const summary: { channel: string; name: string; type: string; settings: Record<string, unknown> }[] = [];
  const problems: string[] = [];
  for (const [channel, entries] of Object.entries(result.file.channels)) {
    const built: ProviderAdapter[] = [];
    for (const entry of entries) {
      // What only building can tell (a key that does not parse) is a problem of the file, like the others.
      try {
        built.push(configured(entry, build(entry, deps), deps));
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        // "projects[0].service_account: must be ..." names a setting below settings.
        problems.push(`${entry.path}.settings${/^[\w[\].]+: /.test(message) ? '.' : ': '}${message}`);
      }
      summary.push({ channel, name: entry.name, type: entry.type, settings: redactedSettings(entry) });
    }
    providers[channel as ChannelName] = built;
  }
  if (problems.length > 0) {
    closeProviders(providers).catch(() => {});
    return { ok: false, problems };
  }
  return { ok: true, providers, outboxChannels: [], summary };
}

/** The validation alone (`herald providers check`). */
export function checkProvidersFile(path: string, env: Record<string, string | undefined> = process.env) {
  return loadProvidersFile(path, {
    types: providerTypes,
    env,
    readFile: (file) => readFileSync(file, 'utf8'),
  });
}

/** Closes a set that was built but will not be used (a reload the engine refused). */
export async function closeProviders(providers: ProviderSet): Promise<void> {
  await Promise.all(Object.values(providers).flatMap((list) => list.map((p) => p.close())));
}

function build(entry: ProviderEntry, deps: ProviderDeps): ProviderAdapter {
  switch (entry.type) {
    case 'webhook':
      return webhookAdapter(deps, entry);
    case 'outbox':
      return createOutboxAdapter({
        channel: entry.channel,
        name: entry.name,
        sql: deps.sql,
        maxMessages: deps.delivery.outboxMaxMessages,
        timeoutMs: entry.timeoutMs ?? undefined,
      });
    case 'webpush':
      return webPushAdapter(deps, entry);
    case 'apns':
      return apnsAdapter(entry);
    case 'fcm':
      return fcmAdapter(entry, deps);
    case 'smtp':
      return smtpAdapter(entry, deps);
    case 'ses':
      return sesAdapter(entry);
    case 'twilio':
      return twilioAdapter(entry, deps);
    case 'sns':
      return snsSmsAdapter(entry);
    default:
      // The file's validation knows the same types; reaching this is a bug, not a bad file.
      throw new Error(`no adapter for provider type ${entry.type}`);
  }
}

interface ApnsSettings {
  auth:
    | { type: 'token'; key: string; key_id: string; team_id: string }
    | { type: 'certificate'; cert: string; key: string; passphrase?: string };
  apps: { app_id: string; topic?: string; environment: 'production' | 'sandbox' }[];
  endpoint?: { address: string; port: number; ca?: string };
}

function apnsAdapter(entry: ProviderEntry): ProviderAdapter {
  const settings = entry.settings as unknown as ApnsSettings;
  const auth = settings.auth;
  return createApnsAdapter({
    name: entry.name,
    timeoutMs: entry.timeoutMs ?? DEFAULT_PUSH_TIMEOUT_MS,
    auth:
      auth.type === 'token'
        ? { type: 'token', key: auth.key, keyId: auth.key_id, teamId: auth.team_id }
        : { type: 'certificate', cert: auth.cert, key: auth.key, passphrase: auth.passphrase },
    apps: settings.apps.map((app) => ({
      appId: app.app_id,
      topic: app.topic ?? app.app_id,
      environment: app.environment,
    })),
    endpoint: settings.endpoint,
  });
}

interface AwsSettings {
  region: string;
  endpoint?: string;
  access_key_id?: string;
  secret_access_key?: string;
  session_token?: string;
}

/** Region, endpoint and credentials (absent: the AWS default chain) of an AWS provider. */
function awsClientOptions(s: AwsSettings) {
  return {
    region: s.region,
    endpoint: s.endpoint,
    credentials:
      s.access_key_id && s.secret_access_key
        ? {
            accessKeyId: s.access_key_id,
            secretAccessKey: s.secret_access_key,
            sessionToken: s.session_token,
          }
        : undefined,
  };
}

interface SesSettings extends AwsSettings {
  configuration_set?: string;
  from: string;
  reply_to?: string;
}

function sesAdapter(entry: ProviderEntry): ProviderAdapter {
  const s = entry.settings as unknown as SesSettings;
  return createSesAdapter({
    name: entry.name,
    timeoutMs: entry.timeoutMs ?? DEFAULT_EMAIL_TIMEOUT_MS,
    ...awsClientOptions(s),
    configurationSet: s.configuration_set,
    sender: { from: s.from, replyTo: s.reply_to },
  });
}

type PriceSetting = Parameters<typeof smsPricing>[0];

interface TwilioSettings {
  account_sid: string;
  auth_token: string;
  from?: string;
  messaging_service_sid?: string;
  status_callbacks?: boolean;
  api_base?: string;
  price?: PriceSetting;
}

function twilioAdapter(entry: ProviderEntry, deps: ProviderDeps): ProviderAdapter {
  const s = entry.settings as unknown as TwilioSettings;
  const callbacks = (s.status_callbacks ?? true) && deps.publicUrl !== undefined;
  return createTwilioAdapter({
    name: entry.name,
    timeoutMs: entry.timeoutMs ?? DEFAULT_SMS_TIMEOUT_MS,
    accountSid: s.account_sid,
    authToken: s.auth_token,
    from: s.from,
    messagingServiceSid: s.messaging_service_sid,
    statusCallback: callbacks ? `${deps.publicUrl}${TWILIO_STATUS_PATH}` : null,
    apiBase: s.api_base,
    pricing: s.price ? smsPricing(s.price) : undefined,
  });
}

interface SnsSmsSettings extends AwsSettings {
  sms_type?: 'Transactional' | 'Promotional';
  sender_id?: string;
  origination_number?: string;
  check_opt_out?: boolean;
  price?: PriceSetting;
}

function snsSmsAdapter(entry: ProviderEntry): ProviderAdapter {
  const s = entry.settings as unknown as SnsSmsSettings;
  return createSnsSmsAdapter({
    name: entry.name,
    timeoutMs: entry.timeoutMs ?? DEFAULT_SMS_TIMEOUT_MS,
    ...awsClientOptions(s),
    smsType: s.sms_type ?? 'Transactional',
    senderId: s.sender_id,
    originationNumber: s.origination_number,
    checkOptOut: s.check_opt_out ?? false,
    pricing: s.price ? smsPricing(s.price) : undefined,
  });
}

interface SmtpSettings {
  host: string;
  port?: number;
  secure?: boolean;
  require_tls?: boolean;
  username?: string;
  password?: string;
  ca?: string;
  dkim?: { domain: string; selector: string; private_key: string };
  from: string;
  reply_to?: string;
  connections?: number;
}

function smtpAdapter(entry: ProviderEntry, deps: ProviderDeps): ProviderAdapter {
  const s = entry.settings as unknown as SmtpSettings;
  const secure = s.secure ?? false;
  return createSmtpAdapter({
    name: entry.name,
    timeoutMs: entry.timeoutMs ?? DEFAULT_EMAIL_TIMEOUT_MS,
    host: s.host,
    port: s.port ?? (secure ? 465 : 587),
    secure,
    requireTls: s.require_tls ?? true,
    auth: s.username ? { user: s.username, pass: s.password ?? '' } : undefined,
    ca: s.ca,
    dkim: s.dkim
      ? { domainName: s.dkim.domain, keySelector: s.dkim.selector, privateKey: s.dkim.private_key }
      : undefined,
    sender: { from: s.from, replyTo: s.reply_to },
    connections: s.connections ?? Math.min(deps.delivery.concurrency, 10),
  });
}

function fcmAdapter(entry: ProviderEntry, deps: ProviderDeps): ProviderAdapter {
  const settings = entry.settings as unknown as {
    projects: { service_account: string; apps?: string[] }[];
    endpoint?: { address: string; port: number };
  };
  return createFcmAdapter({
    name: entry.name,
    timeoutMs: entry.timeoutMs ?? DEFAULT_PUSH_TIMEOUT_MS,
    projects: settings.projects.map((p) => ({ serviceAccount: p.service_account, apps: p.apps })),
    endpoint: settings.endpoint,
    logger: deps.logger,
  });
}

function webPushAdapter(deps: ProviderDeps, entry: ProviderEntry): ProviderAdapter {
  const settings = entry.settings as {
    vapid_public_key: string;
    vapid_private_key: string;
    subject: string;
    allow_networks?: string[];
    ca?: string;
    connections?: number;
  };
  return createWebPushAdapter({
    name: entry.name,
    timeoutMs: entry.timeoutMs ?? DEFAULT_PUSH_TIMEOUT_MS,
    vapid: {
      subject: settings.subject,
      publicKey: settings.vapid_public_key,
      privateKey: settings.vapid_private_key,
    },
    guard: settings.allow_networks
      ? createAddressGuard([...deps.delivery.webhookAllowNetworks, ...settings.allow_networks])
      : deps.webhookGuard,
    ca: settings.ca,
    connections: settings.connections ?? deps.delivery.concurrency,
  });
}

function webhookAdapter(deps: ProviderDeps, entry: ProviderEntry | null): ProviderAdapter {
  const networks = entry?.settings.allow_networks as string[] | undefined;
  return createWebhookAdapter({
    name: entry?.name ?? 'webhook',
    guard: networks ? createAddressGuard(networks) : deps.webhookGuard,
    timeoutMs: entry?.timeoutMs ?? deps.delivery.webhookTimeoutMs,
    connections: deps.delivery.concurrency,
  });
}

/** The file's per-provider settings around the adapter: rate limit, retry policy and which destinations. */
function configured(entry: ProviderEntry, adapter: ProviderAdapter, deps: ProviderDeps): ProviderAdapter {
  return {
    ...adapter,
    rateLimit: entry.rateLimit ?? undefined,
    retry: entry.retry ? { ...deps.delivery.retry[entry.channel], ...entry.retry } : undefined,
    accepts: (task) => adapter.accepts(task) && providerMatches(entry.match, matchFields(task.destination)),
  };
}

function matchFields(destination: Destination) {
  switch (destination.channel) {
    case 'push':
      return { platform: destination.platform, appId: destination.appId };
    case 'email':
      return { address: destination.address };
    case 'sms':
      return { number: destination.number };
    case 'webhook':
      return {};
  }
}

/**
 * Links in e-mail and SMS (unsubscribe) must reach Herald from anywhere and outlive this process once real
 * messages go out: a real e-mail or SMS provider needs HERALD_PUBLIC_URL and HERALD_LINK_SECRET. Answers the
 * problems (empty when none).
 */
export function linkSettingProblems(
  loaded: { summary: readonly { channel: string; name: string; type: string }[] },
  settings: { publicUrl: string | undefined; linkSecret: string | undefined },
): string[] {
  const real = loaded.summary.filter(
    (p) => (p.channel === 'email' || p.channel === 'sms') && p.type !== 'outbox',
  );
  if (real.length === 0) return [];
  const names = real.map((p) => `${p.channel}: ${p.name}`).join(', ');
  return [
    ...(settings.publicUrl
      ? []
      : [`HERALD_PUBLIC_URL is required with a real e-mail or SMS provider (${names})`]),
    ...(settings.linkSecret
      ? []
      : [`HERALD_LINK_SECRET is required with a real e-mail or SMS provider (${names})`]),
  ];
}
