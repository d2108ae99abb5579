// The pages behind the links in an e-mail, as a person uses them in headless Chromium: the unsubscribe
// page's button posts the one-click form and turns that type's e-mail off; the preferences page shows the
// switches as checkboxes, and unticking one and pressing Save stores exactly that switch. Both pages render
// under their CSP (the browser would refuse a form posting elsewhere). On the embedded engine, the e-mails
// captured by the outbox.
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel } from '../../clients/node/index.js';
import { chromiumArgs, chromiumAvailable, chromiumPath } from '../support/browser.js';
import { pgliteEngine } from '../support/engines.js';
import { emailThroughOutbox } from '../support/outbox.js';
import { startTestServer, type TestServer } from '../support/server.js';

describe.runIf(chromiumAvailable)('the unsubscribe and preferences pages in headless Chromium', () => {
  let browser: Browser;
  let server: TestServer;

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    server = await startTestServer(pgliteEngine, {
      overrides: {
        HERALD_LINK_SECRET: 'a-link-secret-of-at-least-32-bytes!!',
        HERALD_DISPATCH_POLL_MS: '200',
      },
    });
    await server.adminService().putRoutingRule({
      rule: { type: 'digest', steps: [{ channels: [Channel.EMAIL, Channel.IN_APP] }] },
    });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** Sends a digest e-mail; answers its unsubscribe and preferences links as the message carries them. */
  async function links(userId: string) {
    const { headers, text } = (await emailThroughOutbox(server, userId, 'digest')).message!;
    return {
      unsubscribe: /^<([^>]+)>$/.exec(headers['List-Unsubscribe']!)![1]!,
      preferences: /^Preferences: (\S+)$/m.exec(text)![1]!,
    };
  }

  const switches = async (userId: string) => {
    const { preferences } = await server.admin().getPreferences({ userId });
    return preferences!.types.map((t) => [t.type, t.channel, t.enabled]);
  };

  it("unsubscribes with the page's button", async () => {
    const { unsubscribe } = await links('button-user');
    const page = await browser.newPage();
    try {
      await page.goto(unsubscribe);
      expect(await switches('button-user')).toEqual([]);
      await page.click('button[type=submit]');
      await page.waitForSelector('text=Unsubscribed');
      expect(await switches('button-user')).toEqual([['digest', Channel.EMAIL, false]]);
    } finally {
      await page.close();
    }
  });

  it('saves the one box the user unticked on the preferences page', async () => {
    const { preferences } = await links('page-user');
    const page = await browser.newPage();
    try {
      await page.goto(preferences);
      const box = page.locator('input[type=checkbox][value="t:email:digest"]');
      expect(await box.isChecked()).toBe(true);
      expect(await page.locator('input[type=checkbox]:checked').count()).toBe(6);
      await box.uncheck();
      await page.click('button[type=submit]');
      await page.waitForSelector('text=Saved.');
      expect(await switches('page-user')).toEqual([['digest', Channel.EMAIL, false]]);
      expect(await page.locator('input[type=checkbox][value="t:email:digest"]').isChecked()).toBe(false);
    } finally {
      await page.close();
    }
  });
});
