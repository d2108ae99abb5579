/// <reference lib="dom" />
// The <herald-inbox> element in headless Chromium, as users meet it: on the demo page (same origin as Herald) and
// embedded by a web app on another origin (HERALD_CORS_ORIGINS lists it), with user tokens. A live notification
// shows up in the open panel with its badge; marks made in one tab reach the other; preference switches round-trip
// through the API; the keyboard opens and closes it; mark all read, archive and infinite scroll work; clicks follow
// only http(s) links. Screenshots, light and dark, are kept in test-artifacts/inbox-element/.
import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel } from '../../clients/node/index.js';
import { inboxElementBundle } from '../../src/server/inbox-page.js';
import { chromiumArgs, chromiumAvailable, chromiumPath } from '../support/browser.js';
import { pgliteEngine } from '../support/engines.js';
import { startTestServer, type TestServer } from '../support/server.js';

const WAIT_MS = 10_000;
const artifacts = fileURLToPath(new URL('../../test-artifacts/inbox-element/', import.meta.url));

// A web app's page: the element, themed by the app, configured from the fragment; the token set as a property.
// Every event the element dispatches is recorded for the test to read.
const APP_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>another origin</title>
<style>
  body { margin: 1rem; display: flex; justify-content: flex-end; font-family: sans-serif; }
  herald-inbox { --herald-panel-max-height: 200px; --herald-accent: #0a7d55; }
</style></head>
<body><herald-inbox></herald-inbox><script type="module" src="/app.js"></script></body></html>
`;

const APP_SCRIPT = `
import '/herald-inbox.js';
const params = new URLSearchParams(location.hash.slice(1));
const inbox = document.querySelector('herald-inbox');
window.heraldEvents = [];
for (const type of ['herald-notification', 'herald-read', 'herald-archive', 'herald-click', 'herald-preferences']) {
  inbox.addEventListener(type, (event) => window.heraldEvents.push({ type, detail: event.detail }));
}
for (const name of ['base-url', 'transport', 'page-size']) {
  if (params.has(name)) inbox.setAttribute(name, params.get(name));
}
inbox.token = params.get('token');
`;

/** A web app's server on its own port (its own origin): any path is the page; the element bundle; the script. */
async function startAppServer(bundle: string): Promise<{ origin: string; close(): Promise<void> }> {
  const app = http.createServer((req, res) => {
    const script = req.url === '/app.js' ? APP_SCRIPT : req.url === '/herald-inbox.js' ? bundle : null;
    res.writeHead(200, { 'content-type': script === null ? 'text/html; charset=utf-8' : 'text/javascript' });
    res.end(script ?? APP_PAGE);
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const { port } = app.address() as net.AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => app.close(() => resolve())),
  };
}

/** Waits until the element on the page follows the live stream. */
async function waitLive(page: Page): Promise<void> {
  await page.waitForFunction(() => document.querySelector('herald-inbox')?.connectionState === 'live', null, {
    timeout: WAIT_MS,
  });
}

const badge = (page: Page) =>
  page.evaluate(() => {
    const element = document.querySelector('herald-inbox')?.shadowRoot?.querySelector('.badge');
    return element instanceof HTMLElement && !element.hidden ? element.textContent : null;
  });

const titles = (page: Page) => page.locator('herald-inbox li .title').allTextContents();

const unreadTitles = (page: Page) => page.locator('herald-inbox li.unread .title').allTextContents();

const shadowFocus = (page: Page) =>
  page.evaluate(() => {
    const host = document.querySelector('herald-inbox');
    if (document.activeElement !== host) return null;
    const focused = host?.shadowRoot?.activeElement;
    return focused ? focused.className || focused.id : null;
  });

describe.runIf(chromiumAvailable)('<herald-inbox> in headless Chromium', () => {
  let browser: Browser;
  let server: TestServer;
  let app: Awaited<ReturnType<typeof startAppServer>>;

  beforeAll(async () => {
    await mkdir(artifacts, { recursive: true });
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    app = await startAppServer(await inboxElementBundle());
    server = await startTestServer(pgliteEngine, { overrides: { HERALD_CORS_ORIGINS: app.origin } });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await app?.close();
  });

  /** The demo page on Herald's own origin (its panel opens on load), for a user token. */
  async function openDemo(token: string, colorScheme: 'light' | 'dark' = 'light'): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 900, height: 640 }, colorScheme });
    await page.goto(`${server.url}/inbox#token=${token}`);
    await waitLive(page);
    return page;
  }

  /** The app page on the other origin (panel closed), talking to Herald across origins. */
  async function openApp(token: string, settings: Record<string, string> = {}): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 900, height: 640 } });
    const fragment = new URLSearchParams({ 'base-url': server.url, token, ...settings });
    await page.goto(`${app.origin}/#${fragment}`);
    await waitLive(page);
    return page;
  }

  const send = (
    userId: string,
    title: string,
    extra: { body?: string; data?: Record<string, string> } = {},
  ) => server.admin().send({ userId, type: 'chat.message', title, ...extra, channels: [Channel.IN_APP] });

  const unreadCount = async (userId: string) =>
    Number((await server.admin().listNotifications({ userId, limit: 1 })).unreadCount);

  it('shows a live notification at the top of the open panel and keeps the badge exact', async () => {
    const userId = 'element-live';
    await send(userId, 'Older one', { body: 'Sent before the page opened' });
    const page = await openDemo(await server.userToken(userId));
    expect(await titles(page)).toEqual(['Older one']);
    expect(await badge(page)).toBe('1');

    await send(userId, 'Build finished', { body: 'main is green: 2,143 tests passed in 4m 12s' });
    await expect.poll(() => titles(page), { timeout: WAIT_MS }).toEqual(['Build finished', 'Older one']);
    await expect.poll(() => badge(page), { timeout: WAIT_MS }).toBe('2');
    expect(await page.getByRole('button', { name: 'Notifications, 2 unread' }).count()).toBe(1);
    expect(await page.getByRole('dialog', { name: 'Notifications' }).isVisible()).toBe(true);
    expect(await page.locator('herald-inbox [aria-live=polite]').textContent()).toBe(
      'New notification: Build finished',
    );
    expect(await page.locator('herald-inbox li time').first().textContent()).toMatch(/now|second/);

    await page.screenshot({ path: path.join(artifacts, 'demo-light.png') });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: path.join(artifacts, 'demo-dark.png') });
    const panelBackground = () =>
      page.locator('herald-inbox .panel').evaluate((panel) => getComputedStyle(panel).backgroundColor);
    expect(await panelBackground()).toBe('rgb(28, 31, 38)');
    // theme="light" wins over the system's dark preference, theme="dark" over a light one.
    await page.locator('herald-inbox').evaluate((inbox) => inbox.setAttribute('theme', 'light'));
    expect(await panelBackground()).toBe('rgb(255, 255, 255)');
    await page.emulateMedia({ colorScheme: 'light' });
    await page.locator('herald-inbox').evaluate((inbox) => inbox.setAttribute('theme', 'dark'));
    expect(await panelBackground()).toBe('rgb(28, 31, 38)');
    await page.close();
  });

  it('syncs marks between two tabs of the same user', async () => {
    const userId = 'element-tabs';
    const token = await server.userToken(userId);
    const [first, second] = [await openDemo(token), await openDemo(token)];
    await send(userId, 'Read me');
    await send(userId, 'Archive me');
    for (const page of [first, second]) {
      await expect.poll(() => unreadTitles(page), { timeout: WAIT_MS }).toEqual(['Archive me', 'Read me']);
      await expect.poll(() => badge(page), { timeout: WAIT_MS }).toBe('2');
    }

    await first.locator('herald-inbox li', { hasText: 'Read me' }).locator('button.open').click();
    await expect.poll(() => unreadTitles(second), { timeout: WAIT_MS }).toEqual(['Archive me']);
    await expect.poll(() => badge(second), { timeout: WAIT_MS }).toBe('1');
    expect(await titles(second)).toEqual(['Archive me', 'Read me']);

    await second.getByRole('button', { name: 'Archive: Archive me' }).click();
    await expect.poll(() => titles(first), { timeout: WAIT_MS }).toEqual(['Read me']);
    await expect.poll(() => badge(first), { timeout: WAIT_MS }).toBeNull();
    expect(await unreadCount(userId)).toBe(0);
    await first.close();
    await second.close();
  });

  it('round-trips channel and type switches through UpdatePreferences, and shows them after a reload', async () => {
    const userId = 'element-preferences';
    const token = await server.userToken(userId);
    const asUser = server.client({ token }, 'connect');
    await asUser.updatePreferences({
      types: [{ type: 'order.shipped', channel: Channel.PUSH, enabled: true }],
    });
    let page = await openDemo(token);
    await page.getByRole('button', { name: 'Preferences' }).click();
    const email = () => page.getByRole('switch', { name: 'Email', exact: true });
    const shippedPush = () => page.getByRole('switch', { name: 'order.shipped · Push' });
    await email().waitFor({ timeout: WAIT_MS });
    expect(await email().isChecked()).toBe(true);
    expect(await shippedPush().isChecked()).toBe(true);

    await email().click();
    await shippedPush().click();
    await expect
      .poll(async () => (await asUser.getPreferences({})).preferences, { timeout: WAIT_MS })
      .toMatchObject({
        channels: [{ channel: Channel.EMAIL, enabled: false }],
        types: [{ type: 'order.shipped', channel: Channel.PUSH, enabled: false }],
      });

    await page.reload();
    await waitLive(page);
    await page.getByRole('button', { name: 'Preferences' }).click();
    await email().waitFor({ timeout: WAIT_MS });
    expect(await email().isChecked()).toBe(false);
    expect(await shippedPush().isChecked()).toBe(false);
    expect(await page.getByRole('switch', { name: 'SMS' }).isChecked()).toBe(true);
    await page.close();
    page = await openDemo(token, 'dark');
    await page.getByRole('button', { name: 'Preferences' }).click();
    await email().waitFor({ timeout: WAIT_MS });
    await page.screenshot({ path: path.join(artifacts, 'preferences-dark.png') });
    await page.close();
  });

  for (const transport of ['connect', 'websocket'] as const) {
    it(`works from a page on another origin allowed by HERALD_CORS_ORIGINS (${transport})`, async () => {
      const userId = `element-cors-${transport}`;
      const page = await openApp(await server.userToken(userId), { transport });
      await send(userId, `Across origins over ${transport}`);
      await expect.poll(() => badge(page), { timeout: WAIT_MS }).toBe('1');
      await page.getByRole('button', { name: 'Notifications, 1 unread' }).click();
      await page.locator('herald-inbox li button.open').click();
      await expect.poll(() => badge(page), { timeout: WAIT_MS }).toBeNull();
      expect(await unreadCount(userId)).toBe(0);
      expect(await page.evaluate(() => Reflect.get(window, 'heraldEvents'))).toMatchObject([
        {
          type: 'herald-notification',
          detail: { notification: { title: `Across origins over ${transport}` } },
        },
        { type: 'herald-click', detail: { url: null } },
        { type: 'herald-read' },
      ]);
      await page.close();
    });
  }

  it('is operated by keyboard: Tab to the bell, Enter opens, Escape closes and focus returns', async () => {
    const userId = 'element-keyboard';
    await send(userId, 'Keyboard');
    const page = await openApp(await server.userToken(userId));
    await expect.poll(() => badge(page), { timeout: WAIT_MS }).toBe('1');
    const bell = page.getByRole('button', { name: 'Notifications, 1 unread' });

    await page.keyboard.press('Tab');
    expect(await shadowFocus(page)).toBe('bell');
    expect(await bell.evaluate((button) => getComputedStyle(button).outlineStyle)).toBe('solid');
    expect(await bell.getAttribute('aria-expanded')).toBe('false');

    await page.keyboard.press('Enter');
    expect(await bell.getAttribute('aria-expanded')).toBe('true');
    expect(await page.getByRole('dialog', { name: 'Notifications' }).isVisible()).toBe(true);
    expect(await shadowFocus(page)).toBe('panel');
    await page.keyboard.press('Tab');
    expect(await shadowFocus(page)).toBe('text'); // "Mark all read"
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    expect(await shadowFocus(page)).toBe('open'); // the notification

    await page.keyboard.press('Escape');
    expect(await bell.getAttribute('aria-expanded')).toBe('false');
    expect(await page.getByRole('dialog').count()).toBe(0);
    expect(await shadowFocus(page)).toBe('bell');
    await page.close();
  });

  it('marks all read, archives, and loads older pages as the list scrolls', async () => {
    const userId = 'element-scroll';
    const sent = Array.from({ length: 8 }, (_, i) => `Item ${i + 1}`);
    await server.admin().sendBatch({
      requests: sent.map((title) => ({
        userId,
        type: 'chat.message',
        title,
        body: `The body of ${title.toLowerCase()}`,
        channels: [Channel.IN_APP],
      })),
    });
    const newestFirst = [...sent].reverse();
    const page = await openApp(await server.userToken(userId), { 'page-size': '5' });
    await page.locator('herald-inbox .bell').click();
    await expect.poll(() => titles(page), { timeout: WAIT_MS }).toEqual(newestFirst.slice(0, 5));
    expect(await badge(page)).toBe('8');
    expect(await page.locator('herald-inbox .more').isVisible()).toBe(true); // below the fold, not yet loading

    await page.locator('herald-inbox .scroll').evaluate((list) => list.scrollTo(0, list.scrollHeight));
    await expect.poll(() => titles(page), { timeout: WAIT_MS }).toEqual(newestFirst);
    expect(await page.locator('herald-inbox .more').isVisible()).toBe(false);
    await page.screenshot({ path: path.join(artifacts, 'app-light.png') });

    await page.getByRole('button', { name: 'Archive: Item 8' }).click();
    await expect.poll(() => titles(page), { timeout: WAIT_MS }).toEqual(newestFirst.slice(1));
    await expect.poll(() => badge(page), { timeout: WAIT_MS }).toBe('7');
    const archive = await server.admin().listNotifications({ userId, archived: true });
    expect(archive.notifications.map((n) => n.title)).toEqual(['Item 8']);

    await page.getByRole('button', { name: 'Mark all read' }).click();
    await expect.poll(() => badge(page), { timeout: WAIT_MS }).toBeNull();
    expect(await unreadTitles(page)).toEqual([]);
    expect(await unreadCount(userId)).toBe(0);
    expect(await page.getByRole('button', { name: 'Mark all read' }).isDisabled()).toBe(true);
    await page.close();
  });

  it('follows an http(s) data.url on click, and never another scheme', async () => {
    const userId = 'element-links';
    await send(userId, 'Script link', { data: { url: 'javascript:alert(1)' } });
    await send(userId, 'Order 42', { data: { url: `${app.origin}/orders/42` } });
    const page = await openApp(await server.userToken(userId));
    await page.locator('herald-inbox .bell').click();
    await page.locator('herald-inbox li', { hasText: 'Script link' }).locator('button.open').click();
    await expect.poll(() => unreadTitles(page), { timeout: WAIT_MS }).toEqual(['Order 42']);
    expect(new URL(page.url()).pathname).toBe('/');
    expect(await page.evaluate(() => Reflect.get(window, 'heraldEvents'))).toContainEqual(
      expect.objectContaining({ type: 'herald-click', detail: expect.objectContaining({ url: null }) }),
    );

    await Promise.all([
      page.waitForURL(`${app.origin}/orders/42`, { timeout: WAIT_MS }),
      page.locator('herald-inbox li', { hasText: 'Order 42' }).locator('button.open').click(),
    ]);
    expect(await unreadCount(userId)).toBe(0);
    await page.close();
  });
});
