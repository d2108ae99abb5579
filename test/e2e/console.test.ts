/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The operator console (/console) in headless Chromium, against a real server on the embedded engine with no
// providers file (e-mail, SMS and push go to the outbox) and webhooks to a local receiver:
// - it is served under a strict CSP (no inline script or style, Trusted Types with no policy) and no page
//   ever violates it; the key field is a masked text field, never a password field; signing in keeps the
//   admin key in sessionStorage only, sends it only as the bearer token of the RPCs and never in a request
//   URL; signing out forgets it;
// - each view shows what the API answers: activity (filters narrow, Load more pages, Live shows a new Send
//   and one that became visible after newer ones, at its place, without a reload), a notification's timeline
//   (steps, attempts, status events; Cancel and Replay change what the API reports, Back in the confirmation
//   sends nothing), providers, charts drawn from the delivery figures, the outbox, suppressions (add and
//   remove round-trip), webhook endpoints (disable and enable, a rotated secret that really signs, recent
//   deliveries: those SearchNotifications finds by endpoint_id, never another endpoint's) and templates (a
//   preview as PreviewTemplate renders it);
// - a key without the admin scope, or an unknown one, gets the message "This key is not an admin key" and
//   nothing else, whether typed in or left in sessionStorage.
// Screenshots of every view (light; the activity view also dark and phone-sized) are kept in
// test-artifacts/console/.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page, type Request } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Channel, DeliveryStatus, type Notification } from '../../clients/node/index.js';
import { startWebhookReceiver, type WebhookReceiver } from '../emulators/webhook-receiver.js';
import { chromiumArgs, chromiumAvailable, chromiumPath } from '../support/browser.js';
import { pgliteEngine } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

const WAIT_MS = 8_000;
const KEY_ITEM = 'herald.console.key';
const artifacts = fileURLToPath(new URL('../../test-artifacts/console/', import.meta.url));
const SETTINGS = {
  HERALD_DISPATCH_POLL_MS: '200',
  HERALD_WEBHOOK_ALLOW_NETWORKS: '127.0.0.1/32',
  HERALD_RETRY_WEBHOOK: 'attempts=2,base_ms=50,max_delay_ms=100,max_age_ms=60000,retry_after_cap_ms=5000',
  HERALD_WEBHOOK_TIMEOUT_MS: '1000',
};
const FINAL = new Set([
  DeliveryStatus.SENT,
  DeliveryStatus.DELIVERED,
  DeliveryStatus.FAILED,
  DeliveryStatus.EXPIRED,
  DeliveryStatus.SKIPPED,
  DeliveryStatus.CANCELLED,
]);

interface Recorded {
  url: string;
  method: string;
  authorization: string | undefined;
  /** The request body (an RPC's JSON request). */
  body: string;
  /** The HTTP status of the answer, once it came. */
  status?: number;
}

// Each test drives a browser through several views: more time than the default, still bounded.
describe.runIf(chromiumAvailable)('the operator console in headless Chromium', { timeout: 60_000 }, () => {
  let browser: Browser;
  let server: TestServer;
  let receiver: WebhookReceiver;
  /** Every request any console page made in the current test. */
  let requests: Recorded[] = [];
  /** Keys used in the current test: none may appear in a URL. */
  let keys: string[] = [];
  const ids = {
    alice: '',
    bob: '',
    failed: '',
    hooked: '',
    escalated: '',
    hooksEndpoint: '',
    statusEndpoint: '',
  };

  /**
   * Waits until every delivery of the notification is final, but for QUEUED ones that wait: in-app (for a
   * client to take it) and later escalation steps.
   */
  async function settled(notificationId: string): Promise<Notification> {
    return until(`deliveries of ${notificationId} settled`, WAIT_MS, async () => {
      const { notification } = await server.admin().getNotification({ notificationId });
      const waiting = notification!.deliveries.every(
        (d) =>
          FINAL.has(d.status) ||
          (d.status === DeliveryStatus.QUEUED && (d.step > 0 || d.channel === Channel.IN_APP)),
      );
      return waiting ? notification : undefined;
    });
  }

  beforeAll(async () => {
    await mkdir(artifacts, { recursive: true });
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    receiver = await startWebhookReceiver();
    server = await startTestServer(pgliteEngine, { overrides: SETTINGS });
    const admin = server.adminService();
    const hooks = await admin.createWebhookEndpoint({
      url: `${receiver.url}/hooks`,
      description: 'console hooks',
      eventTypes: ['console.hook'],
    });
    ids.hooksEndpoint = hooks.endpoint!.id;
    await admin.createWebhookEndpoint({
      url: `${receiver.url}/fail`,
      description: 'fails once',
      eventTypes: ['console.fail'],
    });
    const status = await admin.createWebhookEndpoint({
      url: `${receiver.url}/status`,
      description: 'status events',
      eventTypes: ['notification.failed'],
    });
    ids.statusEndpoint = status.endpoint!.id;
    // A redirect is never followed: the first delivery to /fail fails for good.
    receiver.script('/fail', [{ status: 302, headers: { location: '/elsewhere' }, body: 'moved away' }]);
    await admin.putRoutingRule({
      rule: {
        type: 'console.escalate',
        steps: [{ channels: [Channel.IN_APP] }, { channels: [Channel.EMAIL], delaySeconds: 3600 }],
      },
    });
    await admin.putTemplate({
      template: {
        type: 'console.welcome',
        channel: Channel.EMAIL,
        locale: 'default',
        title: 'Welcome {{ data.name }}',
        body: 'Hello **{{ data.name }}**, <script>alert(1)</script>',
      },
    });
    await admin.putTemplate({
      template: {
        type: 'console.welcome',
        channel: Channel.SMS,
        locale: 'de',
        body: 'Hallo {{ data.name }}',
      },
    });

    const send = server.admin();
    // 55 in-app notifications of one type: more than a page of the activity view.
    await send.sendBatch({
      requests: Array.from({ length: 55 }, (_, i) => ({
        userId: 'bulk',
        type: 'console.bulk',
        title: `Bulk ${i}`,
        channels: [Channel.IN_APP],
      })),
    });
    ids.alice = (
      await send.send({
        userId: 'alice',
        type: 'console.order',
        title: 'Order shipped',
        body: '<img src=x onerror=alert(1)>',
        recipient: { email: 'alice@example.com' },
        channels: [Channel.EMAIL],
      })
    ).notificationId;
    ids.bob = (
      await send.send({
        userId: 'bob',
        type: 'console.sms',
        body: 'Your code is 123456',
        recipient: { phone: '+4915112345678' },
        channels: [Channel.SMS],
      })
    ).notificationId;
    ids.failed = (
      await send.send({
        userId: 'carol',
        type: 'console.fail',
        title: 'Will fail',
        channels: [Channel.WEBHOOK],
      })
    ).notificationId;
    ids.hooked = (
      await send.send({ userId: 'dave', type: 'console.hook', title: 'Hooked', channels: [Channel.WEBHOOK] })
    ).notificationId;
    ids.escalated = (
      await send.send({
        userId: 'erin',
        type: 'console.escalate',
        title: 'Escalates',
        recipient: { email: 'erin@example.com' },
      })
    ).notificationId;
    for (const id of [ids.alice, ids.bob, ids.hooked, ids.escalated]) await settled(id);
    // The failed delivery, and the notification.failed status event it caused, both done.
    await until('the status event of the failed webhook', WAIT_MS, async () => {
      const n = await settled(ids.failed);
      return n.deliveries.length === 2 ? n : undefined;
    });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await receiver?.close();
  });

  afterEach(() => {
    for (const key of keys) {
      expect(requests.filter((r) => r.url.includes(key)).map((r) => r.url)).toEqual([]);
    }
    requests = [];
    keys = [];
  });

  /** A fresh browser context (its own sessionStorage) on /console, signed in with the key when given. */
  async function openConsole(
    options: { key?: string; view?: string; colorScheme?: 'light' | 'dark' } = {},
  ): Promise<Page> {
    const key = options.key ?? server.adminKey;
    if (key) keys.push(key);
    const context = await browser.newContext({
      colorScheme: options.colorScheme ?? 'light',
      viewport: { width: 1280, height: 900 },
    });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    const recorded = new Map<Request, Recorded>();
    page.on('request', (r) => {
      const entry = {
        url: r.url(),
        method: r.method(),
        authorization: r.headers().authorization,
        body: r.postData() ?? '',
      };
      recorded.set(r, entry);
      requests.push(entry);
    });
    page.on('response', (r) => {
      const entry = recorded.get(r.request());
      if (entry) entry.status = r.status();
    });
    await page.addInitScript(() => {
      const seen: string[] = [];
      (window as unknown as { cspViolations: string[] }).cspViolations = seen;
      document.addEventListener('securitypolicyviolation', (e) =>
        seen.push(`${e.violatedDirective} ${e.blockedURI}`),
      );
    });
    await page.goto(`${server.url}/console${options.view ? `#/${options.view}` : ''}`);
    if (options.key !== '') {
      await page.fill('#sign-in-key', key);
      await page.click('#sign-in-form button[type=submit]');
    }
    return page;
  }

  async function signedIn(view: string, colorScheme: 'light' | 'dark' = 'light'): Promise<Page> {
    const page = await openConsole({ view, colorScheme });
    await page.locator('#nav').waitFor({ state: 'visible' });
    await page.locator(`#view-${view.split('/')[0]}`).waitFor({ state: 'visible' });
    return page;
  }

  /** No policy violation on the page and no value shown that was not there, then closed. */
  async function finish(page: Page): Promise<void> {
    expect(await page.locator('body').textContent()).not.toMatch(/undefined|NaN|\[object Object\]/);
    const violations = await page.evaluate(
      () => (window as unknown as { cspViolations: string[] }).cspViolations,
    );
    expect(violations).toEqual([]);
    await page.context().close();
  }

  const shot = (page: Page, name: string) =>
    page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });

  const rowIds = (page: Page, table: string) =>
    page.$$eval(`#${table} tbody tr`, (rows) => rows.map((r) => (r as HTMLElement).dataset.id ?? ''));

  /** Waits for the table to hold exactly these row ids, in this order. */
  async function expectRows(page: Page, table: string, expected: string[]): Promise<void> {
    await page
      .waitForFunction(
        ([t, want]) =>
          JSON.stringify(
            [...document.querySelectorAll(`#${t} tbody tr`)].map((r) => (r as HTMLElement).dataset.id),
          ) === JSON.stringify(want),
        [table, expected] as const,
      )
      .catch(() => {});
    expect(await rowIds(page, table)).toEqual(expected);
  }

  /** The RPC requests made so far (to `method` only, when given), in the order they were sent. */
  const rpcCalls = (method?: string) =>
    requests.filter(
      (r) =>
        r.method === 'POST' && r.url.includes('/herald.v1.') && (!method || r.url.endsWith(`/${method}`)),
    );

  async function confirmDialog(page: Page): Promise<void> {
    await page.locator('#confirm').waitFor({ state: 'visible' });
    await page.click('#confirm-ok');
  }

  it('is served under a strict policy; the key lives in sessionStorage and travels only as the bearer token', async () => {
    const response = await fetch(`${server.url}/console`);
    expect(response.status).toBe(200);
    const csp = response.headers.get('content-security-policy') ?? '';
    const directives = new Map(
      csp.split(';').map((d) => {
        const [name = '', ...values] = d.trim().split(/\s+/);
        return [name, values] as const;
      }),
    );
    expect(Object.fromEntries(directives)).toEqual({
      'default-src': ["'none'"],
      'script-src': ["'self'"],
      'style-src': ["'self'"],
      'connect-src': ["'self'"],
      'base-uri': ["'none'"],
      'form-action': ["'none'"],
      'frame-ancestors': ["'none'"],
      'require-trusted-types-for': ["'script'"],
      'trusted-types': ["'none'"],
    });
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('referrer-policy')).toBe('no-referrer');
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await response.text();
    // No inline script, no <style>, no style attribute: everything comes from files.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=|\son[a-z]+=/i);
    for (const [asset, type] of [
      ['/console/console.js', 'text/javascript; charset=utf-8'],
      ['/console/activity.js', 'text/javascript; charset=utf-8'],
      ['/console/console.css', 'text/css; charset=utf-8'],
      ['/console/uPlot.iife.min.js', 'text/javascript; charset=utf-8'],
      ['/console/uPlot.min.css', 'text/css; charset=utf-8'],
    ]) {
      const res = await fetch(`${server.url}${asset}`);
      expect([asset, res.status, res.headers.get('content-type')]).toEqual([asset, 200, type]);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      const etag = res.headers.get('etag') ?? '';
      expect(etag).toMatch(/^".+"$/);
      const again = await fetch(`${server.url}${asset}`, { headers: { 'if-none-match': etag } });
      expect(again.status).toBe(304);
    }
    expect((await fetch(`${server.url}/console/nope.js`)).status).toBe(404);

    keys.push(server.adminKey);
    const page = await openConsole({ key: '' });
    await page.locator('#sign-in').waitFor({ state: 'visible' });
    expect(await page.locator('#nav').isHidden()).toBe(true);
    // The key field is no password field (and the form has no username field), so the browser's password
    // manager never offers to keep the key: a text field, masked by the stylesheet, with no name.
    const field = await page.$eval('#sign-in-key', (e) => {
      const input = e as HTMLInputElement;
      return {
        type: input.type,
        name: input.name,
        autocomplete: input.getAttribute('autocomplete'),
        spellcheck: input.spellcheck,
        mask: getComputedStyle(input).getPropertyValue('-webkit-text-security'),
      };
    });
    expect(field).toEqual({ type: 'text', name: '', autocomplete: 'off', spellcheck: false, mask: 'disc' });
    expect(await page.locator('#sign-in-key').getAttribute('type')).not.toBe('password');
    expect(await page.locator('input[type=password]').count()).toBe(0);
    expect(await page.locator('#sign-in-form input').count()).toBe(1);
    await shot(page, 'sign-in');
    await page.fill('#sign-in-key', server.adminKey);
    await page.click('#sign-in-form button[type=submit]');
    await page.locator('#view-activity').waitFor({ state: 'visible' });
    expect(await page.evaluate((item) => sessionStorage.getItem(item), KEY_ITEM)).toBe(server.adminKey);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    expect(await page.context().cookies()).toEqual([]);
    expect(await page.inputValue('#sign-in-key')).toBe('');
    // The key stays out of the address, and every RPC carried it as the bearer token.
    expect(page.url()).not.toContain(server.adminKey);
    await page.locator('#activity-table tbody tr').first().waitFor();
    const rpcs = requests.filter((r) => r.url.includes('/herald.v1.'));
    expect(rpcs.length).toBeGreaterThan(1);
    for (const r of rpcs) expect(r.authorization).toBe(`Bearer ${server.adminKey}`);
    expect(requests.filter((r) => !r.url.includes('/herald.v1.')).every((r) => !r.authorization)).toBe(true);

    // A reload keeps the tab signed in; signing out forgets the key and empties the views.
    await page.reload();
    await page.locator('#activity-table tbody tr').first().waitFor();
    await page.click('#sign-out');
    await page.locator('#sign-in').waitFor({ state: 'visible' });
    expect(await page.evaluate((item) => sessionStorage.getItem(item), KEY_ITEM)).toBeNull();
    expect(await page.locator('#activity-table tbody tr').count()).toBe(0);
    expect(await page.locator('#view-activity').isHidden()).toBe(true);
    await finish(page);
  });

  it('activity lists notifications newest first, narrows by each filter, pages, and follows live', async () => {
    const admin = server.adminService();
    const page = await signedIn('activity');
    const first = await admin.searchNotifications({ limit: 50 });
    expect(first.notifications.length).toBe(50);
    await expectRows(
      page,
      'activity-table',
      first.notifications.map((n) => n.id),
    );
    const alice = page.locator(`#activity-table tr[data-id="${ids.alice}"]`);
    expect(await alice.locator('td').nth(2).textContent()).toBe('alice');
    expect(await alice.locator('td').nth(3).textContent()).toBe('console.order');
    expect(await alice.locator('li[data-channel="email"]').getAttribute('data-status')).toBe('sent');
    // The failed webhook shows both its delivery and the status event it caused.
    const failedChips = await page
      .locator(`#activity-table tr[data-id="${ids.failed}"] li`)
      .evaluateAll((items) => items.map((i) => `${i.textContent}`));
    expect(failedChips.sort()).toEqual(['webhook notification.failedsent', 'webhookfailed']);
    await shot(page, 'activity');

    const apply = async (fill: Record<string, string>) => {
      await page.click('#activity-clear');
      for (const [field, value] of Object.entries(fill)) {
        const input = page.locator(`#activity-${field}`);
        if ((await input.evaluate((e) => e.tagName)) === 'SELECT') await input.selectOption(value);
        else await input.fill(value);
      }
      await page.click('#activity-filters button[type=submit]');
    };

    await apply({ user: 'alice' });
    await expectRows(page, 'activity-table', [ids.alice]);
    await apply({ channel: 'CHANNEL_WEBHOOK' });
    await expectRows(page, 'activity-table', [ids.hooked, ids.failed]);
    await apply({ status: 'DELIVERY_STATUS_FAILED' });
    await expectRows(page, 'activity-table', [ids.failed]);
    await apply({ channel: 'CHANNEL_SMS', status: 'DELIVERY_STATUS_SENT' });
    await expectRows(page, 'activity-table', [ids.bob]);
    await apply({ type: 'console.escalate' });
    await expectRows(page, 'activity-table', [ids.escalated]);
    await apply({ from: '2099-01-01T00:00' });
    await expectRows(page, 'activity-table', []);
    await apply({ user: 'carol', from: '2000-01-01T00:00', to: '2099-01-01T00:00' });
    await expectRows(page, 'activity-table', [ids.failed]);

    // 55 of one type: a page of 50, then the rest.
    await apply({ type: 'console.bulk' });
    const bulk = (await admin.searchNotifications({ type: 'console.bulk', limit: 200 })).notifications;
    expect(bulk).toHaveLength(55);
    await expectRows(
      page,
      'activity-table',
      bulk.slice(0, 50).map((n) => n.id),
    );
    await page.click('#activity-more');
    await expectRows(
      page,
      'activity-table',
      bulk.map((n) => n.id),
    );
    expect(await page.locator('#activity-more').isHidden()).toBe(true);

    // Live: a new Send shows up on top within seconds, without a reload (the marker survives).
    await page.click('#activity-clear');
    await page.locator(`#activity-table tr[data-id="${first.notifications[0]!.id}"]`).first().waitFor();
    await page.check('#activity-live');
    await page.evaluate(() => {
      (window as unknown as { marker: number }).marker = 42;
    });
    const sentAt = Date.now();
    const { notificationId } = await server.admin().send({
      userId: 'frank',
      type: 'console.live',
      title: 'Live one',
      channels: [Channel.IN_APP],
    });
    await page.waitForFunction(
      (id) => (document.querySelector('#activity-table tbody tr') as HTMLElement | null)?.dataset.id === id,
      notificationId,
    );
    expect(Date.now() - sentAt).toBeLessThan(WAIT_MS);
    expect(await page.evaluate(() => (window as unknown as { marker: number }).marker)).toBe(42);
    expect(await page.locator(`#activity-table tr[data-id="${notificationId}"]`).count()).toBe(1);

    // A notification that becomes visible only after a newer one was shown (its Send's transaction began
    // earlier and committed later): older than the newest shown by up to 5 s, still newer than the one below.
    // Live looks back and puts it at its place, below the top, without a reload.
    const [late] = await server.herald.database.sql.query<{ id: string }>(
      `with newest as (select created_at from notifications where id = $1::uuid),
            below as (select created_at from notifications where id = $2::uuid)
       insert into notifications (id, user_id, seq, type, priority, data, send_at, created_at)
       select gen_random_uuid(), 'late-user', 1, 'late.type', 2, '{}'::jsonb, now(),
              newest.created_at - least(interval '5 seconds', (newest.created_at - below.created_at) / 2)
       from newest, below
       returning id`,
      [notificationId, first.notifications[0]!.id],
    );
    const lateId = late!.id;
    const top = (await admin.searchNotifications({ limit: 52 })).notifications;
    const newest = top.map((n) => n.id);
    expect(newest.slice(0, 3)).toEqual([notificationId, lateId, first.notifications[0]!.id]);
    const liveCreated = top[0]!.createdAt!;
    const liveCreatedMs = Number(liveCreated.seconds) * 1000 + Math.floor(liveCreated.nanos / 1e6);
    // The 50 shown before, the Live one and the late one: all in the API's order.
    await expectRows(page, 'activity-table', newest);
    // Later checks read it again and skip it: still there once, at its place.
    const checks = rpcCalls('SearchNotifications').length;
    await until('two more Live checks', WAIT_MS, async () =>
      rpcCalls('SearchNotifications').length >= checks + 2 ? true : undefined,
    );
    expect(await rowIds(page, 'activity-table')).toEqual(newest);
    expect(await page.evaluate(() => (window as unknown as { marker: number }).marker)).toBe(42);
    // Each check asked for the last 30 seconds before the newest shown, never for what follows an id.
    const live = rpcCalls('SearchNotifications')
      .slice(-2)
      .map((r) => JSON.parse(r.body) as { createdAfter?: string; afterId?: string; limit?: number });
    for (const check of live) {
      expect(check.afterId).toBeUndefined();
      expect(check.limit).toBe(100);
      expect(Date.parse(check.createdAfter!)).toBe(liveCreatedMs - 30_000);
    }
    expect(requests.filter((r) => r.body.includes('afterId'))).toEqual([]);
    await page.uncheck('#activity-live');
    // On a phone the page does not scroll sideways: only the table does, inside its own box.
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await shot(page, 'activity-narrow');
    await finish(page);

    const dark = await signedIn('activity', 'dark');
    await dark.locator('#activity-table tbody tr').first().waitFor();
    await shot(dark, 'activity-dark');
    await finish(dark);
  });

  it("a notification's timeline shows attempts and status events, and Replay requeues a failed webhook delivery", async () => {
    const before = (await server.admin().getNotification({ notificationId: ids.failed })).notification!;
    const failed = before.deliveries.find((d) => d.event === 'notification' || d.event === '')!;
    const event = before.deliveries.find((d) => d.event === 'notification.failed')!;
    expect(failed.status).toBe(DeliveryStatus.FAILED);
    expect(event.status).toBe(DeliveryStatus.SENT);
    const attempt = failed.attempts[0]!;
    expect(attempt.statusCode).toBe(302);

    const page = await signedIn(`notification/${ids.failed}`);
    const card = page.locator(`#notification-body .step article.delivery[data-id="${failed.id}"]`);
    await card.waitFor();
    expect(await page.locator('#notification-title').textContent()).toBe(`Notification ${ids.failed}`);
    expect(await page.locator('#notification-body dd[data-fact="user"]').textContent()).toBe('carol');
    expect(await card.getAttribute('data-status')).toBe('failed');
    expect(await card.locator('dd[data-fact="destination"]').textContent()).toBe(failed.destination);
    expect(failed.destination).toBe(`endpoint ${(await endpointAt('/fail')).id}`);
    expect(await card.locator('dd[data-fact="provider"]').textContent()).toBe(failed.provider);
    const cells = await card.locator('tr.attempt').first().locator('td').allTextContents();
    expect(cells.slice(1)).toEqual([
      attempt.provider,
      attempt.destination,
      attempt.outcome,
      '302',
      `${attempt.latencyMs} ms`,
      attempt.error,
      attempt.response,
    ]);
    expect(attempt.response).toContain('moved away');
    expect(await card.locator('tr.attempt').count()).toBe(failed.attempts.length);
    // The status event about it, apart from the steps.
    const eventCard = page.locator(
      `#notification-body .status-events article.delivery[data-id="${event.id}"]`,
    );
    expect(await eventCard.locator('h4').textContent()).toBe('webhook: notification.failed sent');
    expect(await eventCard.locator('dd[data-fact="destination"]').textContent()).toBe(
      `endpoint ${ids.statusEndpoint}`,
    );
    // Nothing pending: no Cancel.
    expect(await page.locator('#notification-cancel').isHidden()).toBe(true);
    await shot(page, 'notification');

    // Replay asks first; going back sends nothing and changes nothing.
    await card.locator('button.replay').click();
    await page.locator('#confirm').waitFor({ state: 'visible' });
    await page.click('#confirm-back');
    await page.locator('#confirm').waitFor({ state: 'hidden' });
    expect(rpcCalls('ReplayDelivery')).toEqual([]);
    const backed = (await server.admin().getNotification({ notificationId: ids.failed })).notification!;
    const unchanged = backed.deliveries.find((d) => d.id === failed.id)!;
    expect([unchanged.status, unchanged.attempts.length]).toEqual([
      DeliveryStatus.FAILED,
      failed.attempts.length,
    ]);
    await card.locator('button.replay').click();
    await confirmDialog(page);
    await page.waitForFunction(
      (id) =>
        document.querySelector(`article.delivery[data-id="${id}"]`)?.getAttribute('data-status') === 'sent',
      failed.id,
    );
    // Exactly one ReplayDelivery went out, the confirmed one: a replay from Back would have been sent first.
    expect(rpcCalls('ReplayDelivery').map((r) => JSON.parse(r.body))).toEqual([{ deliveryId: failed.id }]);
    const after = (await server.admin().getNotification({ notificationId: ids.failed })).notification!;
    expect(after.deliveries.find((d) => d.id === failed.id)?.status).toBe(DeliveryStatus.SENT);
    expect(receiver.countsByWebhookId().get(failed.id)).toBe(2);
    expect(await page.locator('#notification-state').textContent()).toMatch(/replayed/);
    const replayed = page.locator(`article.delivery[data-id="${failed.id}"]`);
    const attemptsNow = after.deliveries.find((d) => d.id === failed.id)!.attempts;
    expect(attemptsNow.at(-1)?.outcome).toBe('sent');
    await page.waitForFunction(
      ([id, n]) => document.querySelectorAll(`article.delivery[data-id="${id}"] tr.attempt`).length === n,
      [failed.id, attemptsNow.length] as const,
    );
    expect(await replayed.locator('button.replay').count()).toBe(0);
    await finish(page);
  });

  it('shows escalation steps, and Cancel cancels the pending one', async () => {
    const page = await signedIn(`notification/${ids.escalated}`);
    await page.locator('#notification-body section.step').nth(1).waitFor();
    expect(
      await page.locator('#notification-body section.step').evaluateAll((steps) =>
        steps.map((s) => ({
          step: (s as HTMLElement).dataset.step,
          title: s.querySelector('h4')?.textContent,
          deliveries: [...s.querySelectorAll('article.delivery')].map(
            (d) => `${(d as HTMLElement).dataset.channel} ${(d as HTMLElement).dataset.status}`,
          ),
        })),
      ),
    ).toEqual([
      { step: '0', title: 'Step 0 (at once)', deliveries: ['in_app queued'] },
      { step: '1', title: 'Step 1', deliveries: ['email queued'] },
    ]);
    expect(await page.locator('section.step[data-step="1"] dd[data-fact="destination"]').textContent()).toBe(
      'e***@example.com',
    );
    await page.locator('#notification-cancel').waitFor({ state: 'visible' });
    await page.click('#notification-cancel');
    await confirmDialog(page);
    await page.waitForFunction(() =>
      /^\d+ deliver(y|ies) cancelled\.$/.test(
        document.getElementById('notification-state')?.textContent ?? '',
      ),
    );
    await page.locator('section.step[data-step="1"] article[data-status="cancelled"]').waitFor();
    const { notification } = await server.admin().getNotification({ notificationId: ids.escalated });
    expect(notification!.deliveries.find((d) => d.step === 1)?.status).toBe(DeliveryStatus.CANCELLED);
    // Every delivery as the API now reports it.
    expect(
      await page
        .locator('article.delivery')
        .evaluateAll((cards) =>
          cards.map((c) => `${(c as HTMLElement).dataset.id} ${(c as HTMLElement).dataset.status}`),
        ),
    ).toEqual(notification!.deliveries.map((d) => `${d.id} ${DeliveryStatus[d.status].toLowerCase()}`));
    expect(await page.locator('#notification-cancel').isHidden()).toBe(true);
    await finish(page);
  });

  it('providers shows every provider with its circuit, rate limit, attempts and errors', async () => {
    const health = await server.adminService().getProviderHealth({ windowMinutes: 15 });
    const page = await signedIn('providers');
    const expected = health.providers.map((p) => p.provider);
    expect(expected.length).toBeGreaterThan(0);
    await page.waitForFunction(
      (n) => document.querySelectorAll('#providers-table tbody tr').length === n,
      expected.length,
    );
    const rows = await page.$$eval('#providers-table tbody tr', (trs) =>
      trs.map((tr) => ({
        provider: (tr as HTMLElement).dataset.provider,
        channel: (tr as HTMLElement).dataset.channel,
        cells: [...tr.querySelectorAll('td')].map((td) => td.textContent ?? ''),
      })),
    );
    expect(rows.map((r) => r.provider)).toEqual(expected);
    // Each configured channel has its provider: the outbox for e-mail, SMS and push, the webhook sender.
    expect(new Set(rows.map((r) => r.channel))).toEqual(new Set(['email', 'sms', 'push', 'webhook']));
    const webhook = health.providers.find((p) => p.channel === Channel.WEBHOOK)!;
    const shown = rows.find((r) => r.channel === 'webhook')!;
    expect(webhook.attempts).toBeGreaterThan(0n);
    expect(shown.cells[4]).toBe(String(webhook.attempts));
    expect(shown.cells[5]).toBe(String(webhook.failures));
    // The 302 is among its last errors.
    expect(webhook.lastErrors.some((e) => e.statusCode === 302)).toBe(true);
    expect(shown.cells[7]).toContain('302');
    expect(await page.locator('#providers-state').textContent()).toMatch(/over the last 15 minutes/);
    await shot(page, 'providers');
    await finish(page);
  });

  it('charts draws sent, failed and p95 latency per channel with uPlot', async () => {
    const page = await signedIn('charts');
    await page.waitForFunction(() =>
      ['chart-sent', 'chart-failed', 'chart-latency'].every(
        (id) => document.getElementById(id)?.dataset.total,
      ),
    );
    const { points } = await server.adminService().getDeliveryStats({ windowMinutes: 60 });
    const sum = (field: 'sent' | 'failed') => points.reduce((n, p) => n + Number(p[field]), 0);
    const charts = await page.$$eval('figure.chart', (figures) =>
      figures.map((f) => {
        const canvas = f.querySelector('canvas');
        return {
          id: f.id,
          total: Number((f as HTMLElement).dataset.total),
          channels: (f as HTMLElement).dataset.channels,
          canvas: canvas ? canvas.width > 0 && canvas.height > 0 : false,
          legend: [...f.querySelectorAll('.u-legend .u-series .u-label')].map((l) => l.textContent),
        };
      }),
    );
    const channels = ['in_app', 'push', 'email', 'sms', 'webhook'].filter((c) =>
      points.some((p) => p.channel === Channel[c.toUpperCase() as keyof typeof Channel]),
    );
    expect(channels).toEqual(expect.arrayContaining(['email', 'sms', 'webhook']));
    expect(charts.map((c) => c.id)).toEqual(['chart-sent', 'chart-failed', 'chart-latency']);
    for (const chart of charts) {
      expect(chart.canvas).toBe(true);
      expect(chart.channels).toBe(channels.join(','));
      expect(chart.legend.slice(1)).toEqual(channels);
    }
    expect(charts[0]!.total).toBe(sum('sent'));
    expect(charts[0]!.total).toBeGreaterThanOrEqual(4);
    expect(charts[1]!.total).toBe(sum('failed'));
    expect(charts[1]!.total).toBeGreaterThanOrEqual(1);
    expect(charts[2]!.total).toBe(Math.max(0, ...points.map((p) => p.p95LatencyMs)));
    // Something was drawn: the plot canvas is not blank.
    const drawn = await page.$eval('#chart-sent canvas', (c) => {
      const canvas = c as HTMLCanvasElement;
      const pixels = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      return pixels.some((v, i) => i % 4 === 3 && v > 0);
    });
    expect(drawn).toBe(true);
    await shot(page, 'charts');
    await finish(page);
  });

  it('outbox lists what the outbox captured, newest first, by channel', async () => {
    const admin = server.adminService();
    const page = await signedIn('outbox');
    const all = await admin.listOutboxMessages({ limit: 50 });
    expect(all.messages.length).toBeGreaterThanOrEqual(2);
    await expectRows(
      page,
      'outbox-table',
      all.messages.map((m) => m.id),
    );
    const sms = all.messages.find((m) => m.notificationId === ids.bob)!;
    const smsRow = page.locator(`#outbox-table tr[data-id="${sms.id}"]`);
    expect(await smsRow.locator('td').nth(3).textContent()).toBe('+4915112345678');
    expect(await smsRow.locator('summary').textContent()).toBe('Your code is 123456');
    const mail = all.messages.find((m) => m.notificationId === ids.alice)!;
    expect(await page.locator(`#outbox-table tr[data-id="${mail.id}"] summary`).textContent()).toBe(
      'Order shipped',
    );
    await page.selectOption('#outbox-channel', 'CHANNEL_SMS');
    const onlySms = await admin.listOutboxMessages({ channel: Channel.SMS, limit: 50 });
    await expectRows(
      page,
      'outbox-table',
      onlySms.messages.map((m) => m.id),
    );
    await shot(page, 'outbox');
    await finish(page);
  });

  it('suppressions add and remove round-trip through the API', async () => {
    const admin = server.adminService();
    await admin.addSuppression({ channel: Channel.SMS, address: '+4915112345679', reason: 'STOP' });
    const page = await signedIn('suppressions');
    await page.locator('#suppressions-table tr[data-address="+4915112345679"]').waitFor();

    await page.selectOption('#suppression-add-channel', 'CHANNEL_EMAIL');
    await page.fill('#suppression-add-address', 'blocked@example.com');
    await page.fill('#suppression-add-reason', 'asked by phone');
    await page.click('#suppression-add button[type=submit]');
    const added = page.locator('#suppressions-table tr[data-address="blocked@example.com"]');
    await added.waitFor();
    expect(await added.locator('td').nth(2).textContent()).toBe('asked by phone');
    const listed = await admin.listSuppressions({ channel: Channel.EMAIL, address: 'blocked@example.com' });
    expect(listed.suppressions.map((s) => [s.address, s.reason])).toEqual([
      ['blocked@example.com', 'asked by phone'],
    ]);
    expect(await page.locator('#suppressions-state').textContent()).toMatch(/^Added blocked@example.com/);

    // Filtered by channel.
    await page.selectOption('#suppression-channel', 'CHANNEL_EMAIL');
    await page.click('#suppression-filters button[type=submit]');
    await page.waitForFunction(() =>
      [...document.querySelectorAll('#suppressions-table tbody tr')].every(
        (r) => (r as HTMLElement).dataset.channel === 'email',
      ),
    );
    expect(await page.locator('#suppressions-table tr[data-address="+4915112345679"]').count()).toBe(0);
    await shot(page, 'suppressions');

    await added.locator('button.remove').click();
    await confirmDialog(page);
    await added.waitFor({ state: 'detached' });
    expect(
      (await admin.listSuppressions({ channel: Channel.EMAIL, address: 'blocked@example.com' })).suppressions,
    ).toEqual([]);
    expect(await page.locator('#suppressions-state').textContent()).toMatch(/^Removed blocked@example.com/);
    await finish(page);
  });

  async function endpointAt(suffix: string) {
    const { endpoints } = await server.adminService().listWebhookEndpoints({});
    return endpoints.find((e) => e.url.endsWith(suffix))!;
  }

  it('webhooks: disable and enable, a rotated secret shown once that really signs, and recent deliveries', async () => {
    const admin = server.adminService();
    const page = await signedIn('webhooks');
    const { endpoints } = await admin.listWebhookEndpoints({});
    await expectRows(
      page,
      'webhooks-table',
      endpoints.map((e) => e.id),
    );
    const row = page.locator(`#webhooks-table tr[data-id="${ids.hooksEndpoint}"]`);
    expect(await row.locator('td').nth(1).textContent()).toBe('console hooks');
    expect(await row.locator('td').nth(2).textContent()).toBe('console.hook');

    await row.locator('button.toggle-enabled').click();
    await confirmDialog(page);
    await page.locator(`#webhooks-table tr[data-id="${ids.hooksEndpoint}"][data-enabled="false"]`).waitFor();
    expect((await endpointAt('/hooks')).enabled).toBe(false);
    expect(await row.locator('button.toggle-enabled').textContent()).toBe('Enable');
    await row.locator('button.toggle-enabled').click();
    await page.locator(`#webhooks-table tr[data-id="${ids.hooksEndpoint}"][data-enabled="true"]`).waitFor();
    expect((await endpointAt('/hooks')).enabled).toBe(true);

    await row.locator('button.rotate').click();
    await confirmDialog(page);
    await page.locator('#webhook-secret').waitFor({ state: 'visible' });
    const secret = (await page.locator('#webhook-secret-value').textContent()) ?? '';
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/=]+$/);
    await shot(page, 'webhooks-secret');
    // The secret shown is the one that signs from now on.
    const { notificationId } = await server.admin().send({
      userId: 'dave',
      type: 'console.hook',
      title: 'After rotation',
      channels: [Channel.WEBHOOK],
    });
    const sent = await settled(notificationId);
    const deliveryId = sent.deliveries[0]!.id;
    expect(sent.deliveries[0]!.status).toBe(DeliveryStatus.SENT);
    expect(receiver.unverified(secret)).not.toContain(deliveryId);
    // Hidden on request.
    await page.click('#webhook-secret-hide');
    expect(await page.locator('#webhook-secret-value').textContent()).toBe('');

    // Recent deliveries: those to the endpoint, of the notifications SearchNotifications finds by endpoint_id.
    const deliveriesTo = async (endpointId: string) => {
      const { notifications } = await admin.searchNotifications({ endpointId, limit: 50 });
      return {
        notifications: notifications.map((n) => n.id),
        deliveries: notifications
          .flatMap((n) => n.deliveries)
          .filter((d) => d.destination === `endpoint ${endpointId}`)
          .map((d) => d.id),
      };
    };
    /** Every webhook delivery to an endpoint other than this one. */
    const elsewhere = async (endpointId: string) =>
      (await admin.searchNotifications({ channel: Channel.WEBHOOK, limit: 200 })).notifications
        .flatMap((n) => n.deliveries)
        .filter((d) => d.channel === Channel.WEBHOOK && d.destination !== `endpoint ${endpointId}`)
        .map((d) => d.id);
    const recentRows = async (endpointId: string) => {
      await page.locator(`#webhook-recent[data-endpoint="${endpointId}"]`).waitFor({ state: 'visible' });
      return rowIds(page, 'webhook-recent-table');
    };

    await row.locator('button.recent').click();
    const toHooks = await deliveriesTo(ids.hooksEndpoint);
    expect(toHooks.notifications).toEqual([notificationId, ids.hooked]);
    expect(toHooks.deliveries).toContain(deliveryId);
    expect(toHooks.deliveries.length).toBe(2);
    await recentRows(ids.hooksEndpoint);
    await expectRows(page, 'webhook-recent-table', toHooks.deliveries);
    expect(
      await page.locator(`#webhook-recent-table tr[data-id="${deliveryId}"]`).getAttribute('data-status'),
    ).toBe('sent');
    expect(await page.locator('#webhook-recent-note').textContent()).toBe(
      '2 deliveries in 2 notifications: every notification with a delivery to this endpoint. ' +
        'Open a notification for its attempts.',
    );
    // No delivery to another endpoint is shown.
    const notHooks = await elsewhere(ids.hooksEndpoint);
    expect(notHooks.length).toBeGreaterThan(0);
    const shownHooks = await recentRows(ids.hooksEndpoint);
    for (const id of notHooks) expect(shownHooks).not.toContain(id);
    await shot(page, 'webhooks');

    // The failed notification has a delivery to /fail and a status event about it to /status: the status
    // endpoint shows the event only, and the hooks endpoint's deliveries are gone.
    const failedDeliveries = (await server.admin().getNotification({ notificationId: ids.failed }))
      .notification!.deliveries;
    const failEndpoint = (await endpointAt('/fail')).id;
    const toFail = failedDeliveries.find((d) => d.destination === `endpoint ${failEndpoint}`)!;
    const statusEvent = failedDeliveries.find((d) => d.event === 'notification.failed')!;
    expect(statusEvent.destination).toBe(`endpoint ${ids.statusEndpoint}`);
    await page.locator(`#webhooks-table tr[data-id="${ids.statusEndpoint}"] button.recent`).click();
    const toStatus = await deliveriesTo(ids.statusEndpoint);
    expect(toStatus.notifications).toContain(ids.failed);
    expect(toStatus.deliveries).toContain(statusEvent.id);
    expect(toStatus.deliveries).not.toContain(toFail.id);
    await recentRows(ids.statusEndpoint);
    await expectRows(page, 'webhook-recent-table', toStatus.deliveries);
    const shown = await recentRows(ids.statusEndpoint);
    expect(shown).not.toContain(toFail.id);
    for (const id of toHooks.deliveries) expect(shown).not.toContain(id);
    expect(await page.locator('#webhook-recent-title').textContent()).toBe(
      `Recent deliveries to ${(await endpointAt('/status')).url}`,
    );
    await finish(page);
  });

  it('templates lists every template and previews one as PreviewTemplate renders it', async () => {
    const admin = server.adminService();
    const page = await signedIn('templates');
    const { templates } = await admin.listTemplates({});
    await page.waitForFunction(
      (n) => document.querySelectorAll('#templates-table tbody tr').length === n,
      templates.length,
    );
    const listed = await page.$$eval('#templates-table tbody tr', (trs) =>
      trs.map((tr) => {
        const d = (tr as HTMLElement).dataset;
        return `${d.type} ${d.channel} ${d.locale}`;
      }),
    );
    expect(listed).toEqual(
      expect.arrayContaining(['console.welcome email default', 'console.welcome sms de']),
    );

    await page.click('#templates-table tr[data-channel="email"] button.preview');
    await page.locator('#template-preview').waitFor({ state: 'visible' });
    // Not JSON: said so, nothing asked.
    await page.fill('#template-preview-data', '{nope');
    await page.click('#template-preview-form button[type=submit]');
    await page.locator('#error').waitFor({ state: 'visible' });
    expect(await page.locator('#error').textContent()).toMatch(/^data: not valid JSON/);

    await page.fill('#template-preview-data', '{"name": "Ada <b>"}');
    await page.click('#template-preview-form button[type=submit]');
    await page.locator('#template-preview-output pre.rendered-body').waitFor();
    const expected = await admin.previewTemplate({
      type: 'console.welcome',
      channel: Channel.EMAIL,
      data: { name: 'Ada <b>' },
    });
    expect(expected.title).toMatch(/^Welcome Ada/);
    expect(await page.locator('#template-preview-output dd[data-fact="title"]').textContent()).toBe(
      expected.title,
    );
    expect(await page.locator('#template-preview-output dd[data-fact="locale"]').textContent()).toBe(
      'default',
    );
    expect(await page.locator('#template-preview-output pre.rendered-body').textContent()).toBe(
      expected.body,
    );
    expect(await page.locator('#template-preview-output pre.rendered-text').textContent()).toBe(
      expected.text,
    );
    expect(await page.locator('#template-preview-output pre.rendered-html').textContent()).toBe(
      expected.html,
    );
    // Shown as text: the rendered markup never became elements of the page.
    expect(await page.locator('#template-preview-output b, #template-preview-output script').count()).toBe(0);
    expect(await page.locator('#error').isHidden()).toBe(true);

    // The SMS template in German, by the recipient's locale.
    await page.click('#templates-table tr[data-channel="sms"] button.preview');
    expect(await page.inputValue('#template-preview-locale')).toBe('de');
    await page.fill('#template-preview-data', '{"name": "Grete"}');
    await page.click('#template-preview-form button[type=submit]');
    await page.waitForFunction(
      () =>
        document.querySelector('#template-preview-output pre.rendered-body')?.textContent === 'Hallo Grete',
    );
    await shot(page, 'templates');
    await finish(page);
  });

  const refused = [
    {
      name: 'a key without the admin scope',
      key: () => server.keyWith('send', 'read'),
      code: 'permission_denied',
    },
    { name: 'an unknown key', key: async () => 'hk_not_a_key', code: 'unauthenticated' },
  ];
  for (const { name, key: keyOf, code } of refused) {
    it(`${name} gets the message and nothing else`, async () => {
      const key = await keyOf();
      const page = await openConsole({ key, view: 'activity' });
      const line = page.locator('#error');
      await line.waitFor({ state: 'visible' });
      expect(await line.textContent()).toMatch(new RegExp(`^This key is not an admin key\\. \\(${code}: `));
      expect(await page.evaluate((item) => sessionStorage.getItem(item), KEY_ITEM)).toBeNull();
      expect(await page.inputValue('#sign-in-key')).toBe('');
      expect(await page.locator('#nav').isHidden()).toBe(true);
      expect(await page.locator('#sign-in').isVisible()).toBe(true);
      expect(await page.locator('section.view:not([hidden])').count()).toBe(0);
      await shot(page, `refused-${code}`);

      // Left in sessionStorage (a key revoked or changed since): every view empties and shows the message.
      for (const view of [
        'activity',
        'providers',
        'charts',
        'outbox',
        'suppressions',
        'webhooks',
        'templates',
      ]) {
        await page.evaluate(([item, k]) => sessionStorage.setItem(item!, k!), [KEY_ITEM, key]);
        // A fresh load of the view, with the key already in the tab's sessionStorage.
        await page.goto('about:blank');
        const start = rpcCalls().length;
        await page.goto(`${server.url}/console#/${view}`);
        await page.waitForFunction(() => !sessionStorage.length && !document.getElementById('error')?.hidden);
        expect(await line.textContent()).toMatch(/^This key is not an admin key\./);
        // Every call the view made has its answer, and each was a refusal: no answer carried anything to
        // show, however late it was handled.
        const answers = await until(`the answers to ${view}'s calls`, WAIT_MS, () => {
          const made = rpcCalls().slice(start);
          return made.length > 0 && made.every((r) => r.status !== undefined)
            ? made.map((r) => r.status)
            : undefined;
        });
        expect(answers.filter((status) => status !== 401 && status !== 403)).toEqual([]);
        expect(await page.locator('section.view:not([hidden])').count()).toBe(0);
        expect(await page.locator('main tbody tr, canvas, #notification-body *').count()).toBe(0);
      }
      // Every RPC that key made was refused; none reached past the key check.
      const rpcs = rpcCalls();
      expect(rpcs.length).toBeGreaterThanOrEqual(8);
      expect(rpcs.filter((r) => r.status !== 401 && r.status !== 403).map((r) => r.url)).toEqual([]);
      await finish(page);
    });
  }
});
