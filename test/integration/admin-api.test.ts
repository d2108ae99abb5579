// AdminService (routing rules, templates, webhook endpoints, replay) and CancelNotification, on the wire:
// every request is validated whole before anything is written, webhook URLs pass the SSRF guard at
// creation, only admin keys may configure, and each resource round-trips. Runs on every available engine.
import type { MessageInitShape } from '@bufbuild/protobuf';
import { toJsonString } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type AdminServiceClient,
  Channel,
  createHeraldAdminClient,
  DeliveryStatus,
  EscalationCondition,
  ListWebhookEndpointsResponseSchema,
  type NotificationServiceClient,
  type RoutingStepSchema,
} from '../../clients/node/index.js';
import { engines } from '../support/engines.js';
import { rejection } from '../support/errors.js';
import { rowCounts } from '../support/rows.js';
import { startTestServer, type TestServer } from '../support/server.js';

type StepInit = MessageInitShape<typeof RoutingStepSchema>;

const SETTINGS = { HERALD_WEBHOOK_ALLOW_NETWORKS: '127.0.0.1/32' };
/** Inside the allow-list, and nothing listens on the discard port: no test here ever sends to it. */
const ALLOWED_URL = 'http://127.0.0.1:9/hooks';
const UNKNOWN_UUID = '0190a5c4-0000-7000-8000-000000000000';
const HOUR_SECONDS = 3600;
const WEEK_SECONDS = 7 * 24 * HOUR_SECONDS;

const step = (channels: Channel[], delaySeconds = 0, cancelUnless = EscalationCondition.UNSPECIFIED) => ({
  channels,
  delaySeconds,
  cancelUnless,
});
const rule = (steps: StepInit[]) => ({ rule: { type: 'bad.rule', steps } });
const template = (overrides: { locale?: string; body?: string } = {}) => ({
  template: { type: 'bad.template', channel: Channel.EMAIL, locale: 'default', body: 'Hi', ...overrides },
});

/** What a bad-input case may call: the admin-keyed clients and an existing endpoint to aim updates at. */
interface Subject {
  admin: AdminServiceClient;
  herald: NotificationServiceClient;
  endpointId: string;
}

// [case, the call, how the error message must begin: the field it names, then the rule it broke]
const invalidRequests: [string, (s: Subject) => Promise<unknown>, string][] = [
  ['PutRoutingRule without a rule', (s) => s.admin.putRoutingRule({}), 'rule: is required'],
  [
    'PutRoutingRule with a bad type',
    (s) => s.admin.putRoutingRule({ rule: { type: 'a b', steps: [step([Channel.IN_APP])] } }),
    'rule.type: must be 1..128 characters',
  ],
  ['PutRoutingRule with zero steps', (s) => s.admin.putRoutingRule(rule([])), 'rule.steps: must hold 1..10'],
  [
    'PutRoutingRule with 11 steps',
    (s) => s.admin.putRoutingRule(rule(Array.from({ length: 11 }, (_, i) => step([Channel.IN_APP], i * 60)))),
    'rule.steps: must hold 1..10',
  ],
  [
    'PutRoutingRule with a step without channels',
    (s) => s.admin.putRoutingRule(rule([step([])])),
    'rule.steps[0].channels: must name at least one channel',
  ],
  [
    'PutRoutingRule with an unknown channel',
    (s) => s.admin.putRoutingRule(rule([step([Channel.IN_APP]), step([99 as Channel], 60)])),
    'rule.steps[1].channels[0]: must be IN_APP, PUSH, EMAIL, SMS or WEBHOOK',
  ],
  [
    'PutRoutingRule with an unspecified channel',
    (s) => s.admin.putRoutingRule(rule([step([Channel.IN_APP, Channel.UNSPECIFIED])])),
    'rule.steps[0].channels[1]: must be IN_APP',
  ],
  [
    'PutRoutingRule naming a channel twice in a step',
    (s) => s.admin.putRoutingRule(rule([step([Channel.EMAIL, Channel.EMAIL])])),
    'rule.steps[0].channels: names a channel twice',
  ],
  [
    'PutRoutingRule with an e-mail sender that is no address',
    (s) =>
      s.admin.putRoutingRule({
        rule: { type: 'bad.rule', steps: [step([Channel.EMAIL])], emailSender: { from: 'Billing' } },
      }),
    'rule.email_sender.from: must be one address or "Name <address>" on one line',
  ],
  [
    'PutRoutingRule with a sender that is a list of addresses',
    (s) =>
      s.admin.putRoutingRule({
        rule: {
          type: 'bad.rule',
          steps: [step([Channel.EMAIL])],
          emailSender: { from: 'a@evil.example, Billing <billing@example.com>' },
        },
      }),
    'rule.email_sender.from: must be one address or "Name <address>" on one line',
  ],
  [
    'PutRoutingRule with a sender that is a group',
    (s) =>
      s.admin.putRoutingRule({
        rule: {
          type: 'bad.rule',
          steps: [step([Channel.EMAIL])],
          emailSender: { from: 'Bcc: evil@x.example; <b@example.com>' },
        },
      }),
    'rule.email_sender.from: must be one address or "Name <address>" on one line',
  ],
  [
    'PutRoutingRule with a line break in the display name',
    (s) =>
      s.admin.putRoutingRule({
        rule: {
          type: 'bad.rule',
          steps: [step([Channel.EMAIL])],
          emailSender: { from: 'Billing\u2028Bcc: x <b@example.com>' },
        },
      }),
    'rule.email_sender.from: must be one address or "Name <address>" on one line',
  ],
  [
    'PutRoutingRule with a reply-to that smuggles a header',
    (s) =>
      s.admin.putRoutingRule({
        rule: {
          type: 'bad.rule',
          steps: [step([Channel.EMAIL])],
          emailSender: { replyTo: 'a@example.com\r\nBcc: all@example.com' },
        },
      }),
    'rule.email_sender.reply_to: must be one address or "Name <address>" on one line',
  ],
  [
    'PutRoutingRule with more SMS segments than a message may have',
    (s) =>
      s.admin.putRoutingRule({
        rule: { type: 'bad.rule', steps: [step([Channel.SMS])], smsMaxSegments: 11 },
      }),
    'rule.sms_max_segments: must be 1..10 (0: 1)',
  ],
  [
    'PutRoutingRule with a negative delay',
    (s) => s.admin.putRoutingRule(rule([step([Channel.IN_APP]), step([Channel.EMAIL], -5)])),
    'rule.steps[1].delay_seconds: must be 0..2592000',
  ],
  [
    'PutRoutingRule with a delay over 30 days',
    (s) => s.admin.putRoutingRule(rule([step([Channel.IN_APP]), step([Channel.EMAIL], 2_592_001)])),
    'rule.steps[1].delay_seconds: must be 0..2592000',
  ],
  [
    'PutRoutingRule whose first step has a delay',
    (s) => s.admin.putRoutingRule(rule([step([Channel.IN_APP], 60)])),
    'rule.steps[0].delay_seconds: must be 0: the first step is sent at once',
  ],
  [
    'PutRoutingRule with decreasing delays',
    (s) =>
      s.admin.putRoutingRule(
        rule([step([Channel.IN_APP]), step([Channel.EMAIL], 600), step([Channel.SMS], 300)]),
      ),
    "rule.steps[2].delay_seconds: must not be smaller than the previous step's",
  ],
  [
    'PutRoutingRule with a condition on the first step',
    (s) => s.admin.putRoutingRule(rule([step([Channel.IN_APP], 0, EscalationCondition.READ)])),
    'rule.steps[0].cancel_unless: must be unset: the first step is sent at once',
  ],
  [
    'PutRoutingRule with an unknown condition',
    (s) =>
      s.admin.putRoutingRule(
        rule([step([Channel.IN_APP]), step([Channel.EMAIL], 60, 7 as EscalationCondition)]),
      ),
    'rule.steps[1].cancel_unless: is not a known condition',
  ],
  ['GetRoutingRule with a bad type', (s) => s.admin.getRoutingRule({ type: '' }), 'type: is required'],
  ['DeleteRoutingRule with a bad type', (s) => s.admin.deleteRoutingRule({ type: 'a/b' }), 'type: must be'],
  ['PutTemplate without a template', (s) => s.admin.putTemplate({}), 'template: is required'],
  [
    'PutTemplate with a bad locale',
    (s) => s.admin.putTemplate(template({ locale: 'not a locale!' })),
    'template.locale: must be a BCP 47 language tag such as de-AT, or "default"',
  ],
  [
    'PutTemplate with an empty body',
    (s) => s.admin.putTemplate(template({ body: '' })),
    'template.body: must be 1..65536 characters',
  ],
  [
    'PutTemplate with a body over 64 KiB',
    (s) => s.admin.putTemplate(template({ body: 'x'.repeat(64 * 1024 + 1) })),
    'template.body: must be 1..65536 characters',
  ],
  [
    'PutTemplate with broken Liquid syntax',
    (s) => s.admin.putTemplate(template({ body: '{% if %}yes{% endif %}' })),
    'template.body: template: invalid value expression',
  ],
  [
    'PutTemplate with an unknown filter',
    (s) => s.admin.putTemplate(template({ body: '{{ data.name | shout }}' })),
    'template.body: template: undefined filter: shout',
  ],
  [
    'PutTemplate with an unspecified channel',
    (s) => s.admin.putTemplate({ template: { ...template().template, channel: Channel.UNSPECIFIED } }),
    'template.channel: must be IN_APP',
  ],
  ['ListTemplates with a bad type', (s) => s.admin.listTemplates({ type: 'a b' }), 'type: must be'],
  [
    'DeleteTemplate with a bad channel',
    (s) => s.admin.deleteTemplate({ type: 'bad.template', channel: 99 as Channel, locale: 'default' }),
    'channel: must be IN_APP',
  ],
  [
    'PreviewTemplate with a bad type',
    (s) => s.admin.previewTemplate({ type: '', channel: Channel.EMAIL, body: 'Hi' }),
    'type: is required',
  ],
  [
    'PreviewTemplate with broken inline Liquid',
    (s) => s.admin.previewTemplate({ type: 'bad.preview', channel: Channel.EMAIL, body: '{% if %}' }),
    'body: template: invalid value expression',
  ],
  [
    'CreateWebhookEndpoint with something that is not a URL',
    (s) => s.admin.createWebhookEndpoint({ url: 'not a url' }),
    'url: must be an absolute http(s) URL',
  ],
  [
    'CreateWebhookEndpoint with an ftp:// URL',
    (s) => s.admin.createWebhookEndpoint({ url: 'ftp://127.0.0.1/hooks' }),
    'url: must be an http or https URL',
  ],
  [
    'CreateWebhookEndpoint with credentials in the URL',
    (s) => s.admin.createWebhookEndpoint({ url: 'http://user:secret@127.0.0.1:9/hooks' }),
    'url: must not carry credentials',
  ],
  [
    'CreateWebhookEndpoint with a URL over 2048 characters',
    (s) => s.admin.createWebhookEndpoint({ url: `${ALLOWED_URL}/${'a'.repeat(2048)}` }),
    'url: must be 1..2048 characters',
  ],
  [
    'CreateWebhookEndpoint with a bad event type pattern',
    (s) => s.admin.createWebhookEndpoint({ url: ALLOWED_URL, eventTypes: ['order shipped'] }),
    'event_types[0]: must be a type ([A-Za-z0-9._:@-]) or a prefix pattern like order.*',
  ],
  [
    'CreateWebhookEndpoint with a wildcard in the middle of a pattern',
    (s) => s.admin.createWebhookEndpoint({ url: ALLOWED_URL, eventTypes: ['order.*', 'order.*.x'] }),
    'event_types[1]: must be a type',
  ],
  [
    'CreateWebhookEndpoint with 101 event types',
    (s) =>
      s.admin.createWebhookEndpoint({
        url: ALLOWED_URL,
        eventTypes: Array.from({ length: 101 }, (_, i) => `type.${i}`),
      }),
    'event_types: must hold at most 100 entries',
  ],
  [
    'CreateWebhookEndpoint with a NUL in the description',
    (s) => s.admin.createWebhookEndpoint({ url: ALLOWED_URL, description: 'a\u0000b' }),
    'description: must not contain NUL characters',
  ],
  [
    'UpdateWebhookEndpoint with a bad id',
    (s) => s.admin.updateWebhookEndpoint({ id: 'not-a-uuid', description: 'x' }),
    'id: must be a UUID',
  ],
  [
    'UpdateWebhookEndpoint with event_types but without replace_event_types',
    (s) => s.admin.updateWebhookEndpoint({ id: s.endpointId, eventTypes: ['order.*'] }),
    'event_types: is only read with replace_event_types = true',
  ],
  [
    'UpdateWebhookEndpoint to a refused URL',
    (s) => s.admin.updateWebhookEndpoint({ id: s.endpointId, url: 'http://10.0.0.1/' }),
    'url: is refused',
  ],
  [
    'DeleteWebhookEndpoint with a bad id',
    (s) => s.admin.deleteWebhookEndpoint({ id: 'not-a-uuid' }),
    'id: must be a UUID',
  ],
  [
    'RotateWebhookSecret with a bad id',
    (s) => s.admin.rotateWebhookSecret({ id: 'not-a-uuid' }),
    'id: must be a UUID',
  ],
  [
    'RotateWebhookSecret with an overlap over 7 days',
    (s) => s.admin.rotateWebhookSecret({ id: s.endpointId, overlapSeconds: WEEK_SECONDS + 1 }),
    'overlap_seconds: must be 0..604800',
  ],
  [
    'RotateWebhookSecret with a negative overlap',
    (s) => s.admin.rotateWebhookSecret({ id: s.endpointId, overlapSeconds: -1 }),
    'overlap_seconds: must be 0..604800',
  ],
  [
    'ReplayDelivery with an id that is not a UUID',
    (s) => s.admin.replayDelivery({ deliveryId: 'delivery-1' }),
    'delivery_id: must be a UUID',
  ],
  [
    'CancelNotification with an id that is not a UUID',
    (s) => s.herald.cancelNotification({ notificationId: 'notification-1' }),
    'notification_id: must be a UUID',
  ],
];

// Each is refused by the SSRF guard although the allow-list holds 127.0.0.1/32.
const refusedUrls: [string, string][] = [
  ['a private IPv4 address', 'http://10.0.0.1/'],
  ['the cloud metadata address', 'http://169.254.169.254/latest/meta-data'],
  ['IPv6 loopback', 'http://[::1]:8080/'],
  ['loopback outside the allow-list, IPv4-mapped', 'http://[::ffff:127.0.0.2]/'],
  ['a home-network address', 'http://192.168.1.10/'],
  ['carrier-grade NAT', 'http://100.64.0.1/'],
  ['"this network"', 'http://0.0.0.0/'],
];

const CONFIG_TABLES = ['routing_rules', 'templates', 'webhook_endpoints', 'deliveries'] as const;

describe.each(engines())('AdminService and CancelNotification ($name)', (engine) => {
  let server: TestServer;
  let admin: AdminServiceClient;
  let herald: NotificationServiceClient;

  beforeAll(async () => {
    server = await startTestServer(engine, { overrides: SETTINGS });
    admin = server.adminService();
    herald = server.admin();
  });
  afterAll(() => server?.stop());

  // Endpoints made by a test are deleted after it, so none of them fans out another test's webhooks.
  const endpoints: string[] = [];
  afterEach(async () => {
    for (const id of endpoints.splice(0)) await admin.deleteWebhookEndpoint({ id });
  });

  async function createEndpoint(init: { url?: string; eventTypes?: string[]; description?: string } = {}) {
    const created = await admin.createWebhookEndpoint({ url: ALLOWED_URL, ...init });
    endpoints.push(created.endpoint!.id);
    return created;
  }

  /**
   * Every table a request could write, each as its row count and a digest of its contents: equal before
   * and after a call means the call inserted, changed and deleted nothing.
   */
  async function tableState() {
    const states = await Promise.all(
      CONFIG_TABLES.map(async (table) => {
        const [row] = await server.db.database.sql.query<{ rows: number; digest: string }>(
          `select count(*)::int as rows,
             md5(coalesce(string_agg(t::text, ',' order by t::text), '')) as digest
           from ${table} t`,
          [],
        );
        return [table, row] as const;
      }),
    );
    return { ...(await rowCounts(server.db.database.db)), ...Object.fromEntries(states) };
  }

  async function rowsOf(table: (typeof CONFIG_TABLES)[number]): Promise<number> {
    const [row] = await server.db.database.sql.query<{ n: number }>(
      `select count(*)::int as n from ${table}`,
      [],
    );
    return row!.n;
  }

  describe('rejects bad input with INVALID_ARGUMENT naming the field, and writes nothing', () => {
    let subject: Subject;
    beforeAll(async () => {
      const { endpoint } = await admin.createWebhookEndpoint({ url: ALLOWED_URL, eventTypes: ['fixture.*'] });
      subject = { admin, herald, endpointId: endpoint!.id };
    });
    afterAll(() => admin.deleteWebhookEndpoint({ id: subject.endpointId }));

    it.each(invalidRequests)('%s', async (_case, call, message) => {
      const before = await tableState();
      const error = await rejection(call(subject));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage.slice(0, message.length)).toBe(message);
      expect(await tableState()).toEqual(before);
    });
  });

  describe('refuses webhook URLs that lead to non-global addresses, at creation', () => {
    it.each(refusedUrls)('refuses %s (%s)', async (_case, url) => {
      const before = await tableState();
      const error = await rejection(admin.createWebhookEndpoint({ url }));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toMatch(/^url: is refused: webhook host .* is not a global address$/);
      expect(await tableState()).toEqual(before);
    });

    it('accepts a loopback address that the allow-list names', async () => {
      const { endpoint } = await createEndpoint({ url: 'http://127.0.0.1:9/' });
      expect(endpoint).toMatchObject({ url: 'http://127.0.0.1:9/', enabled: true });
    });
  });

  describe('authorization', () => {
    it('answers PERMISSION_DENIED to a send-scoped key on AdminService, and writes nothing', async () => {
      const sender = server.adminService(await server.keyWith('send'));
      const before = await tableState();
      const calls = [
        () => sender.listWebhookEndpoints({}),
        () => sender.putRoutingRule({ rule: { type: 'denied.rule', steps: [step([Channel.IN_APP])] } }),
        () => sender.createWebhookEndpoint({ url: ALLOWED_URL }),
        () => sender.putTemplate(template()),
      ];
      for (const call of calls) {
        const error = await rejection(call());
        expect(error.code).toBe(Code.PermissionDenied);
        expect(error.rawMessage).toBe('API key lacks the "admin" scope');
      }
      expect(await tableState()).toEqual(before);
    });

    it('answers PERMISSION_DENIED to a user token on AdminService, and writes nothing', async () => {
      const user = createHeraldAdminClient({ baseUrl: server.url, token: await server.userToken('u1') });
      const before = await tableState();
      const calls = [
        () => user.listWebhookEndpoints({}),
        () => user.putRoutingRule({ rule: { type: 'denied.rule', steps: [step([Channel.IN_APP])] } }),
        () => user.createWebhookEndpoint({ url: ALLOWED_URL }),
      ];
      for (const call of calls) {
        const error = await rejection(call());
        expect(error.code).toBe(Code.PermissionDenied);
        expect(error.rawMessage).toBe('user tokens may not call this method; use an API key');
      }
      expect(await tableState()).toEqual(before);
    });

    it('answers PERMISSION_DENIED to a user cancelling even their own notification', async () => {
      const sent = await herald.send({
        userId: 'u1',
        type: 'auth.cancel',
        title: 'Hi',
        channels: [Channel.IN_APP],
      });
      const user = server.client({ token: await server.userToken('u1') });
      const before = await tableState();
      const error = await rejection(user.cancelNotification({ notificationId: sent.notificationId }));
      expect(error.code).toBe(Code.PermissionDenied);
      expect(await tableState()).toEqual(before);
    });

    it('answers PERMISSION_DENIED to a read-scoped key on CancelNotification', async () => {
      const sent = await herald.send({
        userId: 'u1',
        type: 'auth.cancel',
        title: 'Hi',
        channels: [Channel.IN_APP],
      });
      const reader = server.client({ apiKey: await server.keyWith('read') });
      const error = await rejection(reader.cancelNotification({ notificationId: sent.notificationId }));
      expect(error.code).toBe(Code.PermissionDenied);
      expect(error.rawMessage).toBe('API key lacks the "send" scope');
    });
  });

  describe('routing rules', () => {
    it('round-trips a rule through put, get, list and delete', async () => {
      const started = Date.now();
      const steps = [
        step([Channel.IN_APP, Channel.PUSH]),
        step([Channel.EMAIL], 600, EscalationCondition.READ),
        step([Channel.SMS], 600, EscalationCondition.SEEN),
      ];
      const { rule: put } = await admin.putRoutingRule({
        rule: { type: 'rule.roundtrip', steps, critical: true },
      });
      expect(put).toMatchObject({ type: 'rule.roundtrip', critical: true, steps });
      expect(timestampDate(put!.updatedAt!).getTime()).toBeGreaterThanOrEqual(started - 5_000);

      const { rule: got } = await admin.getRoutingRule({ type: 'rule.roundtrip' });
      expect(got).toEqual(put);
      const { rules } = await admin.listRoutingRules({});
      expect(rules.filter((r) => r.type === 'rule.roundtrip')).toEqual([put]);

      await admin.deleteRoutingRule({ type: 'rule.roundtrip' });
      expect((await rejection(admin.getRoutingRule({ type: 'rule.roundtrip' }))).code).toBe(Code.NotFound);
      expect((await admin.listRoutingRules({})).rules.map((r) => r.type)).not.toContain('rule.roundtrip');
    });

    it('replaces the rule of a type on a second put', async () => {
      await admin.putRoutingRule({ rule: { type: 'rule.replaced', steps: [step([Channel.IN_APP])] } });
      const { rule } = await admin.putRoutingRule({
        rule: { type: 'rule.replaced', steps: [step([Channel.EMAIL])], critical: false },
      });
      expect(rule?.steps.map((s) => s.channels)).toEqual([[Channel.EMAIL]]);
      expect((await admin.getRoutingRule({ type: 'rule.replaced' })).rule).toEqual(rule);
      await admin.deleteRoutingRule({ type: 'rule.replaced' });
    });

    it('accepts ten steps, the most a rule may hold', async () => {
      const steps = Array.from({ length: 10 }, (_, i) => step([Channel.IN_APP], i * 60));
      const { rule } = await admin.putRoutingRule({ rule: { type: 'rule.ten', steps } });
      expect(rule?.steps).toHaveLength(10);
      await admin.deleteRoutingRule({ type: 'rule.ten' });
    });

    it('answers NOT_FOUND to get and delete of a type without a rule', async () => {
      const before = await tableState();
      const got = await rejection(admin.getRoutingRule({ type: 'rule.missing' }));
      expect([got.code, got.rawMessage]).toEqual([Code.NotFound, 'type: no routing rule for this type']);
      const deleted = await rejection(admin.deleteRoutingRule({ type: 'rule.missing' }));
      expect(deleted.code).toBe(Code.NotFound);
      expect(await tableState()).toEqual(before);
    });
  });

  describe('templates', () => {
    it('replaces the template of a type, channel and locale on a second put', async () => {
      const key = { type: 'tpl.replace', channel: Channel.EMAIL, locale: 'default' };
      await admin.putTemplate({ template: { ...key, title: 'Old', body: 'Old body' } });
      const { template: second } = await admin.putTemplate({ template: { ...key, body: 'New body' } });
      expect(second).toMatchObject({ ...key, body: 'New body' });
      expect(second?.title).toBeUndefined();
      expect(second?.updatedAt).toBeDefined();
      const { templates } = await admin.listTemplates({ type: 'tpl.replace' });
      expect(templates).toEqual([second]);
      await admin.deleteTemplate(key);
    });

    it('lists only the requested type, or every type when none is given', async () => {
      await admin.putTemplate({
        template: { type: 'tpl.a', channel: Channel.EMAIL, locale: 'de', body: 'A' },
      });
      await admin.putTemplate({
        template: { type: 'tpl.a', channel: Channel.SMS, locale: 'default', body: 'A' },
      });
      await admin.putTemplate({
        template: { type: 'tpl.b', channel: Channel.EMAIL, locale: 'en', body: 'B' },
      });

      const onlyA = (await admin.listTemplates({ type: 'tpl.a' })).templates;
      expect(onlyA.map((t) => [t.type, t.channel, t.locale])).toEqual([
        ['tpl.a', Channel.EMAIL, 'de'],
        ['tpl.a', Channel.SMS, 'default'],
      ]);
      const all = (await admin.listTemplates({})).templates.map((t) => t.type);
      expect(all).toEqual(expect.arrayContaining(['tpl.a', 'tpl.b']));

      await admin.deleteTemplate({ type: 'tpl.a', channel: Channel.EMAIL, locale: 'de' });
      await admin.deleteTemplate({ type: 'tpl.a', channel: Channel.SMS, locale: 'default' });
      await admin.deleteTemplate({ type: 'tpl.b', channel: Channel.EMAIL, locale: 'en' });
      expect((await admin.listTemplates({ type: 'tpl.a' })).templates).toEqual([]);
    });

    it('answers NOT_FOUND to deleting a template that does not exist', async () => {
      const before = await rowsOf('templates');
      const error = await rejection(
        admin.deleteTemplate({ type: 'tpl.missing', channel: Channel.EMAIL, locale: 'default' }),
      );
      expect(error.code).toBe(Code.NotFound);
      expect(await rowsOf('templates')).toBe(before);
    });
  });

  describe('PreviewTemplate', () => {
    it('renders the stored template of the nearest locale: de-AT falls back to de', async () => {
      const key = { type: 'preview.stored', channel: Channel.SMS };
      await admin.putTemplate({ template: { ...key, locale: 'default', body: 'Hello {{ data.name }}' } });
      await admin.putTemplate({ template: { ...key, locale: 'de', body: 'Hallo {{ data.name }}' } });

      const german = await admin.previewTemplate({ ...key, locale: 'de-AT', data: { name: 'Anna' } });
      expect([german.locale, german.body]).toEqual(['de', 'Hallo Anna']);
      const french = await admin.previewTemplate({ ...key, locale: 'fr-FR', data: { name: 'Anna' } });
      expect([french.locale, french.body]).toEqual(['default', 'Hello Anna']);

      await admin.deleteTemplate({ ...key, locale: 'default' });
      await admin.deleteTemplate({ ...key, locale: 'de' });
    });

    it('answers NOT_FOUND when no stored template fits', async () => {
      const error = await rejection(admin.previewTemplate({ type: 'preview.none', channel: Channel.SMS }));
      expect(error.code).toBe(Code.NotFound);
    });

    it('renders an inline title and body with the data, HTML-escaped for EMAIL', async () => {
      const preview = await admin.previewTemplate({
        type: 'preview.inline',
        channel: Channel.EMAIL,
        title: 'Order {{ data.order }}',
        body: 'Hi {{ data.name }}',
        data: { order: 'A-1', name: '<b>Anna</b>' },
      });
      expect(preview).toMatchObject({
        locale: 'inline',
        title: 'Order A-1',
        body: 'Hi &lt;b&gt;Anna&lt;/b&gt;',
        text: 'Hi <b>Anna</b>',
      });
      // The HTML part as sent: the Markdown body in the e-mail layout, the data escaped.
      expect(preview.html).toMatch(/^<!doctype html>[\s\S]*<title>Order A-1<\/title>/);
      expect(preview.html).toMatch(/<p style="[^"]+">Hi &lt;b&gt;Anna&lt;\/b&gt;<\/p>/);
    });

    it('does not escape for WEBHOOK', async () => {
      const preview = await admin.previewTemplate({
        type: 'preview.inline',
        channel: Channel.WEBHOOK,
        body: 'Hi {{ data.name }}',
        data: { name: '<b>Anna</b>' },
      });
      expect(preview.body).toBe('Hi <b>Anna</b>');
    });

    it('answers FAILED_PRECONDITION naming a variable the data lacks', async () => {
      const error = await rejection(
        admin.previewTemplate({
          type: 'preview.inline',
          channel: Channel.EMAIL,
          body: 'Hi {{ data.name }}',
          data: { other: 1 },
        }),
      );
      expect(error.code).toBe(Code.FailedPrecondition);
      expect(error.rawMessage).toBe('data: template: missing variable "data.name" in body');
    });
  });

  describe('webhook endpoints', () => {
    it('creates an enabled endpoint and shows its secret only then', async () => {
      const before = await rowsOf('webhook_endpoints');
      const { endpoint, secret } = await createEndpoint({
        description: 'orders',
        eventTypes: ['order.*', 'order.*', 'notification.failed'],
      });
      expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
      expect(endpoint).toMatchObject({
        url: ALLOWED_URL,
        description: 'orders',
        eventTypes: ['order.*', 'notification.failed'],
        enabled: true,
        disabledReason: '',
      });
      expect(endpoint?.createdAt).toBeDefined();
      expect(endpoint?.failingSince).toBeUndefined();
      expect(await rowsOf('webhook_endpoints')).toBe(before + 1);

      const list = await admin.listWebhookEndpoints({});
      expect(list.endpoints.find((e) => e.id === endpoint!.id)).toEqual(endpoint);
      expect(toJsonString(ListWebhookEndpointsResponseSchema, list)).not.toContain(secret);
    });

    it('creates an endpoint disabled when asked to', async () => {
      const created = await admin.createWebhookEndpoint({ url: ALLOWED_URL, enabled: false });
      endpoints.push(created.endpoint!.id);
      expect(created.endpoint?.enabled).toBe(false);
    });

    it('updates only the fields that are set', async () => {
      const { endpoint } = await createEndpoint({ description: 'before', eventTypes: ['order.*'] });
      const id = endpoint!.id;

      const moved = await admin.updateWebhookEndpoint({ id, url: 'http://127.0.0.1:10/moved' });
      expect(moved.endpoint).toMatchObject({
        url: 'http://127.0.0.1:10/moved',
        description: 'before',
        eventTypes: ['order.*'],
      });
      const described = await admin.updateWebhookEndpoint({ id, description: 'after' });
      expect(described.endpoint).toMatchObject({ url: 'http://127.0.0.1:10/moved', description: 'after' });
      const replaced = await admin.updateWebhookEndpoint({
        id,
        eventTypes: ['invoice.paid'],
        replaceEventTypes: true,
      });
      expect(replaced.endpoint?.eventTypes).toEqual(['invoice.paid']);
      const catchAll = await admin.updateWebhookEndpoint({ id, replaceEventTypes: true });
      expect(catchAll.endpoint?.eventTypes).toEqual([]);
    });

    it('disables an endpoint, and enabling it again clears why Herald had disabled it', async () => {
      const { endpoint } = await createEndpoint();
      const id = endpoint!.id;
      const disabled = await admin.updateWebhookEndpoint({ id, enabled: false });
      expect(disabled.endpoint?.enabled).toBe(false);
      // What the dispatcher records when an endpoint answers 410 Gone.
      await server.db.database.sql.query(
        `update webhook_endpoints set disabled_reason = 'endpoint answered 410 Gone', failing_since = now()
         where id = $1::uuid`,
        [id],
      );
      const listed = (await admin.listWebhookEndpoints({})).endpoints.find((e) => e.id === id);
      expect(listed).toMatchObject({ enabled: false, disabledReason: 'endpoint answered 410 Gone' });

      const enabled = await admin.updateWebhookEndpoint({ id, enabled: true });
      expect(enabled.endpoint).toMatchObject({ enabled: true, disabledReason: '' });
      expect(enabled.endpoint?.failingSince).toBeUndefined();
    });

    it('deletes an endpoint', async () => {
      const { endpoint } = await admin.createWebhookEndpoint({ url: ALLOWED_URL });
      const before = await rowsOf('webhook_endpoints');
      await admin.deleteWebhookEndpoint({ id: endpoint!.id });
      expect(await rowsOf('webhook_endpoints')).toBe(before - 1);
      const { endpoints: list } = await admin.listWebhookEndpoints({});
      expect(list.map((e) => e.id)).not.toContain(endpoint!.id);
    });

    it('answers NOT_FOUND to update, delete and rotate of an unknown endpoint; writes nothing', async () => {
      const before = await tableState();
      const calls = [
        () => admin.updateWebhookEndpoint({ id: UNKNOWN_UUID, description: 'x' }),
        () => admin.deleteWebhookEndpoint({ id: UNKNOWN_UUID }),
        () => admin.rotateWebhookSecret({ id: UNKNOWN_UUID, overlapSeconds: 60 }),
      ];
      for (const call of calls) {
        const error = await rejection(call());
        expect([error.code, error.rawMessage]).toEqual([Code.NotFound, 'id: no such webhook endpoint']);
      }
      expect(await tableState()).toEqual(before);
    });

    it('rotates the secret: a new one, and the old one expiring overlap_seconds from now', async () => {
      const { endpoint, secret: oldSecret } = await createEndpoint();
      const asked = Date.now();
      const rotated = await admin.rotateWebhookSecret({ id: endpoint!.id, overlapSeconds: HOUR_SECONDS });
      expect(rotated.secret).toMatch(/^whsec_/);
      expect(rotated.secret).not.toBe(oldSecret);
      const expiresAt = timestampDate(rotated.previousSecretExpiresAt!).getTime();
      expect(expiresAt).toBeGreaterThanOrEqual(asked + HOUR_SECONDS * 1000 - 1_000);
      expect(expiresAt).toBeLessThanOrEqual(Date.now() + HOUR_SECONDS * 1000 + 1_000);

      const [row] = await server.db.database.sql.query<{ secret: string; previous_secret: string }>(
        'select secret, previous_secret from webhook_endpoints where id = $1::uuid',
        [endpoint!.id],
      );
      expect(row).toEqual({ secret: rotated.secret, previous_secret: oldSecret });
    });

    it('rotates with a 24-hour overlap when overlap_seconds is 0', async () => {
      const { endpoint } = await createEndpoint();
      const asked = Date.now();
      const rotated = await admin.rotateWebhookSecret({ id: endpoint!.id });
      const expiresAt = timestampDate(rotated.previousSecretExpiresAt!).getTime();
      expect(expiresAt - asked).toBeGreaterThanOrEqual(24 * HOUR_SECONDS * 1000 - 1_000);
      expect(expiresAt - asked).toBeLessThanOrEqual(24 * HOUR_SECONDS * 1000 + 5_000);
    });
  });

  describe('ReplayDelivery', () => {
    it('answers NOT_FOUND for a delivery that does not exist', async () => {
      const error = await rejection(admin.replayDelivery({ deliveryId: UNKNOWN_UUID }));
      expect([error.code, error.rawMessage]).toEqual([Code.NotFound, 'delivery_id: no such delivery']);
    });

    it('answers FAILED_PRECONDITION for a delivery neither FAILED nor EXPIRED; writes nothing', async () => {
      const sent = await herald.send({
        userId: 'replay-user',
        type: 'replay.queued',
        title: 'Hi',
        channels: [Channel.IN_APP],
      });
      const [queued] = sent.deliveries;
      expect(queued?.status).toBe(DeliveryStatus.QUEUED);
      const before = await tableState();
      const error = await rejection(admin.replayDelivery({ deliveryId: queued!.deliveryId }));
      expect(error.code).toBe(Code.FailedPrecondition);
      expect(error.rawMessage).toBe(
        'delivery_id: only FAILED or EXPIRED deliveries can be replayed (this one is QUEUED)',
      );
      expect(await tableState()).toEqual(before);
    });
  });

  describe('CancelNotification', () => {
    it('cancels every queued delivery of a scheduled notification, once', async () => {
      await createEndpoint({ eventTypes: ['cancel.scheduled'] });
      const sent = await herald.send({
        userId: 'cancel-user',
        type: 'cancel.scheduled',
        title: 'Later',
        sendAt: timestampFromDate(new Date(Date.now() + HOUR_SECONDS * 1000)),
        channels: [Channel.IN_APP, Channel.WEBHOOK],
      });
      const queued = sent.deliveries.filter((d) => d.status === DeliveryStatus.QUEUED);
      expect(queued.map((d) => d.channel)).toEqual([Channel.IN_APP, Channel.WEBHOOK]);

      const first = await herald.cancelNotification({ notificationId: sent.notificationId });
      expect(first.cancelled).toBe(queued.length);
      expect(first.notification?.deliveries.map((d) => [d.id, d.channel, d.status])).toEqual(
        queued.map((d) => [d.deliveryId, d.channel, DeliveryStatus.CANCELLED]),
      );
      // A send key may cancel what it may not read: ids and statuses only, no content.
      expect([first.notification?.id, first.notification?.title, first.notification?.data]).toEqual([
        sent.notificationId,
        '',
        undefined,
      ]);
      expect(first.notification?.deliveries.every((d) => d.reason === '' && d.attempts.length === 0)).toBe(
        true,
      );
      const { notification } = await herald.getNotification({ notificationId: sent.notificationId });
      expect(notification?.deliveries.every((d) => d.status === DeliveryStatus.CANCELLED)).toBe(true);

      const second = await herald.cancelNotification({ notificationId: sent.notificationId });
      expect(second.cancelled).toBe(0);
    });

    it('answers NOT_FOUND for an unknown notification', async () => {
      const error = await rejection(herald.cancelNotification({ notificationId: UNKNOWN_UUID }));
      expect([error.code, error.rawMessage]).toEqual([
        Code.NotFound,
        'notification_id: no such notification',
      ]);
    });
  });
});
