// The delivery configuration that Send planning and the dispatcher read on every notification: routing
// rules, enabled webhook endpoints and templates. Held in memory and reloaded every `refreshMs`, so the hot
// paths never query it; a change made through this instance's AdminService reloads at once, a change made
// on another instance is seen within `refreshMs`.
import type { ChannelName } from '../core/channels.js';
import { type DeliveryPlan, planDeliveries, type RoutingRuleView } from '../core/planning.js';
import type { Database } from '../store/database.js';
import {
  listRoutingRules,
  listTemplates,
  listWebhookEndpoints,
  type RoutingRuleRow,
  type TemplateRow,
  type WebhookEndpointRow,
} from '../store/delivery-config.js';
import type { NewNotification } from '../store/send.js';

/** PRIORITY_CRITICAL in herald.v1.Priority. */
export const CRITICAL_PRIORITY = 4;

/** A type's own e-mail sender (routing rule); an absent field keeps the provider's. */
export interface EmailSenderOverride {
  from: string | null;
  replyTo: string | null;
}

interface Snapshot {
  rules: Map<string, RoutingRuleView>;
  /** The rules as stored, for the per-type settings a delivery reads (sender, SMS length). */
  ruleRows: Map<string, RoutingRuleRow>;
  enabledEndpoints: WebhookEndpointRow[];
  templates: Map<string, TemplateRow[]>;
}

export interface ConfigCache {
  /** Plans a notification's deliveries from the current rules and endpoints. */
  plan(item: Pick<NewNotification, 'type' | 'priority' | 'channels'>): {
    critical: boolean;
    deliveries: DeliveryPlan[];
    wakesDispatcher: boolean;
  };
  /** Every locale's template of a type x channel. */
  templates(type: string, channel: ChannelName): readonly TemplateRow[];
  enabledEndpoints(): readonly WebhookEndpointRow[];
  /** The type's own e-mail sender, or null for the providers'. */
  emailSender(type: string): EmailSenderOverride | null;
  /** The most segments the type's SMS may take (its routing rule's, else 1). */
  smsMaxSegments(type: string): number;
  /** Reloads now; AdminService awaits it after each change. */
  refresh(): Promise<void>;
  close(): void;
}

/**
 * `configured()`: the channels that have providers now (the set can be reloaded); a delivery on any other
 * is skipped at planning, and a Send with a delivery due on one of them wakes the dispatchers.
 */
export async function createConfigCache(
  database: Database,
  refreshMs: number,
  configured: () => ReadonlySet<ChannelName>,
): Promise<ConfigCache> {
  let snapshot = await load(database);
  let reloading: Promise<void> | null = null;
  const refresh = () => {
    reloading ??= load(database)
      .then((next) => {
        snapshot = next;
      })
      .finally(() => {
        reloading = null;
      });
    return reloading;
  };
  // A failed periodic reload keeps the last good configuration; the next tick tries again.
  const timer = setInterval(() => refresh().catch(() => {}), refreshMs);
  timer.unref();
  return {
    plan(item) {
      const rule = snapshot.rules.get(item.type) ?? null;
      const channels = configured();
      const deliveries = planDeliveries({
        requested: item.channels,
        type: item.type,
        rule,
        endpoints: snapshot.enabledEndpoints,
        configured: channels,
      });
      return {
        critical: item.priority === CRITICAL_PRIORITY || Boolean(rule?.critical),
        deliveries,
        wakesDispatcher: deliveries.some(
          (d) => d.delaySeconds === 0 && d.requires !== 'unavailable' && channels.has(d.channel),
        ),
      };
    },
    templates: (type, channel) => snapshot.templates.get(`${type}\n${channel}`) ?? [],
    enabledEndpoints: () => snapshot.enabledEndpoints,
    emailSender(type) {
      const row = snapshot.ruleRows.get(type);
      return row?.emailFrom || row?.emailReplyTo ? { from: row.emailFrom, replyTo: row.emailReplyTo } : null;
    },
    smsMaxSegments: (type) => snapshot.ruleRows.get(type)?.smsMaxSegments ?? 1,
    refresh,
    close: () => clearInterval(timer),
  };
}

async function load(database: Database): Promise<Snapshot> {
  const [rules, endpoints, templates] = await Promise.all([
    listRoutingRules(database.db),
    listWebhookEndpoints(database.db),
    listTemplates(database.db, null),
  ]);
  const byKey = new Map<string, TemplateRow[]>();
  for (const t of templates) {
    const key = `${t.type}\n${t.channel}`;
    byKey.set(key, [...(byKey.get(key) ?? []), t]);
  }
  return {
    rules: new Map(
      rules.map((r) => [
        r.type,
        {
          critical: r.critical,
          steps: r.steps.map((s) => ({
            channels: s.channels as ChannelName[],
            delaySeconds: s.delaySeconds,
            cancelUnless: s.cancelUnless,
          })),
        },
      ]),
    ),
    ruleRows: new Map(rules.map((r) => [r.type, r])),
    enabledEndpoints: endpoints.filter((e) => e.enabled),
    templates: byKey,
  };
}
