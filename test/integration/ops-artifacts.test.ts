// The Grafana dashboard (deploy/grafana/herald.json) and the Prometheus alert rules
// (deploy/prometheus/alerts.yml) against what a running server exports. Every metric a PromQL expression
// names — a panel's target, the dashboard's job variable, a rule — is on /metrics (a histogram through its
// _bucket, _sum and _count series); every label an expression selects or groups by is one that metric's
// samples carry, wherever the server has samples of it (job and instance come from Prometheus). Rules carry
// a severity, a summary and a description; panels read the ${datasource} variable. The server first sends on
// every channel, follows an inbox over both transports and marks, so most labelled series have samples.
// promtool checks the rules' syntax and runs their unit tests (alerts.test.yml) in CI.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { parse as parseYaml } from 'yaml';
import { Channel, DeliveryStatus, MarkAction } from '../../clients/node/index.js';
import { startWebhookReceiver, type WebhookReceiver } from '../emulators/webhook-receiver.js';
import { pgliteEngine } from '../support/engines.js';
import { scrape } from '../support/metrics.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

const DASHBOARD = 'deploy/grafana/herald.json';
const ALERTS = 'deploy/prometheus/alerts.yml';
/** The data source variable every panel reads through. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a template string.
const DATASOURCE = '${datasource}';
/** Labels Prometheus attaches to every scraped series. */
const TARGET_LABELS = ['job', 'instance'];

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr: string; datasource?: { uid: string } }[];
  panels?: Panel[];
}

interface Rule {
  alert: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** What one PromQL expression reads: each selector's metric and matched labels, and the labels it groups by. */
interface Reads {
  selectors: { metric: string; labels: string[] }[];
  grouping: string[];
}

/**
 * The selectors of a PromQL expression, enough for the expressions these files hold: label values are
 * strings (no braces inside), and every name not called as a function is a metric.
 */
function promqlReads(expr: string): Reads {
  const grouping: string[] = [];
  const selectors: Reads['selectors'] = [];
  let rest = expr
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\boffset\s+\w+/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_, labels: string) => {
      grouping.push(...labels.split(',').map((l) => l.trim()));
      return ' ';
    });
  rest = rest.replace(/([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}/g, (_, metric: string | undefined, body: string) => {
    if (!metric) throw new Error(`a selector without a metric name in ${expr}`);
    const matchers = body.replace(/"(?:[^"\\]|\\.)*"/g, '""');
    selectors.push({
      metric,
      labels: [...matchers.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1]!),
    });
    return ' ';
  });
  for (const [name] of rest.matchAll(/(?<![\w.])[a-zA-Z_:][\w:]*(?![\w:]*\s*\()/g)) {
    if (!['and', 'or', 'unless', 'bool'].includes(name)) selectors.push({ metric: name, labels: [] });
  }
  return { selectors, grouping: grouping.filter(Boolean) };
}

/** The metric names /metrics exports (histograms as their series), and the labels each one's samples carry. */
function exportsOf(text: string): { names: Set<string>; labels: Map<string, Set<string>> } {
  const names = new Set<string>();
  const labels = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\w+)$/.exec(line);
    if (type) {
      const [, name = '', kind = ''] = type;
      const series =
        kind === 'histogram'
          ? ['_bucket', '_sum', '_count']
          : kind === 'summary'
            ? ['', '_sum', '_count']
            : [''];
      for (const suffix of series) names.add(name + suffix);
      continue;
    }
    const sample = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? /.exec(line);
    if (!sample) continue;
    const seen = labels.get(sample[1]!) ?? new Set<string>();
    for (const [, label] of (sample[2] ?? '').matchAll(/([a-zA-Z_]\w*)="(?:[^"\\]|\\.)*"/g)) seen.add(label!);
    labels.set(sample[1]!, seen);
  }
  return { names, labels };
}

function dashboardPanels(): Panel[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
  return dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

function alertRules(): Rule[] {
  const file = parseYaml(readFileSync(ALERTS, 'utf8')) as { groups: { name: string; rules: Rule[] }[] };
  return file.groups.flatMap((g) => g.rules);
}

describe('the dashboard and alert rules against /metrics', () => {
  let server: TestServer;
  let receiver: WebhookReceiver;
  let exported: ReturnType<typeof exportsOf>;

  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    server = await startTestServer(pgliteEngine, {
      overrides: { HERALD_WEBHOOK_ALLOW_NETWORKS: '127.0.0.1/32', HERALD_DISPATCH_POLL_MS: '100' },
    });
    await exercise(server, receiver);
    exported = exportsOf(await scrape(server.url));
  });
  afterAll(async () => {
    await server?.stop();
    await receiver?.close();
  });

  /** Every metric and label `expr` reads is exported; `where` names the expression in failures. */
  function expectExported(where: string, { selectors, grouping }: Reads): void {
    expect(selectors.length, `${where}: reads no metric`).toBeGreaterThan(0);
    const sampled = new Set<string>(TARGET_LABELS);
    for (const { metric, labels } of selectors) {
      expect(exported.names.has(metric), `${where}: ${metric} is not on /metrics`).toBe(true);
      const carried = exported.labels.get(metric);
      if (!carried) continue;
      for (const label of [...carried, ...TARGET_LABELS]) sampled.add(label);
      for (const label of labels) {
        expect(
          carried.has(label) || TARGET_LABELS.includes(label),
          `${where}: ${metric} has no ${label}`,
        ).toBe(true);
      }
    }
    // Grouping labels come from any metric the expression reads; checked when one of them has samples.
    if (sampled.size === TARGET_LABELS.length) return;
    for (const label of grouping) expect(sampled.has(label), `${where}: nothing has ${label}`).toBe(true);
  }

  it("reads only metrics and labels the server exports, in every panel's queries", () => {
    const targets = dashboardPanels().flatMap((p) =>
      (p.targets ?? []).map((t) => ({ panel: p.title, ...t })),
    );
    expect(targets.length).toBeGreaterThan(20);
    for (const { panel, expr } of targets) expectExported(`panel "${panel}": ${expr}`, promqlReads(expr));
  });

  it('reads only metrics and labels the server exports, in every alert rule', () => {
    const rules = alertRules();
    expect(rules.length).toBeGreaterThan(5);
    for (const rule of rules) expectExported(`rule ${rule.alert}: ${rule.expr}`, promqlReads(rule.expr));
  });

  it('lets a Prometheus data source be chosen, and filters by job from a metric the server exports', () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
      schemaVersion: number;
      templating: { list: { name: string; type: string; query: string | { query: string } }[] };
    };
    expect(dashboard.schemaVersion).toBe(39);
    const variables = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    expect(variables.get('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const job = variables.get('job')!.query;
    const [, metric, label] = /^label_values\((\w+), *(\w+)\)$/.exec(
      typeof job === 'string' ? job : job.query,
    )!;
    expectExported('the job variable', { selectors: [{ metric: metric!, labels: [label!] }], grouping: [] });

    const panels = dashboardPanels().filter((p) => p.type !== 'row');
    expect(new Set(dashboardPanels().map((p) => p.id)).size).toBe(dashboardPanels().length);
    for (const panel of panels) {
      expect(panel.datasource?.uid, panel.title).toBe(DATASOURCE);
      for (const target of panel.targets ?? []) expect(target.datasource?.uid, panel.title).toBe(DATASOURCE);
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
    }
  });

  it('gives every alert a unique name, a severity, a summary and a description', () => {
    const rules = alertRules();
    expect(new Set(rules.map((r) => r.alert)).size).toBe(rules.length);
    for (const rule of rules) {
      expect(rule.alert).toMatch(/^Herald[A-Z][A-Za-z]+$/);
      expect(['critical', 'warning'], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description, rule.alert).toBeTruthy();
    }
  });
});

/** Traffic on every channel and both inbox transports, so labelled series have samples to check labels on. */
async function exercise(server: TestServer, receiver: WebhookReceiver): Promise<void> {
  await server.adminService().createWebhookEndpoint({ url: `${receiver.url}/ok` });
  const token = await server.userToken('ops-artifacts');
  const ws = new WebSocket(`${server.url.replace('http', 'ws')}/ws`, ['herald.v1', `bearer.${token}`]);
  const frames: { type: string }[] = [];
  ws.on('message', (data) => frames.push(JSON.parse(String(data)) as { type: string }));
  await until('connection_ack', 5_000, () => frames.find((f) => f.type === 'connection_ack'));
  ws.send(JSON.stringify({ type: 'resume', after_seq: 0 }));
  const stream = new AbortController();
  const streaming = (async () => {
    for await (const _ of server
      .admin()
      .streamNotifications({ userId: 'ops-artifacts' }, { signal: stream.signal })) {
    }
  })().catch(() => {});

  const sent = await server.admin().send({
    userId: 'ops-artifacts',
    type: 'ops.artifacts',
    title: 'Hello',
    recipient: { email: 'ops@example.com', phone: '+14155550100' },
    channels: [Channel.IN_APP, Channel.EMAIL, Channel.SMS, Channel.WEBHOOK],
  });
  await until('every delivery attempted', 10_000, async () => {
    const { notification } = await server.admin().getNotification({ notificationId: sent.notificationId });
    const pending = notification!.deliveries.filter(
      (d) => d.channel !== Channel.IN_APP && d.status !== DeliveryStatus.SENT,
    );
    return pending.length === 0 && frames.some((f) => f.type === 'notification') ? true : undefined;
  });
  await server.admin().markNotifications({
    userId: 'ops-artifacts',
    notificationIds: [sent.notificationId],
    action: MarkAction.READ,
  });
  stream.abort();
  await streaming;
  ws.close();
}
