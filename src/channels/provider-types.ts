// The provider types a providers file may name as `type`: which channels each serves and how its `settings`
// are checked. Adding a provider type is adding an entry here.
import net from 'node:net';
import { z } from 'zod';
import { SENDER_RULE, senderProblem } from './email/sender.js';
import { intBetween, type ProviderTypes, secret } from './providers-file.js';

/** An address (a network of its own) or a CIDR whose prefix length fits the address family. */
export function isAddressOrCidr(text: string): boolean {
  const [address, prefix, ...rest] = text.split('/');
  const family = net.isIP(address ?? '');
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 6 ? 128 : 32);
}

const allowNetworks = z.array(z.string().refine(isAddressOrCidr, 'must be an address or CIDR')).optional();

const webhookSettings = z.strictObject({
  // Networks this provider's endpoints may resolve to although they are not global addresses.
  allow_networks: allowNetworks,
});

/** A VAPID public key: an uncompressed P-256 point, base64url (87 characters). */
const VAPID_PUBLIC_KEY = /^[A-Za-z0-9_-]{86,87}$/;

const webPushSettings = z.strictObject({
  vapid_public_key: z
    .string({ error: 'required' })
    .regex(VAPID_PUBLIC_KEY, 'must be a VAPID public key (base64url, as `herald keys vapid` prints)'),
  vapid_private_key: secret(),
  // Who runs this sender, for push services to contact: mailto: or an https URL.
  subject: z
    .string({ error: 'required' })
    .regex(/^(mailto:[^\s@]+@[^\s@]+|https:\/\/\S+)$/, 'must be a mailto: address or an https URL'),
  // Push services on networks that are not global addresses (a private push service, or a test emulator).
  allow_networks: allowNetworks,
  // An extra certificate authority to trust, PEM (a private push service); usually from a file.
  ca: secret().optional(),
  connections: intBetween(1, 1000).optional(),
});

// The outbox keeps messages in Herald's own table instead of sending them: there is nothing to configure.
const outboxSettings = z.strictObject({});

/** A host (for a proxy or a test emulator) instead of the provider's own. */
const endpointOverride = z.strictObject({
  address: z.string({ error: 'required' }).min(1, 'required'),
  port: intBetween(1, 65535),
  // The certificate authority to trust for it, PEM; usually {"file": ...}.
  ca: secret().optional(),
});

const apnsSettings = z.strictObject({
  auth: z.discriminatedUnion(
    'type',
    [
      z.strictObject({
        type: z.literal('token'),
        // The .p8 key's contents (PEM); usually {"file": "/run/secrets/AuthKey_ABC123DEFG.p8"}.
        key: secret(),
        key_id: z.string({ error: 'required' }).regex(/^[A-Z0-9]{10}$/, 'must be the 10-character key id'),
        team_id: z.string({ error: 'required' }).regex(/^[A-Z0-9]{10}$/, 'must be the 10-character team id'),
      }),
      z.strictObject({
        type: z.literal('certificate'),
        cert: secret(),
        key: secret(),
        passphrase: secret().optional(),
      }),
    ],
    { error: 'must be {"type": "token", ...} or {"type": "certificate", ...}' },
  ),
  apps: z
    .array(
      z.strictObject({
        // The app id tokens are registered with (RegisterToken.app_id).
        app_id: z.string({ error: 'required' }).min(1, 'required').max(255, 'must be at most 255 characters'),
        // The bundle id; default: app_id.
        topic: z.string().min(1).max(255).optional(),
        environment: z.enum(['production', 'sandbox'], { error: 'must be "production" or "sandbox"' }),
      }),
    )
    .min(1, 'must list at least one app'),
  endpoint: endpointOverride.optional(),
});

/** A Google service account key, JSON with the fields FCM needs (validated when the file is loaded). */
const fcmSettings = z.strictObject({
  projects: z
    .array(
      z.strictObject({
        // The service account key file's contents; usually {"file": "/run/secrets/firebase-<project>.json"}.
        service_account: secret(),
        // App ids (RegisterToken.app_id) whose tokens belong to this project; absent: all the others.
        apps: z
          .array(z.string().min(1).max(255))
          .min(1, 'must list at least one app when present')
          .optional(),
      }),
    )
    .min(1, 'must list at least one project'),
  // Every Google connection to this plain-TCP host instead (a test emulator); no ca: the agent speaks plain TCP.
  endpoint: z
    .strictObject({ address: z.string({ error: 'required' }).min(1, 'required'), port: intBetween(1, 65535) })
    .optional(),
});

const mailbox = () =>
  z.string({ error: 'required' }).refine((value) => senderProblem(value) === undefined, SENDER_RULE);

const smtpSettings = z.strictObject({
  host: z.string({ error: 'required' }).min(1, 'required').max(255, 'must be at most 255 characters'),
  port: intBetween(1, 65535).optional(),
  // TLS from the first byte (port 465); otherwise STARTTLS, required unless require_tls is false.
  secure: z.boolean({ error: 'must be true or false' }).optional(),
  require_tls: z.boolean({ error: 'must be true or false' }).optional(),
  username: z.string().min(1).max(255).optional(),
  password: secret().optional(),
  // An extra certificate authority to trust, PEM (a private relay); usually {"file": ...}.
  ca: secret().optional(),
  dkim: z
    .strictObject({
      domain: z.string({ error: 'required' }).regex(/^[a-z0-9.-]+\.[a-z]{2,}$/i, 'must be a domain name'),
      selector: z.string({ error: 'required' }).regex(/^[a-z0-9._-]+$/i, 'must be a DKIM selector'),
      private_key: secret(),
    })
    .optional(),
  from: mailbox(),
  reply_to: mailbox().optional(),
  connections: intBetween(1, 100).optional(),
});

/** An AWS region, credentials (both or neither: neither is the default chain) and another endpoint. */
const awsFields = {
  region: z
    .string({ error: 'required' })
    .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region such as eu-west-1'),
  // Another endpoint: a VPC endpoint, or a test emulator.
  endpoint: z.url({ error: 'must be a URL' }).optional(),
  access_key_id: z.string().min(16, 'must be an access key id').max(128).optional(),
  secret_access_key: secret().optional(),
  session_token: secret().optional(),
};
const awsCredentialsPaired = {
  check: (s: { access_key_id?: string | undefined; secret_access_key?: string | undefined }) =>
    (s.access_key_id === undefined) === (s.secret_access_key === undefined),
  rule: { message: 'access_key_id and secret_access_key go together', path: ['access_key_id'] },
};

const sesSettings = z
  .strictObject({
    ...awsFields,
    configuration_set: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a configuration set name')
      .optional(),
    from: mailbox(),
    reply_to: mailbox().optional(),
  })
  .refine(awsCredentialsPaired.check, awsCredentialsPaired.rule);

const E164 = /^\+[1-9]\d{1,14}$/;
/** An estimated price per SMS segment, optionally per number prefix, for herald_sms_cost_total. */
const smsPrice = z
  .strictObject({
    currency: z.string({ error: 'required' }).regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as USD'),
    per_segment: z.number({ error: 'must be a number' }).nonnegative('must not be negative').optional(),
    by_prefix: z
      .record(
        z.string().regex(/^\+[1-9]\d{0,14}$/, 'must be a number prefix such as +49'),
        z.number({ error: 'must be a number' }).nonnegative('must not be negative'),
      )
      .optional(),
  })
  .optional();

const twilioSettings = z
  .strictObject({
    account_sid: z
      .string({ error: 'required' })
      .regex(/^AC[0-9a-f]{32}$/, 'must be a Twilio account SID (AC…)'),
    auth_token: secret(),
    // A number (E.164), a short code, or an alphanumeric sender ID; or a Messaging Service instead.
    from: z
      .string()
      .regex(
        /^(\+[1-9]\d{1,14}|\d{3,8}|(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11})$/,
        'must be an E.164 number, a short code or an alphanumeric sender ID',
      )
      .optional(),
    messaging_service_sid: z
      .string()
      .regex(/^MG[0-9a-f]{32}$/, 'must be a Messaging Service SID (MG…)')
      .optional(),
    // Delivery reports to /webhooks/twilio/status (needs HERALD_PUBLIC_URL); on unless false.
    status_callbacks: z.boolean({ error: 'must be true or false' }).optional(),
    // Another API base than https://api.twilio.com: a test emulator.
    api_base: z.url({ error: 'must be a URL' }).optional(),
    price: smsPrice,
  })
  .refine((s) => (s.from === undefined) !== (s.messaging_service_sid === undefined), {
    message: 'set exactly one of from and messaging_service_sid',
    path: ['from'],
  });

const snsSmsSettings = z
  .strictObject({
    ...awsFields,
    sms_type: z
      .enum(['Transactional', 'Promotional'], { error: 'must be Transactional or Promotional' })
      .optional(),
    sender_id: z
      .string()
      .regex(/^(?=.*[A-Za-z])[A-Za-z0-9-]{1,11}$/, 'must be an alphanumeric sender ID')
      .optional(),
    origination_number: z.string().regex(E164, 'must be an E.164 number').optional(),
    // Ask SNS whether the number opted out of the account's SMS before each Publish.
    check_opt_out: z.boolean({ error: 'must be true or false' }).optional(),
    price: smsPrice,
  })
  .refine(awsCredentialsPaired.check, awsCredentialsPaired.rule);

export const providerTypes: ProviderTypes = {
  webhook: { channels: ['webhook'], settings: webhookSettings },
  outbox: { channels: ['push', 'email', 'sms', 'webhook'], settings: outboxSettings },
  webpush: { channels: ['push'], settings: webPushSettings },
  apns: { channels: ['push'], settings: apnsSettings },
  fcm: { channels: ['push'], settings: fcmSettings },
  smtp: { channels: ['email'], settings: smtpSettings },
  ses: { channels: ['email'], settings: sesSettings },
  twilio: { channels: ['sms'], settings: twilioSettings },
  sns: { channels: ['sms'], settings: snsSmsSettings },
};
