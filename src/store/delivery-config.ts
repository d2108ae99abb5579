// The delivery engine's configuration, managed over AdminService: routing rules per notification type,
// templates per type x channel x locale, and webhook endpoints.
import { and, asc, eq, sql } from 'drizzle-orm';
import { newId } from '../core/ids.js';
import type { Executor } from './database.js';
import { type RoutingStep, routingRules, templates, webhookEndpoints } from './schema.js';

export type { RoutingStep };
export type RoutingRuleRow = typeof routingRules.$inferSelect;
export type TemplateRow = typeof templates.$inferSelect;
export type WebhookEndpointRow = typeof webhookEndpoints.$inferSelect;

export async function putRoutingRule(
  db: Executor,
  rule: {
    type: string;
    steps: RoutingStep[];
    critical: boolean;
    emailFrom: string | null;
    emailReplyTo: string | null;
    smsMaxSegments: number | null;
  },
): Promise<RoutingRuleRow> {
  const [row] = await db
    .insert(routingRules)
    .values(rule)
    .onConflictDoUpdate({
      target: routingRules.type,
      set: {
        steps: rule.steps,
        critical: rule.critical,
        emailFrom: rule.emailFrom,
        emailReplyTo: rule.emailReplyTo,
        smsMaxSegments: rule.smsMaxSegments,
        updatedAt: sql`now()`,
      },
    })
    .returning();
  return row!;
}

export async function getRoutingRule(db: Executor, type: string): Promise<RoutingRuleRow | undefined> {
  const [row] = await db.select().from(routingRules).where(eq(routingRules.type, type));
  return row;
}

export function listRoutingRules(db: Executor): Promise<RoutingRuleRow[]> {
  return db.select().from(routingRules).orderBy(asc(routingRules.type));
}

export async function deleteRoutingRule(db: Executor, type: string): Promise<boolean> {
  const rows = await db.delete(routingRules).where(eq(routingRules.type, type)).returning();
  return rows.length > 0;
}

export async function putTemplate(
  db: Executor,
  t: {
    type: string;
    channel: string;
    locale: string;
    title: string | null;
    body: string;
    text: string | null;
  },
): Promise<TemplateRow> {
  const [row] = await db
    .insert(templates)
    .values(t)
    .onConflictDoUpdate({
      target: [templates.type, templates.channel, templates.locale],
      set: { title: t.title, body: t.body, text: t.text, updatedAt: sql`now()` },
    })
    .returning();
  return row!;
}

export function listTemplates(db: Executor, type: string | null): Promise<TemplateRow[]> {
  return db
    .select()
    .from(templates)
    .where(type ? eq(templates.type, type) : undefined)
    .orderBy(asc(templates.type), asc(templates.channel), asc(templates.locale));
}

/** Every locale's template of a type x channel. */
export function findTemplates(db: Executor, type: string, channel: string): Promise<TemplateRow[]> {
  return db
    .select()
    .from(templates)
    .where(and(eq(templates.type, type), eq(templates.channel, channel)))
    .orderBy(asc(templates.locale));
}

export async function deleteTemplate(
  db: Executor,
  key: { type: string; channel: string; locale: string },
): Promise<boolean> {
  const rows = await db
    .delete(templates)
    .where(
      and(eq(templates.type, key.type), eq(templates.channel, key.channel), eq(templates.locale, key.locale)),
    )
    .returning();
  return rows.length > 0;
}

export async function createWebhookEndpoint(
  db: Executor,
  e: { url: string; description: string; eventTypes: string[]; enabled: boolean; secret: string },
): Promise<WebhookEndpointRow> {
  const [row] = await db
    .insert(webhookEndpoints)
    .values({ id: newId(), ...e })
    .returning();
  return row!;
}

export function listWebhookEndpoints(db: Executor): Promise<WebhookEndpointRow[]> {
  return db
    .select()
    .from(webhookEndpoints)
    .orderBy(asc(webhookEndpoints.createdAt), asc(webhookEndpoints.id));
}

export async function getWebhookEndpoint(db: Executor, id: string): Promise<WebhookEndpointRow | undefined> {
  const [row] = await db.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, id));
  return row;
}

export interface WebhookEndpointPatch {
  url?: string | undefined;
  description?: string | undefined;
  eventTypes?: string[] | undefined;
  enabled?: boolean | undefined;
}

export async function updateWebhookEndpoint(
  db: Executor,
  id: string,
  patch: WebhookEndpointPatch,
): Promise<WebhookEndpointRow | undefined> {
  const set: Partial<typeof webhookEndpoints.$inferInsert> = { updatedAt: new Date() };
  if (patch.url !== undefined) set.url = patch.url;
  if (patch.description !== undefined) set.description = patch.description;
  if (patch.eventTypes !== undefined) set.eventTypes = patch.eventTypes;
  if (patch.enabled !== undefined) {
    set.enabled = patch.enabled;
    // Turning an endpoint back on starts its failure clock afresh.
    if (patch.enabled) Object.assign(set, { disabledReason: null, failingSince: null });
  }
  const [row] = await db.update(webhookEndpoints).set(set).where(eq(webhookEndpoints.id, id)).returning();
  return row;
}

export async function deleteWebhookEndpoint(db: Executor, id: string): Promise<boolean> {
  const rows = await db.delete(webhookEndpoints).where(eq(webhookEndpoints.id, id)).returning();
  return rows.length > 0;
}

/** Replaces the signing secret; the old one keeps signing alongside it until `previousUntil`. */
export async function rotateWebhookSecret(
  db: Executor,
  id: string,
  secret: string,
  previousUntil: Date,
): Promise<WebhookEndpointRow | undefined> {
  const [row] = await db
    .update(webhookEndpoints)
    .set({
      secret,
      previousSecret: sql`${webhookEndpoints.secret}`,
      previousSecretUntil: previousUntil,
      updatedAt: new Date(),
    })
    .where(eq(webhookEndpoints.id, id))
    .returning();
  return row;
}
