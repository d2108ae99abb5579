/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The outbox page in headless Chromium, on the embedded engine with no providers file (so e-mail, SMS and
// push go to the outbox):
// - served under a strict CSP with nosniff, it lists what is already in the outbox, then, without a reload,
//   shows an e-mail, a templated e-mail, an SMS and an FCM push within seconds of each Send, newest first;
// - the SMS shows its segment count, the push its payload as JSON, and each e-mail its HTML in an
//   <iframe sandbox=""> whose markup renders but whose scripts never run and whose remote image is never
//   fetched (a local trap server counts hits);
// - without a key, with a key lacking the admin scope, or with an unknown key, it shows the error line and
//   lists nothing.
import http from 'node:http';
import type net from 'node:net';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel, type NotificationServiceClient, Platform } from '../../clients/node/index.js';
import { chromiumArgs, chromiumAvailable, chromiumPath } from '../support/browser.js';
import { pgliteEngine } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

const WAIT_MS = 5_000;

/** An HTTP server that only counts the requests it gets: what the e-mail frame must never reach. */
async function startTrap(): Promise<{ url: string; hits: string[]; close(): Promise<void> }> {
  const hits: string[] = [];
  const trap = http.createServer((req, res) => {
    hits.push(req.url ?? '');
    res.writeHead(204).end();
  });
  await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
  const { port } = trap.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    close: () => new Promise((resolve) => trap.close(() => resolve())),
  };
}

describe.runIf(chromiumAvailable)('the outbox page in headless Chromium', () => {
  let browser: Browser;
  let server: TestServer;
  let trap: Awaited<ReturnType<typeof startTrap>>;
  let seedId: string;

  /** Waits until the API lists the notification's message in the outbox; answers its id. */
  async function inOutbox(notificationId: string): Promise<string> {
    return until(`outbox message of ${notificationId}`, WAIT_MS, async () => {
      const { messages } = await server.adminService().listOutboxMessages({ limit: 50 });
      return messages.find((m) => m.notificationId === notificationId)?.id;
    });
  }

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    trap = await startTrap();
    server = await startTestServer(pgliteEngine, { overrides: { HERALD_DISPATCH_POLL_MS: '200' } });
    // Two segments allowed, so the page shows a concatenated SMS.
    await server.adminService().putRoutingRule({
      rule: { type: 'outbox.sms', steps: [{ channels: [Channel.SMS] }], smsMaxSegments: 2 },
    });
    // Already in the outbox when the page opens.
    const seed = await server.admin().send({
      userId: 'outbox-seed',
      type: 'outbox.seed',
      title: 'Seed',
      body: 'already there',
      recipient: { email: 'seed@example.com' },
      channels: [Channel.EMAIL],
    });
    seedId = await inOutbox(seed.notificationId);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await trap?.close();
  });

  const shown = (page: Page) =>
    page.$$eval('article.message', (items) =>
      items.map((item) => ({
        id: (item as HTMLElement).dataset.id,
        channel: (item as HTMLElement).dataset.channel,
        notification: item.querySelector('dd.notification')?.textContent,
      })),
    );

  const waitForCount = (page: Page, count: number) =>
    page.waitForFunction((n) => document.querySelectorAll('article.message').length === n, count, {
      timeout: WAIT_MS,
    });

  it('follows the outbox live, newest first, with e-mail HTML only inside an empty sandbox', async () => {
    const page = await browser.newPage();
    const requests: string[] = [];
    const failed = new Map<string, string>();
    const answered: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('requestfailed', (r) => failed.set(r.url(), r.failure()?.errorText ?? ''));
    page.on('response', (r) => answered.push(r.url()));

    const response = await page.goto(`${server.url}/outbox#token=${server.adminKey}`);
    const headers = response!.headers();
    expect(response!.status()).toBe(200);
    const csp = headers['content-security-policy'] ?? '';
    const directives = new Map(
      csp.split(';').map((d) => {
        const [name = '', ...values] = d.trim().split(/\s+/);
        return [name, values] as const;
      }),
    );
    expect(directives.get('default-src')).toEqual(["'none'"]);
    expect(directives.get('script-src')).toEqual(["'self'"]);
    expect(directives.get('connect-src')).toEqual(["'self'"]);
    expect(csp).not.toMatch(/unsafe-eval|script-src-elem|script-src-attr/);
    expect(headers['x-content-type-options']).toBe('nosniff');
    expect(headers['referrer-policy']).toBe('no-referrer');
    expect(headers['cache-control']).toBe('no-store');
    // The key never left the browser except as the RPCs' Authorization header.
    expect(requests.some((url) => url.includes(server.adminKey))).toBe(false);

    // The first answer: what was already there.
    await waitForCount(page, 1);
    expect((await shown(page))[0]?.id).toBe(seedId);
    await page.waitForFunction(
      () => document.getElementById('status')?.textContent?.startsWith('live'),
      null,
      {
        timeout: WAIT_MS,
      },
    );

    const admin = server.admin();
    await server.adminService().putTemplate({
      template: {
        type: 'outbox.templated',
        channel: Channel.EMAIL,
        locale: 'default',
        title: 'T',
        body: `<b>{{ data.name }}</b><img src="${trap.url}/templated.gif"><script>parent.__pwned=1</script>`,
      },
    });
    const fcmToken = 'fcm-outbox-page-token-0123456789';
    await admin.registerToken({
      userId: 'outbox-push',
      platform: Platform.FCM,
      token: fcmToken,
      appId: 'app',
    });

    // One Send at a time, each seen on the page before the next, so the order is the order of sending.
    const sends: Parameters<NotificationServiceClient['send']>[0][] = [
      {
        userId: 'outbox-mail',
        type: 'outbox.plain',
        title: 'Plain',
        body: `<script>window.__pwned = 1</script><img src="${trap.url}/plain.gif">`,
        recipient: { email: 'plain@example.com' },
        channels: [Channel.EMAIL],
      },
      {
        userId: 'outbox-mail',
        type: 'outbox.templated',
        data: { name: 'x' },
        recipient: { email: 'templated@example.com' },
        channels: [Channel.EMAIL],
      },
      {
        userId: 'outbox-sms',
        type: 'outbox.sms',
        body: 'a'.repeat(200),
        recipient: { phone: '+4915112345678' },
        channels: [Channel.SMS],
      },
      {
        userId: 'outbox-push',
        type: 'outbox.push',
        title: 'Ping',
        body: 'Hello',
        data: { k: 'v' },
        channels: [Channel.PUSH],
      },
    ];
    const notificationIds: string[] = [];
    for (const [i, request] of sends.entries()) {
      const sentAt = Date.now();
      const { notificationId } = await admin.send(request);
      notificationIds.push(notificationId);
      await page.waitForFunction(
        (id) => document.querySelector('article.message:first-of-type dd.notification')?.textContent === id,
        notificationId,
        { timeout: WAIT_MS },
      );
      expect(Date.now() - sentAt).toBeLessThan(WAIT_MS);
      expect(await page.locator('article.message').count()).toBe(i + 2);
    }

    // Newest first, exactly as the API lists them; each with its channel and notification.
    const items = await shown(page);
    const { messages } = await server.adminService().listOutboxMessages({ limit: 5 });
    expect(items.map((m) => m.id)).toEqual(messages.map((m) => m.id));
    expect(items.map((m) => m.channel)).toEqual(['push', 'sms', 'email', 'email', 'email']);
    expect(items.map((m) => m.notification).slice(0, 4)).toEqual([...notificationIds].reverse());
    const [pushId = '', smsId = '', templatedId = '', plainId = '', oldestId] = items.map((m) => m.id ?? '');
    expect(oldestId).toBe(seedId);
    const article = (id: string) => page.locator(`article.message[data-id="${id}"]`);

    // Every message shows time, provider and destination.
    expect(await article(smsId).locator('dd.provider').textContent()).toBe('outbox');
    expect(await article(smsId).locator('dd.to').textContent()).toBe('+4915112345678');
    expect(await article(plainId).locator('dd.to').textContent()).toBe('plain@example.com');
    expect(await article(pushId).locator('dd.to').textContent()).toBe(fcmToken);
    expect(await article(pushId).locator('time').getAttribute('datetime')).toMatch(/^\d{4}-\d\d-\d\dT/);

    // SMS: 200 GSM-7 characters are two segments.
    expect(await article(smsId).locator('.segments').textContent()).toBe('2 segments, GSM-7');
    expect(await article(smsId).locator('pre.text').textContent()).toBe('a'.repeat(200));

    // Push: the FCM message as pretty-printed JSON.
    const payload = (await article(pushId).locator('pre.payload').textContent()) ?? '';
    expect(payload).toContain('\n  "platform": "fcm"');
    expect(JSON.parse(payload)).toMatchObject({
      platform: 'fcm',
      message: {
        token: fcmToken,
        notification: { title: 'Ping', body: 'Hello' },
        data: { k: 'v', herald_data: '{"k":"v"}' },
        android: { priority: 'NORMAL' },
      },
    });

    // E-mail: subject, headers and text part as text; the HTML part only inside the sandboxed frame.
    expect(await article(plainId).locator('.subject').textContent()).toBe('Plain');
    expect(await article(plainId).locator('.headers').textContent()).toContain('To: plain@example.com');
    const frames = page.locator('iframe.email-html');
    expect(await frames.count()).toBe(3);
    for (const sandbox of await frames.evaluateAll((fs) => fs.map((f) => f.getAttribute('sandbox')))) {
      expect(sandbox).toBe('');
    }
    // The sandbox gives the frames an opaque origin: the page cannot reach into them (nor they into it).
    expect(
      await frames.evaluateAll((fs) => fs.map((f) => (f as HTMLIFrameElement).contentDocument === null)),
    ).toEqual([true, true, true]);
    const srcdoc = (id: string) => article(id).locator('iframe.email-html').getAttribute('srcdoc');
    const frameCsp = `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">`;
    const plainDoc = (await srcdoc(plainId)) ?? '';
    // The frame's CSP comes first (after the doctype of Herald's e-mail layout).
    expect(plainDoc.replace(/^<!doctype html>/i, '').startsWith(frameCsp)).toBe(true);
    expect(plainDoc).toContain('&lt;script&gt;window.__pwned = 1&lt;/script&gt;');
    const templatedDoc = (await srcdoc(templatedId)) ?? '';
    expect(templatedDoc.replace(/^<!doctype html>/i, '').startsWith(frameCsp)).toBe(true);
    expect(templatedDoc).toContain('<b>x</b>');
    expect(templatedDoc).toContain('<script>parent.__pwned=1</script>');
    // The text part is made from the same source: the markup's text, never a script's.
    const textPart = (await article(templatedId).locator('pre.text').textContent()) ?? '';
    expect(textPart).toMatch(/^x\n/);
    expect(textPart).not.toContain('__pwned');
    expect(await article(templatedId).locator('.subject').textContent()).toBe('T');

    // The templated frame rendered its markup (the script element included) but ran no script.
    const frame = await article(templatedId).locator('iframe.email-html').elementHandle();
    const inside = await frame!.contentFrame();
    const rendered = await until('the templated e-mail frame loaded', WAIT_MS, async () => {
      const state = await inside!.evaluate(() => ({
        ready: document.readyState,
        bold: document.querySelector('b')?.textContent,
        scripts: document.scripts.length,
        cspInHead: document.head.querySelector('meta[http-equiv="Content-Security-Policy"]') !== null,
        pwned: (window as { __pwned?: unknown }).__pwned,
      }));
      return state.ready === 'complete' ? state : undefined;
    });
    expect(rendered).toEqual({ ready: 'complete', bold: 'x', scripts: 1, cspInHead: true, pwned: undefined });
    expect(await page.evaluate(() => (window as { __pwned?: unknown }).__pwned)).toBeUndefined();

    // Nothing reached the trap: Chromium may announce the blocked image, but only as a request that failed.
    await page.waitForTimeout(300);
    expect(trap.hits).toEqual([]);
    expect(answered.filter((url) => url.startsWith(trap.url))).toEqual([]);
    for (const url of requests.filter((u) => u.startsWith(trap.url))) {
      expect(failed.get(url), url).toMatch(/csp|blocked/i);
    }
    await page.close();
  });

  const refusals = [
    { name: 'no key', token: async () => '', error: /token=API_KEY.*admin scope/ },
    {
      name: 'a key without the admin scope',
      token: () => server.keyWith('send', 'read'),
      error: /^permission_denied: .*"admin" scope.*needs an API key with the admin scope/,
    },
    { name: 'an unknown key', token: async () => 'hk_not_a_key', error: /^unauthenticated: .*#token=/ },
  ];
  for (const { name, token, error } of refusals) {
    it(`shows the error line and lists nothing with ${name}`, async () => {
      const page = await browser.newPage();
      const key = await token();
      await page.goto(`${server.url}/outbox${key ? `#token=${key}` : ''}`);
      const line = page.locator('#error');
      await line.waitFor({ state: 'visible', timeout: WAIT_MS });
      expect(await line.textContent()).toMatch(error);
      // The outbox is not empty, yet nothing is listed, now or a poll later.
      expect((await server.adminService().listOutboxMessages({})).messages.length).toBeGreaterThan(0);
      await page.waitForTimeout(1_200);
      expect(await page.locator('article.message').count()).toBe(0);
      await page.close();
    });
  }
});
