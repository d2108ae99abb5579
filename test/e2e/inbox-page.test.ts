/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The demo inbox page in headless Chromium, built on the <herald-inbox> element: a notification sent by the test
// shows up within a second over Connect streaming and over the WebSocket fallback; after the server restarts,
// the page receives what was stored while it was down.
import net from 'node:net';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel } from '../../clients/node/index.js';
import { chromiumArgs, chromiumAvailable, chromiumPath } from '../support/browser.js';
import { pgliteEngine, type TestDatabase } from '../support/engines.js';
import { storeInApp } from '../support/inbox.js';
import { startTestServer, type TestServer } from '../support/server.js';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

describe.runIf(chromiumAvailable)('demo inbox page in headless Chromium', () => {
  let browser: Browser;
  let db: TestDatabase;
  let server: TestServer;
  let port: number;
  let readKey: string;

  const start = () =>
    startTestServer(pgliteEngine, {
      db,
      overrides: { HERALD_PORT: String(port), HERALD_BOOTSTRAP_ADMIN_KEY: 'false' },
    });

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    db = await pgliteEngine.open();
    port = await freePort();
    server = await start();
    readKey = await server.keyWith('read');
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await db?.destroy();
  });

  async function openInbox(userId: string, transport: 'connect' | 'websocket'): Promise<Page> {
    const page = await browser.newPage();
    await page.goto(`${server.url}/inbox#user=${userId}&token=${readKey}&transport=${transport}`);
    await page.waitForFunction(
      (t) => document.getElementById('status')?.textContent === `live (${t})`,
      transport,
      { timeout: 10_000 },
    );
    return page;
  }

  // Playwright's CSS selectors pierce the element's (open) shadow root.
  const titles = (page: Page) => page.locator('herald-inbox li .title').allTextContents();
  const hasItems = (expected: number) =>
    document.querySelector('herald-inbox')?.shadowRoot?.querySelectorAll('li').length === expected;

  for (const transport of ['connect', 'websocket'] as const) {
    it(`shows a notification within a second over ${transport}`, async () => {
      const userId = `browser-${transport}`;
      const page = await openInbox(userId, transport);
      const title = `Hello over ${transport}`;
      const sentAt = Date.now();
      await server.admin().send({ userId, type: 'chat.message', title, channels: [Channel.IN_APP] });
      await page.waitForFunction(
        (expected) =>
          Array.from(
            document.querySelector('herald-inbox')?.shadowRoot?.querySelectorAll('.title') ?? [],
          ).some((el) => el.textContent === expected),
        title,
        { timeout: 1_000 },
      );
      expect(Date.now() - sentAt).toBeLessThan(1_000);
      await expect
        .poll(() => page.locator('herald-inbox .badge').textContent(), { timeout: 2_000 })
        .toBe('1');
      await page.close();
    });
  }

  it('receives after a server restart what was stored while the server was down', async () => {
    const userId = 'browser-restart';
    const page = await openInbox(userId, 'connect');
    await server.admin().send({ userId, type: 'chat.message', title: 'before', channels: [Channel.IN_APP] });
    await page.waitForFunction(hasItems, 1, { timeout: 5_000 });

    await server.stop();
    await page.waitForFunction(
      () => document.getElementById('status')?.textContent === 'reconnecting…',
      null,
      {
        timeout: 5_000,
      },
    );
    await storeInApp(db.database, userId, ['while down 1', 'while down 2']);

    server = await start();
    await page.waitForFunction(hasItems, 3, { timeout: 10_000 });
    expect(await titles(page)).toEqual(['while down 2', 'while down 1', 'before']);
    await page.close();
  });
});
