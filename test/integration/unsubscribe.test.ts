// One-click unsubscribe (RFC 8058) as a mail client and a link scanner use it: every non-critical e-mail
// carries List-Unsubscribe (a signed https/http link) and List-Unsubscribe-Post; a GET of the link shows a
// page and changes nothing; a POST with List-Unsubscribe=One-Click (urlencoded or multipart) turns e-mail off
// for that type at once, with 200 and no redirect; forged, altered or expired tokens are 400 and change
// nothing; a CRITICAL e-mail carries no unsubscribe link and still reaches an unsubscribed user. Runs on
// every available engine, the e-mails captured by the outbox.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel, DeliveryStatus, Priority } from '../../clients/node/index.js';
import { signUnsubscribeLink } from '../../src/core/link-tokens.js';
import { engines } from '../support/engines.js';
import { emailThroughOutbox } from '../support/outbox.js';
import { startTestServer, type TestServer } from '../support/server.js';

const LINK_SECRET = 'a-link-secret-of-at-least-32-bytes!!';

describe.each(engines())('one-click unsubscribe on $name', (engine) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(engine, {
      overrides: { HERALD_LINK_SECRET: LINK_SECRET, HERALD_DISPATCH_POLL_MS: '200' },
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  /** Sends an e-mail and answers its final delivery and the headers of the message the outbox captured. */
  async function email(userId: string, type: string, priority = Priority.NORMAL) {
    const { delivery, message } = await emailThroughOutbox(server, userId, type, priority);
    return { delivery, headers: message?.headers ?? {} };
  }

  const linkOf = (headers: Record<string, string>) => /^<(.+)>$/.exec(headers['List-Unsubscribe'] ?? '')![1]!;
  const preferences = async (userId: string) =>
    (await server.admin().getPreferences({ userId })).preferences!;

  it('shows a page on GET and changes nothing', async () => {
    const { headers } = await email('scanner', 'digest');
    expect(headers['List-Unsubscribe-Post']).toBe('List-Unsubscribe=One-Click');
    const res = await fetch(linkOf(headers), { redirect: 'manual' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await res.text();
    expect(html).toContain('<form method="post">');
    expect(html).toContain('name="List-Unsubscribe" value="One-Click"');
    expect((await email('scanner', 'digest')).delivery.status).toBe(DeliveryStatus.SENT);
  });

  it('turns e-mail off for that type at once on a one-click POST (urlencoded), with 200 and no redirect', async () => {
    const { headers } = await email('clicker', 'digest');
    const res = await fetch(linkOf(headers), {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('location')).toBeNull();
    const prefs = await preferences('clicker');
    expect(prefs.types.map((t) => [t.type, t.channel, t.enabled])).toEqual([
      ['digest', Channel.EMAIL, false],
    ]);
    const next = await email('clicker', 'digest');
    expect([next.delivery.status, next.delivery.reason]).toEqual([
      DeliveryStatus.SKIPPED,
      'preference: email is turned off for digest',
    ]);
    // Other types still reach the user.
    expect((await email('clicker', 'orders')).delivery.status).toBe(DeliveryStatus.SENT);
  });

  it('takes the multipart form mail clients may send', async () => {
    const { headers } = await email('multipart', 'digest');
    const form = new FormData();
    form.append('List-Unsubscribe', 'One-Click');
    const res = await fetch(linkOf(headers), { method: 'POST', body: form });
    expect(res.status).toBe(200);
    expect((await email('multipart', 'digest')).delivery.status).toBe(DeliveryStatus.SKIPPED);
  });

  it('refuses forged, altered and expired tokens, and a POST that is not one-click, changing nothing', async () => {
    const { headers } = await email('victim', 'digest');
    const link = linkOf(headers);
    const token = link.split('/unsubscribe/')[1]!;
    const [version, payload, signature] = token.split('.');
    const base = link.split('/unsubscribe/')[0];
    const otherUser = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), u: 'someone-else' }),
    ).toString('base64url');
    const past = new Date(Date.now() - 400 * 86_400_000);
    const bad = [
      `${version}.${otherUser}.${signature}`,
      `${version}.${payload}.${signature!.slice(0, -2)}AA`,
      signUnsubscribeLink(
        Buffer.from('a-different-secret-of-32-bytes-or-more'),
        { userId: 'victim', type: null },
        new Date(),
      ),
      signUnsubscribeLink(Buffer.from(LINK_SECRET), { userId: 'victim', type: null }, past),
      'not-a-token',
    ];
    for (const t of bad) {
      const res = await fetch(`${base}/unsubscribe/${t}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'List-Unsubscribe=One-Click',
      });
      expect(res.status, t).toBe(400);
    }
    // A path that does not even URL-decode is a bad token too, and the server stays up.
    expect((await fetch(`${base}/unsubscribe/%E0%A4%A`)).status).toBe(400);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const notOneClick = await fetch(link, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=Maybe',
    });
    expect(notOneClick.status).toBe(400);
    const prefs = await preferences('victim');
    expect([prefs.channels, prefs.types]).toEqual([[], []]);
    expect((await preferences('someone-else')).types).toEqual([]);
  });

  it('sends a CRITICAL e-mail without unsubscribe links, even to a user who unsubscribed', async () => {
    const { headers } = await email('resetter', 'account.password_reset');
    await fetch(linkOf(headers), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    const critical = await email('resetter', 'account.password_reset', Priority.CRITICAL);
    expect(critical.delivery.status).toBe(DeliveryStatus.SENT);
    expect(critical.headers['List-Unsubscribe']).toBeUndefined();
    expect(critical.headers['List-Unsubscribe-Post']).toBeUndefined();
  });

  it('never sends even a CRITICAL e-mail to a suppressed address', async () => {
    await server
      .adminService()
      .addSuppression({ channel: Channel.EMAIL, address: 'bounced@example.com', reason: 'hard bounce' });
    const critical = await email('bounced', 'account.password_reset', Priority.CRITICAL);
    expect([critical.delivery.status, critical.delivery.reason]).toEqual([
      DeliveryStatus.SKIPPED,
      'suppressed: email address is on the suppression list',
    ]);
  });
});
