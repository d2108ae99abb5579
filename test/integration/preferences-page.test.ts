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
  /** The form as the page would post it with its boxes as they are. */
  function formOf(html: string): [string, string][] {
    const fields: [string, string][] = [];
    const boxes =
      /name="(was_on|was_off)" value="([^"]+)"><input type="checkbox" name="on" value="[^"]+"[^>]*?( checked)?>/g;
    for (const m of html.matchAll(boxes)) {
      fields.push([m[1]!, m[2]!]);
      if (m[3]) fields.push(['on', m[2]!]);
    }
    return fields;
  }
  /** Each box the page shows: its switch and whether it is ticked. */
  const boxesOf = (html: string) =>
    formOf(html)
      .filter(([name]) => name !== 'on')
      .map(([name, value]) => [value, name === 'was_on']);
  const untick = (form: [string, string][], key: string) =>
    form.filter(([name, value]) => !(name === 'on' && value === key));
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
    expect(boxesOf(html)).toEqual([
      ['c:email', true],
      ['c:push', true],
      ['c:sms', true],
      ['c:in_app', true],
      ['t:email:digest', true],
      ['t:in_app:digest', true],
      ['t:email:order.shipped', true],
      ['t:push:order.shipped', true],
    ]);
    expect(html).not.toContain('password.reset');
    expect(await stored('viewer')).toEqual({ channels: [], types: [] });
  });

  it('saves only what the user changed: a type off, a whole channel off', async () => {
    const link = preferencesLink((await email('chooser')).text);
    const form = formOf(await (await page(link)).text());
    const res = await post(link, untick(form, 't:email:digest'));
    expect(res.status).toBe(200);
    expect(res.headers.get('location')).toBeNull();
    expect(await stored('chooser')).toEqual({ channels: [], types: [['digest', Channel.EMAIL, false]] });
    // Push off as a channel: the untouched order.shipped push box follows it, no switch written for it.
    await post(link, untick(formOf(await res.text()), 'c:push'));
    expect(await stored('chooser')).toEqual({
      channels: [[Channel.PUSH, false]],
      types: [['digest', Channel.EMAIL, false]],
    });
    const after = boxesOf(await (await page(link)).text());
    expect(after).toContainEqual(['t:push:order.shipped', false]);
    expect(after).toContainEqual(['t:email:order.shipped', true]);
  });

  it('never undoes a change made after the page was shown, and saves no switch the page does not show', async () => {
    const message = await email('stale');
    const link = preferencesLink(message.text);
    const form = formOf(await (await page(link)).text());
    // Since the page was shown: the one-click link in the same e-mail turned digest e-mail off.
    const unsubscribe = /^<([^>]+)>/.exec(message.headers['List-Unsubscribe']!)![1]!;
    await post(unsubscribe, [['List-Unsubscribe', 'One-Click']]);
    // The old tab is submitted with a different box changed, and with switches the page never showed.
    await post(link, [
      ...untick(form, 'c:sms'),
      ['was_on', 't:email:password.reset'],
      ['was_on', 't:email:never.routed'],
    ]);
    expect(await stored('stale')).toEqual({
      channels: [[Channel.SMS, false]],
      types: [['digest', Channel.EMAIL, false]],
    });
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
      expect((await post(url, [['was_on', 'c:email']])).status).toBe(400);
    }
    expect((await post(link, [['was_on', 'c:fax']])).status).toBe(400);
    expect((await post(link, [['nothing', 'here']])).status).toBe(400);
    expect(await stored('victim')).toEqual({ channels: [], types: [] });
    expect(await stored('attacker')).toEqual({ channels: [], types: [] });
  });
});
