// AdminService: routing rules, templates, webhook endpoints and delivery replay. Every call needs an API
// key with the "admin" scope; every request is validated whole before anything is written. Each change
// reloads this instance's delivery configuration at once (other instances within HERALD_CONFIG_REFRESH_MS).
import { promisify } from 'node:util';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { HandlerContext } from '@connectrpc/connect';
import {
  type BroadcastSystemMessageRequest,
  type CreateWebhookEndpointRequest,
  EscalationCondition,
  type PreviewTemplateRequest,
  type PutRoutingRuleRequest,
  type PutTemplateRequest,
  type RoutingRule,
  RoutingRuleSchema,
  type Template,
  TemplateSchema,
  type UpdateWebhookEndpointRequest,
  type WebhookEndpoint,
  WebhookEndpointSchema,
} from '../../gen/herald/v1/admin_service_pb.js';
import type { Channel, Recipient } from '../../gen/herald/v1/types_pb.js';
import { emailHtml, emailText } from '../channels/email/layout.js';
import { senderProblem } from '../channels/email/sender.js';
import type { AddressGuard } from '../channels/webhook/address-guard.js';
import { generateWebhookSecret } from '../channels/webhook/signature.js';
import type { ChannelName } from '../core/channels.js';
import { HeraldError, invalidArgument } from '../core/errors.js';
import { isUuid } from '../core/ids.js';
import { checkId, checkLocale, checkTextLength, findUnstorableText, limits } from '../core/rules.js';
import { MAX_SMS_SEGMENTS } from '../core/sms.js';
import { createTemplateRenderer, selectTemplateLocale } from '../core/templates.js';
import type { ConfigCache } from '../delivery/config-cache.js';
import type { Realtime } from '../realtime/index.js';
import {
  createWebhookEndpoint,
  type Database,
  deleteRoutingRule,
  deleteTemplate,
  deleteWebhookEndpoint,
  findDelivery,
  findTemplates,
  getNotificationDetail,
  getRoutingRule,
  getWebhookEndpoint,
  listRoutingRules,
  listTemplates,
  listWebhookEndpoints,
  putRoutingRule,
  putTemplate,
  type RoutingRuleRow,
  type RoutingStep,
  replayDelivery,
  rotateWebhookSecret,
  type TemplateRow,
  updateWebhookEndpoint,
  type WebhookEndpointRow,
} from '../store/index.js';
import { requireServiceScope } from './auth.js';
import { channelFromProto, channelToProtoValue, notificationToProto } from './convert.js';

export interface AdminDeps {
  database: Database;
  realtime: Realtime;
  deliveryConfig: ConfigCache;
  /** The webhook SSRF guard: endpoints that resolve to refused addresses are rejected at once. */
  webhookGuard: AddressGuard;
  /** The service's clock: a replayed delivery is due by it. */
  now: () => Date;
}

const MAX_STEPS = 10;
const MAX_STEP_DELAY_SECONDS = 30 * 24 * 3600;
const MAX_TEMPLATE_CHARS = 64 * 1024;
const MAX_TEMPLATE_TITLE_CHARS = 1024;
const MAX_URL_CHARS = 2048;
const MAX_DESCRIPTION_CHARS = 1024;
const MAX_EVENT_TYPES = 100;
const DEFAULT_OVERLAP_SECONDS = 24 * 3600;
const MAX_OVERLAP_SECONDS = 7 * 24 * 3600;
const MAX_SYSTEM_MESSAGE_BYTES = 16 * 1024;
const EVENT_PATTERN = /^[A-Za-z0-9._:@-]{1,126}(\.\*)?$/;

const conditionNames = new Map<EscalationCondition, 'read' | 'seen' | null>([
  [EscalationCondition.UNSPECIFIED, null],
  [EscalationCondition.READ, 'read'],
  [EscalationCondition.SEEN, 'seen'],
]);
const conditionValues = new Map([...conditionNames].map(([k, v]) => [v, k]));

function channel(field: string, value: Channel): ChannelName {
  const name = channelFromProto(value);
  if (!name) throw invalidArgument(field, 'must be IN_APP, PUSH, EMAIL, SMS or WEBHOOK');
  return name;
}

function requireId(field: string, value: string): string {
  const problem = checkId(value);
  if (problem) throw invalidArgument(field, problem);
  return value;
}

function requireUuid(field: string, value: string): string {
  if (!isUuid(value)) throw invalidArgument(field, 'must be a UUID');
  return value.toLowerCase();
}

/** 'default' or a BCP 47 tag in canonical case (de-at and de-AT are one locale). */
function templateLocale(field: string, value: string): string {
  if (value.toLowerCase() === 'default') return 'default';
  const problem = checkLocale(value);
  if (problem) throw invalidArgument(field, `${problem}, or "default"`);
  return Intl.getCanonicalLocales(value)[0] ?? value;
}

function text(field: string, value: string, min: number, max: number): string {
  const problem = checkTextLength(value, min, max);
  if (problem) throw invalidArgument(field, problem);
  return value;
}

/** An optional e-mail sender field: empty is none; else one line, an address or "Name <address>". */
function sender(field: string, value: string): string | null {
  if (value === '') return null;
  const problem = senderProblem(value);
  if (problem) throw invalidArgument(field, problem);
  return value;
}

/** 0 (unset) is the default, one segment. */
function smsMaxSegments(value: number): number | null {
  if (value === 0) return null;
  if (value < 1 || value > MAX_SMS_SEGMENTS) {
    throw invalidArgument('rule.sms_max_segments', `must be 1..${MAX_SMS_SEGMENTS} (0: 1)`);
  }
  return value;
}

function routingSteps(rule: RoutingRule): RoutingStep[] {
  if (rule.steps.length === 0 || rule.steps.length > MAX_STEPS) {
    throw invalidArgument('rule.steps', `must hold 1..${MAX_STEPS} steps`);
  }
  return rule.steps.map((s, i) => {
    const field = `rule.steps[${i}]`;
    if (s.channels.length === 0) throw invalidArgument(`${field}.channels`, 'must name at least one channel');
    const channels = s.channels.map((c, j) => channel(`${field}.channels[${j}]`, c));
    if (new Set(channels).size !== channels.length) {
      throw invalidArgument(`${field}.channels`, 'names a channel twice');
    }
    if (s.delaySeconds < 0 || s.delaySeconds > MAX_STEP_DELAY_SECONDS) {
      throw invalidArgument(`${field}.delay_seconds`, `must be 0..${MAX_STEP_DELAY_SECONDS}`);
    }
    if (i === 0 && s.delaySeconds !== 0) {
      throw invalidArgument(`${field}.delay_seconds`, 'must be 0: the first step is sent at once');
    }
    if (i > 0 && s.delaySeconds < rule.steps[i - 1]!.delaySeconds) {
      throw invalidArgument(`${field}.delay_seconds`, "must not be smaller than the previous step's");
    }
    const cancelUnless = conditionNames.get(s.cancelUnless);
    if (cancelUnless === undefined)
      throw invalidArgument(`${field}.cancel_unless`, 'is not a known condition');
    if (i === 0 && cancelUnless !== null) {
      throw invalidArgument(`${field}.cancel_unless`, 'must be unset: the first step is sent at once');
    }
    return { channels, delaySeconds: s.delaySeconds, cancelUnless };
  });
}

function eventTypes(field: string, values: readonly string[]): string[] {
  if (values.length > MAX_EVENT_TYPES)
    throw invalidArgument(field, `must hold at most ${MAX_EVENT_TYPES} entries`);
  values.forEach((v, i) => {
    if (!EVENT_PATTERN.test(v)) {
      throw invalidArgument(
        `${field}[${i}]`,
        'must be a type ([A-Za-z0-9._:@-]) or a prefix pattern like order.*',
      );
    }
  });
  return [...new Set(values)];
}

function ts(date: Date | null) {
  return date ? timestampFromDate(date) : undefined;
}

function ruleToProto(row: RoutingRuleRow): RoutingRule {
  return create(RoutingRuleSchema, {
    type: row.type,
    critical: row.critical,
    updatedAt: ts(row.updatedAt),
    smsMaxSegments: row.smsMaxSegments ?? 0,
    emailSender:
      row.emailFrom || row.emailReplyTo
        ? { from: row.emailFrom ?? '', replyTo: row.emailReplyTo ?? '' }
        : undefined,
    steps: row.steps.map((s) => ({
      channels: s.channels.map(channelToProtoValue),
      delaySeconds: s.delaySeconds,
      cancelUnless: conditionValues.get(s.cancelUnless) ?? EscalationCondition.UNSPECIFIED,
    })),
  });
}

function templateToProto(row: TemplateRow): Template {
  return create(TemplateSchema, {
    type: row.type,
    channel: channelToProtoValue(row.channel),
    locale: row.locale,
    ...(row.title === null ? {} : { title: row.title }),
    body: row.body,
    ...(row.text === null ? {} : { text: row.text }),
    updatedAt: ts(row.updatedAt),
  });
}

function endpointToProto(row: WebhookEndpointRow): WebhookEndpoint {
  return create(WebhookEndpointSchema, {
    id: row.id,
    url: row.url,
    description: row.description,
    eventTypes: row.eventTypes,
    enabled: row.enabled,
    disabledReason: row.disabledReason ?? '',
    createdAt: ts(row.createdAt),
    updatedAt: ts(row.updatedAt),
    failingSince: ts(row.failingSince),
  });
}

function recipientOf(r: Recipient | undefined) {
  return {
    userId: 'preview',
    email: r?.email ?? null,
    phone: r?.phone ?? null,
    locale: r?.locale ?? null,
    timezone: r?.timezone ?? null,
  };
}

export function adminHandlers({ database, deliveryConfig, webhookGuard, realtime, now }: AdminDeps) {
  const renderer = createTemplateRenderer();
  const lookupAll = promisify(webhookGuard.lookup);
  const db = database.db;

  function admin(ctx: HandlerContext) {
    requireServiceScope(ctx, 'admin');
  }

  /** An http(s) URL whose host resolves only to addresses the SSRF guard allows. */
  async function endpointUrl(field: string, value: string): Promise<string> {
    text(field, value, 1, MAX_URL_CHARS);
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw invalidArgument(field, 'must be an absolute http(s) URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw invalidArgument(field, 'must be an http or https URL');
    }
    if (url.username || url.password) throw invalidArgument(field, 'must not carry credentials');
    try {
      webhookGuard.checkLiteral(url.hostname);
      await lookupAll(url.hostname.replace(/^\[|\]$/g, ''), { all: true });
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === 'ENOTFOUND') throw invalidArgument(field, `host ${url.hostname} does not resolve`);
      const message = error instanceof Error ? error.message : String(error);
      throw invalidArgument(field, `is refused: ${message}`);
    }
    return url.toString();
  }

  async function changed<T>(result: T): Promise<T> {
    await deliveryConfig.refresh();
    return result;
  }

  async function existingEndpoint(id: string): Promise<WebhookEndpointRow> {
    const row = await getWebhookEndpoint(db, requireUuid('id', id));
    if (!row) throw new HeraldError('not_found', 'no such webhook endpoint', 'id');
    return row;
  }

  return {
    async putRoutingRule(req: PutRoutingRuleRequest, ctx: HandlerContext) {
      admin(ctx);
      if (!req.rule) throw invalidArgument('rule', 'is required');
      const type = requireId('rule.type', req.rule.type);
      const steps = routingSteps(req.rule);
      const emailFrom = sender('rule.email_sender.from', req.rule.emailSender?.from ?? '');
      const emailReplyTo = sender('rule.email_sender.reply_to', req.rule.emailSender?.replyTo ?? '');
      const row = await putRoutingRule(db, {
        type,
        steps,
        critical: req.rule.critical,
        emailFrom,
        emailReplyTo,
        smsMaxSegments: smsMaxSegments(req.rule.smsMaxSegments),
      });
      return changed({ rule: ruleToProto(row) });
    },

    async getRoutingRule(req: { type: string }, ctx: HandlerContext) {
      admin(ctx);
      const row = await getRoutingRule(db, requireId('type', req.type));
      if (!row) throw new HeraldError('not_found', 'no routing rule for this type', 'type');
      return { rule: ruleToProto(row) };
    },

    async listRoutingRules(_req: unknown, ctx: HandlerContext) {
      admin(ctx);
      return { rules: (await listRoutingRules(db)).map(ruleToProto) };
    },

    async deleteRoutingRule(req: { type: string }, ctx: HandlerContext) {
      admin(ctx);
      if (!(await deleteRoutingRule(db, requireId('type', req.type)))) {
        throw new HeraldError('not_found', 'no routing rule for this type', 'type');
      }
      return changed({});
    },

    async putTemplate(req: PutTemplateRequest, ctx: HandlerContext) {
      admin(ctx);
      const t = req.template;
      if (!t) throw invalidArgument('template', 'is required');
      const source = {
        type: requireId('template.type', t.type),
        channel: channel('template.channel', t.channel),
        locale: templateLocale('template.locale', t.locale),
        title: t.title === undefined ? null : text('template.title', t.title, 1, MAX_TEMPLATE_TITLE_CHARS),
        body: text('template.body', t.body, 1, MAX_TEMPLATE_CHARS),
        text: t.text === undefined ? null : text('template.text', t.text, 1, MAX_TEMPLATE_CHARS),
      };
      if (source.text !== null && source.channel !== 'email') {
        throw invalidArgument('template.text', 'only e-mail templates have a plain-text part');
      }
      const problem = renderer.check(source);
      if (problem) throw invalidArgument(`template.${problem.field}`, problem.message);
      return changed({ template: templateToProto(await putTemplate(db, source)) });
    },

    async listTemplates(req: { type: string }, ctx: HandlerContext) {
      admin(ctx);
      const type = req.type === '' ? null : requireId('type', req.type);
      return { templates: (await listTemplates(db, type)).map(templateToProto) };
    },

    async deleteTemplate(req: { type: string; channel: Channel; locale: string }, ctx: HandlerContext) {
      admin(ctx);
      const key = {
        type: requireId('type', req.type),
        channel: channel('channel', req.channel),
        locale: templateLocale('locale', req.locale),
      };
      if (!(await deleteTemplate(db, key))) throw new HeraldError('not_found', 'no such template');
      return changed({});
    },

    async previewTemplate(req: PreviewTemplateRequest, ctx: HandlerContext) {
      admin(ctx);
      const type = requireId('type', req.type);
      const channelName = channel('channel', req.channel);
      const locale = req.locale === '' ? null : templateLocale('locale', req.locale);
      let source: { title: string | null; body: string; text?: string | null };
      let used = 'inline';
      if (req.title !== undefined && req.body === undefined) {
        throw invalidArgument('body', 'is required when title is given (an inline template)');
      }
      if (req.body !== undefined) {
        source = {
          title: req.title === undefined ? null : text('title', req.title, 1, MAX_TEMPLATE_TITLE_CHARS),
          body: text('body', req.body, 1, MAX_TEMPLATE_CHARS),
        };
        const problem = renderer.check(source);
        if (problem) throw invalidArgument(problem.field, problem.message);
      } else {
        const stored = await findTemplates(db, type, channelName);
        const chosen = selectTemplateLocale(
          stored.map((t) => t.locale),
          locale,
        );
        const row = stored.find((t) => t.locale === chosen);
        if (!row) throw new HeraldError('not_found', 'no template fits this type, channel and locale');
        source = { title: row.title, body: row.body, text: row.text };
        used = row.locale;
      }
      const context = {
        data: (req.data ?? {}) as Record<string, unknown>,
        recipient: { ...recipientOf(req.recipient), locale: locale ?? req.recipient?.locale ?? null },
        notification: { id: 'preview', type, title: null, body: null },
      };
      const rendered = await renderer.render(source, context, { html: channelName === 'email' });
      if (!rendered.ok) {
        // A render past MAX_RENDERED_PART_BYTES is the fault of the template part it names.
        if (rendered.oversized) throw invalidArgument(rendered.oversized, rendered.reason);
        throw new HeraldError('failed_precondition', rendered.reason, 'data');
      }
      if (channelName !== 'email') return { locale: used, title: rendered.title ?? '', body: rendered.body };
      // The e-mail as it is sent: the body's Markdown (outputs escaped for it) in the layout, and the text part.
      const markdown = await renderer.render({ title: null, body: source.body }, context, {
        html: false,
        markdown: true,
      });
      if (!markdown.ok) throw new HeraldError('failed_precondition', markdown.reason, 'data');
      const layout = { subject: rendered.title ?? type, markdown: markdown.body };
      const textPart = source.text
        ? await renderer.render({ title: null, body: source.text }, context, { html: false })
        : null;
      if (textPart && !textPart.ok) throw new HeraldError('failed_precondition', textPart.reason, 'data');
      return {
        locale: used,
        title: rendered.title ?? '',
        body: rendered.body,
        html: emailHtml(layout),
        text: textPart ? textPart.body : emailText(layout),
      };
    },

    async createWebhookEndpoint(req: CreateWebhookEndpointRequest, ctx: HandlerContext) {
      admin(ctx);
      const values = {
        url: await endpointUrl('url', req.url),
        description: text('description', req.description, 0, MAX_DESCRIPTION_CHARS),
        eventTypes: eventTypes('event_types', req.eventTypes),
        enabled: req.enabled ?? true,
        secret: generateWebhookSecret(),
      };
      const row = await createWebhookEndpoint(db, values);
      return changed({ endpoint: endpointToProto(row), secret: row.secret });
    },

    async listWebhookEndpoints(_req: unknown, ctx: HandlerContext) {
      admin(ctx);
      return { endpoints: (await listWebhookEndpoints(db)).map(endpointToProto) };
    },

    async updateWebhookEndpoint(req: UpdateWebhookEndpointRequest, ctx: HandlerContext) {
      admin(ctx);
      const id = requireUuid('id', req.id);
      if (!req.replaceEventTypes && req.eventTypes.length > 0) {
        throw invalidArgument('event_types', 'is only read with replace_event_types = true');
      }
      const patch = {
        url: req.url === undefined ? undefined : await endpointUrl('url', req.url),
        description:
          req.description === undefined
            ? undefined
            : text('description', req.description, 0, MAX_DESCRIPTION_CHARS),
        eventTypes: req.replaceEventTypes ? eventTypes('event_types', req.eventTypes) : undefined,
        enabled: req.enabled,
      };
      const row = await updateWebhookEndpoint(db, id, patch);
      if (!row) throw new HeraldError('not_found', 'no such webhook endpoint', 'id');
      return changed({ endpoint: endpointToProto(row) });
    },

    async deleteWebhookEndpoint(req: { id: string }, ctx: HandlerContext) {
      admin(ctx);
      if (!(await deleteWebhookEndpoint(db, requireUuid('id', req.id)))) {
        throw new HeraldError('not_found', 'no such webhook endpoint', 'id');
      }
      return changed({});
    },

    async rotateWebhookSecret(req: { id: string; overlapSeconds: number }, ctx: HandlerContext) {
      admin(ctx);
      const id = requireUuid('id', req.id);
      if (req.overlapSeconds < 0 || req.overlapSeconds > MAX_OVERLAP_SECONDS) {
        throw invalidArgument('overlap_seconds', `must be 0..${MAX_OVERLAP_SECONDS} (0 = 24 hours)`);
      }
      await existingEndpoint(id);
      const until = new Date(now().getTime() + (req.overlapSeconds || DEFAULT_OVERLAP_SECONDS) * 1000);
      const row = await rotateWebhookSecret(db, id, generateWebhookSecret(), until);
      if (!row) throw new HeraldError('not_found', 'no such webhook endpoint', 'id');
      return changed({ secret: row.secret, previousSecretExpiresAt: ts(until) });
    },

    async broadcastSystemMessage(req: BroadcastSystemMessageRequest, ctx: HandlerContext) {
      admin(ctx);
      const type = requireId('type', req.type);
      const data = (req.data ?? {}) as Record<string, unknown>;
      const unstorable = findUnstorableText(data, 'data', limits.dataDepth);
      if (unstorable) throw invalidArgument(unstorable.field, unstorable.problem);
      if (Buffer.byteLength(JSON.stringify(data)) > MAX_SYSTEM_MESSAGE_BYTES) {
        throw invalidArgument('data', `must be at most ${MAX_SYSTEM_MESSAGE_BYTES} bytes as JSON`);
      }
      await realtime.bus.broadcast({ type, data });
      return {};
    },

    async replayDelivery(req: { deliveryId: string }, ctx: HandlerContext) {
      admin(ctx);
      const id = requireUuid('delivery_id', req.deliveryId);
      const found = await findDelivery(database.sql, id);
      if (!found) throw new HeraldError('not_found', 'no such delivery', 'delivery_id');
      if (!(await replayDelivery(database.sql, id, now()))) {
        throw new HeraldError(
          'failed_precondition',
          `only FAILED or EXPIRED deliveries can be replayed (this one is ${found.status.toUpperCase()})`,
          'delivery_id',
        );
      }
      const detail = await getNotificationDetail(db, found.notification_id);
      const delivery = detail && notificationToProto(detail).deliveries.find((d) => d.id === id);
      return { delivery };
    },
  };
}
