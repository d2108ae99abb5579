// AdminService's suppression list: add (normalised, idempotent), list (filters, newest first, cursor pages),
// remove; admin keys only; bad input is INVALID_ARGUMENT naming the field and writes nothing; and a delivery to a
// suppressed address is SKIPPED on the next Send. Runs on every available engine.
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Channel, DeliveryStatus } from '../../clients/node/index.js';
import { startWebhookReceiver, type WebhookReceiver } from '../emulators/webhook-receiver.js';
import { engines } from '../support/engines.js';
import { codeOf, rejection } from '../support/errors.js';
import { httpTestProvider } from '../support/http-provider.js';
import { rowCounts } from '../support/rows.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { until } from '../support/until.js';

describe.each(engines())('suppressions on $name', (engine) => {
  let receiver: WebhookReceiver;
  let server: TestServer;
  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    server = await startTestServer(engine, {
      providers: { email: [httpTestProvider('mailer', 'email', `${receiver.url}/mail`)] },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await receiver?.close();
  });

  it('adds an address once, normalised, and keeps the original entry when it is added again', async () => {
    const admin = server.adminService();
    const first = await admin.addSuppression({
      channel: Channel.EMAIL,
      address: 'Bounced@Example.com',
      reason: 'hard bounce',
    });
    expect([first.created, first.suppression?.address, first.suppression?.reason]).toEqual([
      true,
      'bounced@example.com',
      'hard bounce',
    ]);
    const again = await admin.addSuppression({
      channel: Channel.EMAIL,
      address: 'bounced@example.com',
      reason: 'other',
    });
    expect([again.created, again.suppression?.reason]).toEqual([false, 'hard bounce']);
    const sms = await admin.addSuppression({ channel: Channel.SMS, address: '+49 (0)151 1234-5678' });
    expect([sms.suppression?.address, sms.suppression?.reason]).toEqual([
      '+4915112345678',
      'added by an operator',
    ]);
  });

  it('lists newest first, filters by channel and address, and pages with a cursor', async () => {
    const admin = server.adminService();
    for (let i = 0; i < 5; i++) {
      await admin.addSuppression({
        channel: Channel.EMAIL,
        address: `page-${i}@example.com`,
        reason: 'complaint',
      });
    }
    const seen: string[] = [];
    let cursor = '';
    do {
      const page = await admin.listSuppressions({ channel: Channel.EMAIL, limit: 2, cursor });
      expect(page.suppressions.length).toBeLessThanOrEqual(2);
      seen.push(...page.suppressions.map((s) => s.address));
      cursor = page.nextCursor;
    } while (cursor !== '');
    const pages = seen.filter((a) => a.startsWith('page-'));
    expect(pages).toEqual(['page-4', 'page-3', 'page-2', 'page-1', 'page-0'].map((p) => `${p}@example.com`));
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.every((a) => a.includes('@'))).toBe(true);

    const one = await admin.listSuppressions({ channel: Channel.EMAIL, address: 'PAGE-2@example.com' });
    expect(one.suppressions.map((s) => s.address)).toEqual(['page-2@example.com']);
    const sms = await admin.listSuppressions({ channel: Channel.SMS });
    expect(sms.suppressions.every((s) => s.channel === Channel.SMS)).toBe(true);
  });

  it('removes an address, and says when there was none', async () => {
    const admin = server.adminService();
    await admin.addSuppression({ channel: Channel.EMAIL, address: 'gone@example.com' });
    expect(
      (await admin.removeSuppression({ channel: Channel.EMAIL, address: 'GONE@example.com' })).removed,
    ).toBe(true);
    expect(
      (await admin.removeSuppression({ channel: Channel.EMAIL, address: 'gone@example.com' })).removed,
    ).toBe(false);
  });

  it('skips a delivery to a suppressed address on the next Send, and sends again once it is removed', async () => {
    const admin = server.adminService();
    const send = () =>
      server.admin().send({
        userId: 'suppressed-user',
        type: 'account.notice',
        title: 'Hi',
        channels: [Channel.EMAIL],
        recipient: { email: 'Blocked@Example.com' },
      });
    const final = (notificationId: string) =>
      until('final', 10_000, async () => {
        const d = (await server.admin().getNotification({ notificationId })).notification!.deliveries[0]!;
        return d.status === DeliveryStatus.QUEUED || d.status === DeliveryStatus.SENDING ? undefined : d;
      });
    await admin.addSuppression({
      channel: Channel.EMAIL,
      address: 'blocked@example.com',
      reason: 'complaint',
    });
    const skipped = await final((await send()).notificationId);
    expect([skipped.status, skipped.reason, skipped.attempts.length]).toEqual([
      DeliveryStatus.SKIPPED,
      'suppressed: email address is on the suppression list',
      0,
    ]);
    await admin.removeSuppression({ channel: Channel.EMAIL, address: 'blocked@example.com' });
    expect((await final((await send()).notificationId)).status).toBe(DeliveryStatus.SENT);
  });

  it('answers only admin keys', async () => {
    const request = { channel: Channel.EMAIL, address: 'x@example.com' };
    for (const scope of ['send', 'read'] as const) {
      const client = server.adminService(await server.keyWith(scope));
      expect(await codeOf(client.addSuppression(request))).toBe(Code.PermissionDenied);
      expect(await codeOf(client.listSuppressions({}))).toBe(Code.PermissionDenied);
      expect(await codeOf(client.removeSuppression(request))).toBe(Code.PermissionDenied);
    }
    const before = await rowCounts(server.db.database.db);
    const anonymous = server.adminService('');
    expect(await codeOf(anonymous.addSuppression(request))).toBe(Code.Unauthenticated);
    expect(await rowCounts(server.db.database.db)).toEqual(before);
  });

  it.each([
    [{ channel: Channel.PUSH, address: 'x@example.com' }, 'channel: must be EMAIL or SMS'],
    [{ channel: Channel.UNSPECIFIED, address: 'x@example.com' }, 'channel: must be EMAIL or SMS'],
    [{ channel: Channel.EMAIL, address: 'not-an-address' }, 'address: must be a valid e-mail address'],
    [
      { channel: Channel.SMS, address: '0151 1234' },
      'address: must be a valid phone number in international form',
    ],
    [{ channel: Channel.EMAIL, address: 'x@example.com', reason: 'r'.repeat(257) }, 'reason: must be 1..256'],
    [
      { channel: Channel.EMAIL, address: 'x@example.com', reason: 'a\u0000b' },
      'reason: must not contain NUL',
    ],
  ])('refuses to add %j, naming the field, and writes nothing', async (request, message) => {
    const before = await rowCounts(server.db.database.db);
    const error = await rejection(server.adminService().addSuppression(request));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toContain(message);
    expect(await rowCounts(server.db.database.db)).toEqual(before);
  });

  it.each([
    [{ limit: 101 }, 'limit: must be 0..100'],
    [{ cursor: 'nonsense' }, 'cursor: is not a cursor this server issued'],
    [{ address: 'x@example.com' }, 'channel: is required to filter by address'],
    [{ channel: Channel.WEBHOOK }, 'channel: must be EMAIL or SMS'],
  ])('refuses to list with %j, naming the field', async (request, message) => {
    const error = await rejection(server.adminService().listSuppressions(request));
    expect([error.code, error.rawMessage.startsWith(message)]).toEqual([Code.InvalidArgument, true]);
  });
});
