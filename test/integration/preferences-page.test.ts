// The links every non-critical e-mail carries besides one-click unsubscribe: a `mailto:` alternative in
// List-Unsubscribe when HERALD_UNSUBSCRIBE_MAILTO is set, and a visible preferences link to a page that shows
// the recipient's switches (channels, and each non-critical routed type) without changing anything on GET,
// and on POST saves only what the user changed. The page's token reaches only its own user; forged, altered
// or unsubscribe tokens are 400. Runs on every available engine, the e-mails captured by the outbox.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel } from '../../clients/node/index.js';
import { engines } from '../support/engines.js';
import { emailThroughOutbox } from '../support/outbox.js';
import { startTestServer, type TestServer } from '../support/server.js';

const LINK_SECRET = 'a-link-secret-of-at-least-32-bytes!!';

describe.each(engines())('the preferences page on $name', (engine) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(engine, {
      overrides: {
        HERALD_LINK_SECRET: LINK_SECRET,
        HERALD_UNSUBSCRIBE_MAILTO: 'unsubscribe@example.com',
        HERALD_DISPATCH_POLL_MS: '200',
      },
    });
    const admin = server.adminService();
    await admin.putRoutingRule({
      rule: { type: 'digest', steps: [{ channels: [Channel.EMAIL, Channel.IN_APP] }] },
    });
    await admin.putRoutingRule({
      rule: {
        type: 'order.shipped',
        steps: [{ channels: [Channel.PUSH] }, { channels: [Channel.EMAIL], delaySeconds: 60 }],
      },
    });
    await admin.putRoutingRule({
      rule: { type: 'password.reset', critical: true, steps: [{ channels: [Channel.EMAIL] }] },
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  /** Sends a digest e-mail and answers the captured message. */
  async function email(userId: string) {
    return (await emailThroughOutbox(server, userId, 'digest')).message!;
  }

  const preferencesLink = (text: string) => /^Preferences: (\S+)$/m.exec(text)![1]!;
  const page = (url: string) => fetch(url, { redirect: 'manual' });
  const post = (url: string, fields: [string, string][]) =>
    fetch(url, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
  /** Every switch the page shows, as its form would post it with the boxes as they are. */
  function formOf(html: string): [string, string][] {
    const fields: [string, string][] = [];
    for (const m of html.matchAll(
      /name="shown" value="([^"]+)"><input type="checkbox" name="on" value="[^"]+"[^>]*?( checked)?>/g,
    )) {
      fields.push(['shown', m[1]!]);
      if (m[2]) fields.push(['on', m[1]!]);
    }
    return fields;
  }
  const stored = async (userId: string) => {
    const { preferences } = await server.admin().getPreferences({ userId });
    return {
      channels: preferences!.channels.map((c) => [c.channel, c.enabled]),
      types: preferences!.types.map((t) => [t.type, t.channel, t.enabled]),
    };
  };

  it('puts a mailto: unsubscribe next to the https one, and a preferences link in both parts', async () => {
    const message = await email('links');
    expect(message.headers['List-Unsubscribe']).toMatch(
      /^<https?:\/\/[^>]+\/unsubscribe\/v1\.[\w-]+\.[\w-]+>, <mailto:unsubscribe@example\.com\?subject=unsubscribe%20v1\.[\w-]+\.[\w-]+>$/,
    );
    const link = preferencesLink(message.text);
    expect(link).toMatch(/\/preferences\/v1\.[\w-]+\.[\w-]+$/);
    expect(message.html).toContain(`href="${link}"`);
  });

  it('shows the switches as they apply, lists no critical type, and changes nothing on GET', async () => {
    const link = preferencesLink((await email('viewer')).text);
    const res = await page(link);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("form-action 'self'");
    expect(res.headers.get('cache-control')).toBe('no-store');
    const html = await res.text();
    expect(formOf(html)).toEqual([
      ['shown', 'c:email'],
      ['on', 'c:email'],
      ['shown', 'c:push'],
      ['on', 'c:push'],
      ['shown', 'c:sms'],
      ['on', 'c:sms'],
      ['shown', 'c:in_app'],
      ['on', 'c:in_app'],
      ['shown', 't:email:digest'],
      ['on', 't:email:digest'],
      ['shown', 't:in_app:digest'],
      ['on', 't:in_app:digest'],
      ['shown', 't:email:order.shipped'],
      ['on', 't:email:order.shipped'],
      ['shown', 't:push:order.shipped'],
      ['on', 't:push:order.shipped'],
    ]);
    expect(html).not.toContain('password.reset');
    expect(await stored('viewer')).toEqual({ channels: [], types: [] });
  });

  it('saves only what the user changed: a type off, a whole channel off', async () => {
    const link = preferencesLink((await email('chooser')).text);
    const form = formOf(await (await page(link)).text());
    const without = (key: string) => form.filter(([name, value]) => !(name === 'on' && value === key));
    const res = await post(link, without('t:email:digest'));
    expect(res.status).toBe(200);
    expect(res.headers.get('location')).toBeNull();
    expect(await stored('chooser')).toEqual({ channels: [], types: [['digest', Channel.EMAIL, false]] });
    // Push off as a channel: the untouched order.shipped push box follows it, no switch written for it.
    const again = formOf(await res.text()).filter(([name, value]) => !(name === 'on' && value === 'c:push'));
    await post(link, again);
    expect(await stored('chooser')).toEqual({
      channels: [[Channel.PUSH, false]],
      types: [['digest', Channel.EMAIL, false]],
    });
    const after = formOf(await (await page(link)).text());
    expect(after).not.toContainEqual(['on', 't:push:order.shipped']);
    expect(after).toContainEqual(['on', 't:email:order.shipped']);
  });

  it("refuses forged, altered and unsubscribe tokens, and a body that is not the page's form", async () => {
    const message = await email('victim');
    const link = preferencesLink(message.text);
    const [base, token] = link.split('/preferences/') as [string, string];
    const [version, payload, signature] = token.split('.') as [string, string, string];
    const otherUser = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), u: 'attacker' }),
    ).toString('base64url');
    const unsubscribeToken = /\/unsubscribe\/([^>]+)>/.exec(message.headers['List-Unsubscribe']!)![1]!;
    for (const forged of [
      `${version}.${otherUser}.${signature}`,
      `${version}.${payload}.${signature.slice(0, -2)}AA`,
      unsubscribeToken,
      'not-a-token',
    ]) {
      const url = `${base}/preferences/${forged}`;
      expect((await page(url)).status).toBe(400);
      expect((await post(url, [['shown', 'c:email']])).status).toBe(400);
    }
    expect((await post(link, [['shown', 'c:fax']])).status).toBe(400);
    expect((await post(link, [['nothing', 'here']])).status).toBe(400);
    expect(await stored('victim')).toEqual({ channels: [], types: [] });
    expect(await stored('attacker')).toEqual({ channels: [], types: [] });
  });
});
