// The providers file: every problem reported at once, in file order and phrased `<path>: <rule>`; secrets
// resolved through the injected environment and reader, and never shown.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { providerTypes } from '../../src/channels/provider-types.js';
import {
  loadProvidersFile,
  type MatchDestination,
  type ProviderEntry,
  type ProviderMatch,
  type ProvidersFileOptions,
  type ProviderTypes,
  parseProvidersFile,
  providerMatches,
  redactedSettings,
  secret,
} from '../../src/channels/providers-file.js';

/** A reader for tests that expect no file to be read: fails the way fs.readFileSync does. */
function noFiles(path: string): string {
  throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });
}

const defaults: ProvidersFileOptions = { types: providerTypes, env: {}, readFile: noFiles };

function parse(file: unknown, options: Partial<ProvidersFileOptions> = {}) {
  const text = typeof file === 'string' ? file : JSON.stringify(file);
  return parseProvidersFile(text, { ...defaults, ...options });
}

function problemsOf(file: unknown, options: Partial<ProvidersFileOptions> = {}): string[] {
  const result = parse(file, options);
  if (result.ok) throw new Error('expected the file to be refused');
  return result.problems;
}

function entriesOf(file: unknown, options: Partial<ProvidersFileOptions> = {}) {
  const result = parse(file, options);
  if (!result.ok) throw new Error(`expected the file to parse:\n${result.problems.join('\n')}`);
  return result.file.channels;
}

const email = (...providers: unknown[]) => ({ channels: { email: providers } });
const outbox = (fields: Record<string, unknown> = {}) => ({ type: 'outbox', ...fields });

describe('parseProvidersFile', () => {
  it('reads a complete file, defaulting names and mapping every optional field', () => {
    const channels = entriesOf({
      channels: {
        push: [outbox({ name: 'outbox-push', match: { platforms: ['apns', 'fcm'], apps: ['com.example'] } })],
        email: [
          {
            type: 'outbox',
            name: 'outbox-email',
            timeout_ms: 10_000,
            rate_limit: { per_second: 14, burst: 14 },
            retry: {
              attempts: 8,
              base_ms: 5_000,
              max_delay_ms: 3_600_000,
              max_age_ms: 259_200_000,
              retry_after_cap_ms: 3_600_000,
            },
            match: { domains: ['example.com', 'mail.example.org'] },
            settings: {},
          },
        ],
        sms: [outbox({ name: 'outbox-sms', match: { number_prefixes: ['+1', '+44'] } })],
        webhook: [
          {
            type: 'webhook',
            timeout_ms: 15_000,
            rate_limit: { per_second: 0.5, burst: 1 },
            retry: { attempts: 3 },
            settings: { allow_networks: ['10.0.0.0/8', '192.168.1.10', 'fd00::/8', '::1'] },
          },
          outbox({ name: 'outbox-webhook' }),
        ],
      },
    });
    const bare = {
      timeoutMs: null,
      rateLimit: null,
      retry: null,
      match: null,
      settings: {},
      secretPaths: [],
    };
    expect(channels).toEqual({
      push: [
        {
          ...bare,
          channel: 'push',
          index: 0,
          path: 'channels.push[0]',
          type: 'outbox',
          name: 'outbox-push',
          match: { platforms: ['apns', 'fcm'], apps: ['com.example'] },
        },
      ],
      email: [
        {
          channel: 'email',
          index: 0,
          path: 'channels.email[0]',
          type: 'outbox',
          name: 'outbox-email',
          timeoutMs: 10_000,
          rateLimit: { perSecond: 14, burst: 14 },
          retry: {
            maxAttempts: 8,
            baseDelayMs: 5_000,
            maxDelayMs: 3_600_000,
            maxAgeMs: 259_200_000,
            retryAfterCapMs: 3_600_000,
          },
          match: { domains: ['example.com', 'mail.example.org'] },
          settings: {},
          secretPaths: [],
        },
      ],
      sms: [
        {
          ...bare,
          channel: 'sms',
          index: 0,
          path: 'channels.sms[0]',
          type: 'outbox',
          name: 'outbox-sms',
          match: { numberPrefixes: ['+1', '+44'] },
        },
      ],
      webhook: [
        {
          ...bare,
          channel: 'webhook',
          index: 0,
          path: 'channels.webhook[0]',
          type: 'webhook',
          name: 'webhook',
          timeoutMs: 15_000,
          rateLimit: { perSecond: 0.5, burst: 1 },
          retry: { maxAttempts: 3 },
          settings: { allow_networks: ['10.0.0.0/8', '192.168.1.10', 'fd00::/8', '::1'] },
        },
        {
          ...bare,
          channel: 'webhook',
          index: 1,
          path: 'channels.webhook[1]',
          type: 'outbox',
          name: 'outbox-webhook',
        },
      ],
    });
    // Keys left out stay absent, so spreading a partial retry policy over the defaults keeps them.
    expect(Object.keys(channels.webhook?.[0]?.retry ?? {})).toEqual(['maxAttempts']);
  });

  it('accepts a file with no channels, and the same type named apart within a channel', () => {
    expect(entriesOf({ channels: {} })).toEqual({});
    const channels = entriesOf(email(outbox(), outbox({ name: 'outbox-2' })));
    expect(channels.email?.map((entry) => entry.name)).toEqual(['outbox', 'outbox-2']);
  });

  const NAME_RULE = 'must be 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit';

  it.each<[string, unknown, string[]]>([
    ['not JSON', '{"channels": ', ['providers file: not valid JSON (Unexpected end of JSON input)']],
    ['not an object', '[]', ['providers file: must be an object']],
    ['an unknown top-level key', { channels: {}, version: 2 }, ['providers file: unknown key "version"']],
    ['no channels', {}, ['channels: required']],
    ['channels not an object', { channels: [] }, ['channels: must be an object']],
    [
      'in_app',
      { channels: { in_app: [outbox()] } },
      ['channels.in_app: in-app notifications are delivered by Herald itself and take no provider'],
    ],
    [
      'an unknown channel',
      { channels: { fax: [outbox()] } },
      ['channels.fax: unknown channel (use push, email, sms, webhook)'],
    ],
    ['an empty provider list', email(), ['channels.email: must list at least one provider']],
    [
      'providers not a list',
      { channels: { email: outbox() } },
      ['channels.email: must be a list of providers'],
    ],
    [
      '11 providers',
      email(...Array.from({ length: 11 }, (_, i) => outbox({ name: `outbox-${i}` }))),
      ['channels.email: must list at most 10 providers'],
    ],
    ['a provider that is not an object', email('outbox'), ['channels.email[0]: must be an object']],
    ['a missing type', email({ name: 'mail' }), ['channels.email[0].type: required']],
    ['a type that is not a string', email({ type: 7 }), ['channels.email[0].type: must be a string']],
    [
      'an unknown type',
      email({ type: 'sendgrid' }),
      [
        'channels.email[0].type: unknown type "sendgrid" (known: apns, fcm, outbox, ses, smtp, sns, twilio, webhook, webpush)',
      ],
    ],
    [
      'a type named like an Object property',
      email({ type: 'constructor' }),
      [
        'channels.email[0].type: unknown type "constructor" (known: apns, fcm, outbox, ses, smtp, sns, twilio, webhook, webpush)',
      ],
    ],
    [
      'an APNs key id that is not 10 characters, and no apps',
      {
        channels: {
          push: [
            {
              type: 'apns',
              settings: {
                auth: { type: 'token', key: 'k', key_id: 'short', team_id: 'TEAM123456' },
                apps: [],
              },
            },
          ],
        },
      },
      [
        'channels.push[0].settings.auth.key_id: must be the 10-character key id',
        'channels.push[0].settings.apps: must list at least one app',
      ],
    ],
    [
      'an APNs app in an unknown environment',
      {
        channels: {
          push: [
            {
              type: 'apns',
              settings: {
                auth: { type: 'token', key: 'k', key_id: 'KEYID12345', team_id: 'TEAM123456' },
                apps: [{ app_id: 'com.example', environment: 'staging' }],
              },
            },
          ],
        },
      },
      ['channels.push[0].settings.apps[0].environment: must be "production" or "sandbox"'],
    ],
    [
      'a Web Push subject that is neither mailto: nor https',
      {
        channels: {
          push: [
            {
              type: 'webpush',
              settings: {
                vapid_public_key: 'B'.repeat(87),
                vapid_private_key: 'k',
                subject: 'ops@example.com',
              },
            },
          ],
        },
      },
      ['channels.push[0].settings.subject: must be a mailto: address or an https URL'],
    ],
    [
      'an SMTP relay without a sender, on a port out of range',
      email({ type: 'smtp', settings: { host: 'smtp.example.com', port: 70000 } }),
      ['channels.email[0].settings.port: must be 1..65535', 'channels.email[0].settings.from: required'],
    ],
    [
      'an SMTP sender that is not an address',
      email({ type: 'smtp', settings: { host: 'smtp.example.com', from: 'notifications' } }),
      ['channels.email[0].settings.from: must be one address or "Name <address>" on one line'],
    ],
    [
      'a Twilio provider with both a number and a Messaging Service, and a bad account SID',
      {
        channels: {
          sms: [
            {
              type: 'twilio',
              settings: {
                account_sid: 'AC123',
                auth_token: { env: 'TWILIO_AUTH_TOKEN' },
                from: '+15005550006',
                messaging_service_sid: `MG${'0'.repeat(32)}`,
              },
            },
          ],
        },
      },
      [
        'channels.sms[0].settings.account_sid: must be a Twilio account SID (AC…)',
        'channels.sms[0].settings.from: set exactly one of from and messaging_service_sid',
      ],
    ],
    [
      'an SMS price in no currency, negative, for a prefix that is not one',
      {
        channels: {
          sms: [
            {
              type: 'sns',
              settings: {
                region: 'us-east-1',
                price: { currency: 'dollars', per_segment: -1, by_prefix: { '49': 0.08 } },
              },
            },
          ],
        },
      },
      [
        'channels.sms[0].settings.price.currency: must be an ISO 4217 code such as USD',
        'channels.sms[0].settings.price.per_segment: must not be negative',
        'channels.sms[0].settings.price.by_prefix.49: has an invalid key',
      ],
    ],
    [
      'SNS credentials without their secret, and a sender ID too long',
      {
        channels: {
          sms: [
            {
              type: 'sns',
              settings: {
                region: 'us-east-1',
                access_key_id: 'AKIAHERALDTEST000003',
                sender_id: 'ExampleShopLtd',
              },
            },
          ],
        },
      },
      [
        'channels.sms[0].settings.access_key_id: access_key_id and secret_access_key go together',
        'channels.sms[0].settings.sender_id: must be an alphanumeric sender ID',
      ],
    ],
    [
      'an FCM provider without projects',
      { channels: { push: [{ type: 'fcm', settings: { projects: [] } }] } },
      ['channels.push[0].settings.projects: must list at least one project'],
    ],
    [
      'a push type on the e-mail channel',
      { channels: { email: [{ type: 'apns' }] } },
      ['channels.email[0].type: "apns" does not serve email (it serves push)'],
    ],
    [
      'a type that does not serve the channel',
      { channels: { sms: [{ type: 'webhook' }] } },
      ['channels.sms[0].type: "webhook" does not serve sms (it serves webhook)'],
    ],
    ['a bad name', email(outbox({ name: 'Outbox Mail' })), [`channels.email[0].name: ${NAME_RULE}`]],
    ['a name too long', email(outbox({ name: 'a'.repeat(64) })), [`channels.email[0].name: ${NAME_RULE}`]],
    [
      'one name in two channels',
      { channels: { email: [outbox({ name: 'main' })], sms: [outbox({ name: 'main' })] } },
      ['channels.sms[0].name: already used by channels.email[0]'],
    ],
    [
      'two unnamed providers of one type in a channel',
      email(outbox(), outbox()),
      ['channels.email[1]: name defaults to the type "outbox", already used by channels.email[0] (set name)'],
    ],
    [
      'a timeout too short',
      email(outbox({ timeout_ms: 99 })),
      ['channels.email[0].timeout_ms: must be 100..120000'],
    ],
    [
      'a timeout too long',
      email(outbox({ timeout_ms: 120_001 })),
      ['channels.email[0].timeout_ms: must be 100..120000'],
    ],
    [
      'a timeout that is not an integer',
      email(outbox({ timeout_ms: 1500.5 })),
      ['channels.email[0].timeout_ms: must be an integer'],
    ],
    [
      'a timeout that is a string',
      email(outbox({ timeout_ms: '10s' })),
      ['channels.email[0].timeout_ms: must be an integer'],
    ],
    [
      'a rate limit without burst',
      email(outbox({ rate_limit: { per_second: 10 } })),
      ['channels.email[0].rate_limit.burst: required'],
    ],
    [
      'a rate limit of 0 per second',
      email(outbox({ rate_limit: { per_second: 0, burst: 1 } })),
      ['channels.email[0].rate_limit.per_second: must be more than 0 and at most 1000000'],
    ],
    [
      'a rate limit with an unknown key',
      email(outbox({ rate_limit: { per_second: 1, burst: 1, per_minute: 60 } })),
      ['channels.email[0].rate_limit: unknown key "per_minute"'],
    ],
    [
      'a retry with an unknown key',
      email(outbox({ retry: { attempts: 3, jitter: true } })),
      ['channels.email[0].retry: unknown key "jitter"'],
    ],
    [
      'a retry of 0 attempts',
      email(outbox({ retry: { attempts: 0 } })),
      ['channels.email[0].retry.attempts: must be 1..100'],
    ],
    [
      'a retry delay below 0',
      email(outbox({ retry: { base_ms: -1 } })),
      ['channels.email[0].retry.base_ms: must be 0..31536000000'],
    ],
    [
      'a match on a webhook provider',
      { channels: { webhook: [{ type: 'webhook', match: {} }] } },
      ['channels.webhook[0].match: not allowed for webhook providers'],
    ],
    [
      'a bad number prefix',
      { channels: { sms: [outbox({ match: { number_prefixes: ['+1', '44', '+0'] } })] } },
      [
        'channels.sms[0].match.number_prefixes[1]: must be + and 1 to 6 digits, the first not 0',
        'channels.sms[0].match.number_prefixes[2]: must be + and 1 to 6 digits, the first not 0',
      ],
    ],
    [
      'a bad domain',
      email(outbox({ match: { domains: ['Example.com'] } })),
      ['channels.email[0].match.domains[0]: must be a lowercase host name'],
    ],
    [
      'an empty match list',
      email(outbox({ match: { domains: [] } })),
      ['channels.email[0].match.domains: must not be empty'],
    ],
    [
      'an unknown platform',
      { channels: { push: [outbox({ match: { platforms: ['mpns'] } })] } },
      ['channels.push[0].match.platforms[0]: must be one of apns, fcm, webpush'],
    ],
    [
      "another channel's match key",
      email(outbox({ match: { number_prefixes: ['+1'] } })),
      ['channels.email[0].match: unknown key "number_prefixes"'],
    ],
    [
      'webhook allow_networks that are not CIDRs',
      {
        channels: {
          webhook: [{ type: 'webhook', settings: { allow_networks: ['10.0.0.0/33', 'intranet'] } }],
        },
      },
      [
        'channels.webhook[0].settings.allow_networks[0]: must be an address or CIDR',
        'channels.webhook[0].settings.allow_networks[1]: must be an address or CIDR',
      ],
    ],
    [
      'an unknown outbox setting',
      email(outbox({ settings: { from: 'herald@example.com' } })),
      ['channels.email[0].settings: unknown key "from"'],
    ],
    [
      'settings not an object',
      email(outbox({ settings: [] })),
      ['channels.email[0].settings: must be an object'],
    ],
    [
      'an unknown provider key',
      email(outbox({ priority: 1 })),
      ['channels.email[0]: unknown key "priority"'],
    ],
  ])('refuses %s', (_name, file, expected) => {
    expect(problemsOf(file)).toEqual(expected);
  });

  it('reports every problem of a file, in file order', () => {
    const file = {
      channels: {
        email: [
          { name: 'Bad Name', type: 'outbox', timeout_ms: 5 },
          { type: 'outbox', retry: { attempts: 0 }, colour: 'red' },
        ],
        fax: [],
        sms: [{ type: 'webhook', settings: { verbose: true } }, { name: 'outbox' }],
      },
      extra: true,
    };
    expect(problemsOf(file)).toEqual([
      `channels.email[0].name: ${NAME_RULE}`,
      'channels.email[0].timeout_ms: must be 100..120000',
      'channels.email[1].retry.attempts: must be 1..100',
      'channels.email[1]: unknown key "colour"',
      'channels.fax: unknown channel (use push, email, sms, webhook)',
      'channels.sms[0].type: "webhook" does not serve sms (it serves webhook)',
      'channels.sms[1].name: already used by channels.email[1]',
      'channels.sms[1].type: required',
      'providers file: unknown key "extra"',
    ]);
  });

  it('never quotes the text around a JSON syntax error', () => {
    expect(problemsOf('{"channels": {"email": [{"type": outbox}]}}')).toEqual([
      'providers file: not valid JSON (Unexpected token)',
    ]);
  });
});

describe('secrets', () => {
  const SECRET = 'Hunter2 correct horse!';
  const smtpTest = z.strictObject({
    host: z.string().min(1),
    port: z.int().min(1, 'must be 1..65535').max(65535, 'must be 1..65535'),
    password: secret(),
  });
  const nestedTest = z.strictObject({
    auth: z.strictObject({ user: z.string(), key: secret() }),
    keys: z.array(secret()).optional(),
  });
  const types: ProviderTypes = {
    ...providerTypes,
    'smtp-test': { channels: ['email'], settings: smtpTest },
    'nested-test': { channels: ['email'], settings: nestedTest },
  };
  let dir = '';
  const readFile = (path: string) => readFileSync(path, 'utf8');

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-providers-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const smtpFile = (password: unknown, settings: Record<string, unknown> = {}) =>
    email({ type: 'smtp-test', settings: { host: 'mail.example.com', port: 587, password, ...settings } });

  function smtpEntry(password: unknown, env: Record<string, string | undefined> = {}): ProviderEntry {
    const entry = entriesOf(smtpFile(password), { types, env, readFile }).email?.[0];
    if (!entry) throw new Error('no entry');
    return entry;
  }

  function secretFile(name: string, content: string): string {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  }

  it('resolves an environment reference', () => {
    const entry = smtpEntry({ env: 'SMTP_PASSWORD' }, { SMTP_PASSWORD: SECRET });
    expect(entry.settings).toEqual({ host: 'mail.example.com', port: 587, password: SECRET });
    expect(entry.secretPaths).toEqual(['password']);
  });

  it.each([
    ['\\n', `${SECRET}\n`, SECRET],
    ['\\r\\n', `${SECRET}\r\n`, SECRET],
    ['only one newline of two', `${SECRET}\n\n`, `${SECRET}\n`],
    ['no newline', SECRET, SECRET],
  ])('resolves a file reference, trimming %s', (_name, content, expected) => {
    const path = secretFile('password', content);
    expect(smtpEntry({ file: path }).settings.password).toBe(expected);
  });

  it('accepts an inline secret', () => {
    const entry = smtpEntry(SECRET);
    expect(entry.settings.password).toBe(SECRET);
    expect(entry.secretPaths).toEqual(['password']);
  });

  it('redacts every secret, nested ones included', () => {
    const entry = smtpEntry({ env: 'SMTP_PASSWORD' }, { SMTP_PASSWORD: SECRET });
    expect(redactedSettings(entry)).toEqual({ host: 'mail.example.com', port: 587, password: '[secret]' });
    expect(JSON.stringify(redactedSettings(entry))).not.toContain(SECRET);
    expect(entry.settings.password).toBe(SECRET);

    const nested = entriesOf(
      email({
        type: 'nested-test',
        settings: { auth: { user: 'herald', key: SECRET }, keys: ['one', 'two'] },
      }),
      { types },
    ).email?.[0];
    expect(nested?.secretPaths).toEqual(['auth.key', 'keys[0]', 'keys[1]']);
    expect(nested && redactedSettings(nested)).toEqual({
      auth: { user: 'herald', key: '[secret]' },
      keys: ['[secret]', '[secret]'],
    });
  });

  it.each<[string, unknown, Record<string, string | undefined>, string]>([
    [
      'a variable that is not set',
      { env: 'SMTP_PASSWORD' },
      {},
      'channels.email[0].settings.password: environment variable SMTP_PASSWORD is not set',
    ],
    [
      'a variable that is empty',
      { env: 'SMTP_PASSWORD' },
      { SMTP_PASSWORD: '' },
      'channels.email[0].settings.password: environment variable SMTP_PASSWORD is not set',
    ],
    [
      'a bad variable name',
      { env: '1PASSWORD' },
      {},
      'channels.email[0].settings.password.env: must be an environment variable name',
    ],
    [
      'a relative file path',
      { file: 'secrets/password' },
      {},
      'channels.email[0].settings.password.file: must be an absolute path',
    ],
    ['an empty inline secret', '', {}, 'channels.email[0].settings.password: must not be empty'],
    [
      'a reference of neither kind',
      { vault: 'smtp' },
      {},
      'channels.email[0].settings.password: must be a string, {"env": "NAME"} or {"file": "/absolute/path"}',
    ],
    [
      'a reference with an extra key',
      { env: 'SMTP_PASSWORD', file: '/run/secrets/password' },
      {},
      'channels.email[0].settings.password: must be a string, {"env": "NAME"} or {"file": "/absolute/path"}',
    ],
  ])('refuses %s', (_name, password, env, expected) => {
    expect(problemsOf(smtpFile(password), { types, env, readFile })).toEqual([expected]);
  });

  it('names an unreadable file and its error code', () => {
    const path = join(dir, 'missing');
    expect(problemsOf(smtpFile({ file: path }), { types, readFile })).toEqual([
      `channels.email[0].settings.password: cannot read ${path} (ENOENT)`,
    ]);
  });

  it('refuses an empty secret file', () => {
    const path = secretFile('empty', '\n');
    expect(problemsOf(smtpFile({ file: path }), { types, readFile })).toEqual([
      `channels.email[0].settings.password: ${path} is empty`,
    ]);
  });

  it('reports a wrong port with the schema message', () => {
    expect(problemsOf(smtpFile(SECRET, { port: 70_000 }), { types })).toEqual([
      'channels.email[0].settings.port: must be 1..65535',
    ]);
  });

  it('reports every settings problem and resolves secrets only once the settings are valid', () => {
    expect(
      problemsOf(
        email({ type: 'smtp-test', settings: { port: 0, password: { env: 'UNSET' }, tls: true } }, outbox()),
        { types },
      ),
    ).toEqual([
      'channels.email[0].settings.port: must be 1..65535',
      'channels.email[0].settings: unknown key "tls"',
      'channels.email[0].settings.host: required',
    ]);
  });

  it('keeps the secret out of every problem, even when other settings are invalid', () => {
    const path = secretFile('leak', `${SECRET}\n`);
    const env = { SMTP_PASSWORD: SECRET };
    const files: unknown[] = [
      smtpFile(SECRET, { port: 0 }),
      smtpFile(SECRET, { host: 7, tls: SECRET }),
      smtpFile({ env: 'SMTP_PASSWORD' }, { port: 'x' }),
      smtpFile({ file: path }, { host: '' }),
      smtpFile(SECRET, { [SECRET.replace(/\W/g, '')]: 1, port: 1.5 }),
      email({ type: 'smtp-test', name: SECRET, timeout_ms: SECRET, settings: { password: SECRET } }),
      email({ type: 'smtp-test', settings: { host: SECRET, port: SECRET, password: [SECRET] } }),
      email({ type: 'smtp-test', settings: { host: 'h', port: 1, password: { env: SECRET } } }),
      email({ type: 'smtp-test', settings: { host: 'h', port: 1, password: { file: SECRET } } }),
      `{"channels": {"email": [{"type": "smtp-test", "settings": {"password": ${SECRET}}}]}}`,
      `{"channels": {"email": [{"type": "smtp-test", "settings": {"password": "${SECRET}" x}}]}}`,
    ];
    for (const file of files) {
      const problems = problemsOf(file, { types, env, readFile });
      expect(problems.length).toBeGreaterThan(0);
      for (const problem of problems) expect(problem).not.toContain(SECRET);
    }
    const entry = smtpEntry({ file: path });
    expect(JSON.stringify(redactedSettings(entry))).not.toContain(SECRET);
  });
});

describe('loadProvidersFile', () => {
  it('reads the file through the injected reader', () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-providers-'));
    try {
      const path = join(dir, 'providers.json');
      writeFileSync(path, JSON.stringify(email(outbox())));
      const result = loadProvidersFile(path, { ...defaults, readFile: (p) => readFileSync(p, 'utf8') });
      expect(result.ok && result.file.channels.email?.[0]?.name).toBe('outbox');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports an unreadable file with its error code', () => {
    expect(loadProvidersFile('/etc/herald/providers.json', defaults)).toEqual({
      ok: false,
      problems: ['providers file: cannot read /etc/herald/providers.json (ENOENT)'],
    });
  });
});

describe('providerMatches', () => {
  it.each<[string, ProviderMatch | null, MatchDestination, boolean]>([
    ['no match takes everything', null, {}, true],
    ['an empty match takes everything', {}, { platform: 'fcm' }, true],
    ['a listed platform', { platforms: ['apns'] }, { platform: 'apns' }, true],
    ['an unlisted platform', { platforms: ['apns'] }, { platform: 'fcm' }, false],
    ['no platform against a platform list', { platforms: ['apns'] }, {}, false],
    ['a listed app', { apps: ['com.example'] }, { platform: 'fcm', appId: 'com.example' }, true],
    ['a null app against an app list', { apps: ['com.example'] }, { appId: null }, false],
    [
      'both lists must admit',
      { platforms: ['apns'], apps: ['com.example'] },
      { platform: 'apns', appId: 'com.other' },
      false,
    ],
    ['a domain, compared lowercase', { domains: ['example.com'] }, { address: 'Jane@Example.COM' }, true],
    ['the part after the last @', { domains: ['example.com'] }, { address: '"a@b"@example.com' }, true],
    [
      'a subdomain is another domain',
      { domains: ['example.com'] },
      { address: 'jane@mail.example.com' },
      false,
    ],
    ['an address without @', { domains: ['example.com'] }, { address: 'example.com' }, false],
    ['a number by prefix', { numberPrefixes: ['+44', '+1'] }, { number: '+14155550100' }, true],
    ['a number with another prefix', { numberPrefixes: ['+1'] }, { number: '+447700900000' }, false],
    ['no number against prefixes', { numberPrefixes: ['+1'] }, {}, false],
  ])('%s', (_name, match, destination, expected) => {
    expect(providerMatches(match, destination)).toBe(expected);
  });
});
