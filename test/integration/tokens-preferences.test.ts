// RegisterToken / UnregisterToken and Get/UpdatePreferences: formats per platform, token ownership moving
// between users, merge semantics, and rejection of bad input with nothing written.
import { createECDH, randomBytes } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Channel,
  DeliveryStatus,
  type NotificationServiceClient,
  Platform,
} from '../../clients/node/index.js';
import { pushTokens } from '../../src/store/schema.js';
import { engines } from '../support/engines.js';
import { rejection as rejected } from '../support/errors.js';
import { rowCounts } from '../support/rows.js';
import { startTestServer, type TestServer } from '../support/server.js';

function webPushKeys() {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return { p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') };
}

describe.each(engines())('push tokens and preferences ($name)', (engine) => {
  let server: TestServer;
  let herald: NotificationServiceClient;
  beforeAll(async () => {
    server = await startTestServer(engine);
    herald = server.admin();
  });
  afterAll(() => server?.stop());

  describe('RegisterToken', () => {
    it('stores an APNs token in lower case and makes PUSH plannable', async () => {
      const token = `ABCDEF${'0'.repeat(58)}`;
      const skipped = await herald.send({
        userId: 'apns-user',
        type: 't',
        title: 'x',
        channels: [Channel.PUSH],
      });
      expect(skipped.deliveries[0]).toMatchObject({
        status: DeliveryStatus.SKIPPED,
        reason: 'no_address: recipient has no active push token',
      });
      await herald.registerToken({
        userId: 'apns-user',
        platform: Platform.APNS,
        token,
        appId: 'com.example',
      });
      const [row] = await server.db.database.db
        .select()
        .from(pushTokens)
        .where(eq(pushTokens.userId, 'apns-user'));
      expect(row).toMatchObject({
        platform: 'apns',
        token: token.toLowerCase(),
        appId: 'com.example',
        active: true,
      });
      const queued = await herald.send({
        userId: 'apns-user',
        type: 't',
        title: 'x',
        channels: [Channel.PUSH],
      });
      expect(queued.deliveries[0]?.status).toBe(DeliveryStatus.QUEUED);
    });

    it('stores a Web Push subscription with its keys', async () => {
      const keys = webPushKeys();
      const endpoint = 'https://push.example.net/send/abc123';
      const { token } = await herald.registerToken({
        userId: 'wp-user',
        platform: Platform.WEB_PUSH,
        webPush: { endpoint, ...keys },
      });
      expect(token).toMatchObject({ userId: 'wp-user', platform: Platform.WEB_PUSH, active: true });
      const [row] = await server.db.database.db
        .select()
        .from(pushTokens)
        .where(eq(pushTokens.userId, 'wp-user'));
      expect(row).toMatchObject({ token: endpoint, webPushP256dh: keys.p256dh, webPushAuth: keys.auth });
    });

    it('moves a token registered by a second user to that user, once', async () => {
      const token = 'shared-device-fcm-token';
      const first = await herald.registerToken({ userId: 'first-owner', platform: Platform.FCM, token });
      const second = await herald.registerToken({ userId: 'second-owner', platform: Platform.FCM, token });
      expect(second.token?.id).toBe(first.token?.id);
      const rows = await server.db.database.db
        .select()
        .from(pushTokens)
        .where(and(eq(pushTokens.platform, 'fcm'), eq(pushTokens.token, token)));
      expect(rows.map((r) => r.userId)).toEqual(['second-owner']);
      const oldOwner = await herald.send({
        userId: 'first-owner',
        type: 't',
        title: 'x',
        channels: [Channel.PUSH],
      });
      expect(oldOwner.deliveries[0]?.status).toBe(DeliveryStatus.SKIPPED);
    });

    it('reactivates an unregistered token when it is registered again', async () => {
      await herald.registerToken({ userId: 'again', platform: Platform.FCM, token: 'again-token' });
      await herald.unregisterToken({ platform: Platform.FCM, token: 'again-token' });
      const { token } = await herald.registerToken({
        userId: 'again',
        platform: Platform.FCM,
        token: 'again-token',
      });
      expect(token?.active).toBe(true);
    });

    const good = webPushKeys();
    it.each([
      [
        'no platform',
        { platform: Platform.UNSPECIFIED, token: 'x' },
        'platform: must be APNS, FCM or WEB_PUSH',
      ],
      [
        'APNs token not hex',
        { platform: Platform.APNS, token: 'z'.repeat(64) },
        'token: must be 64 hexadecimal',
      ],
      [
        'APNs token too short',
        { platform: Platform.APNS, token: 'a'.repeat(63) },
        'token: must be 64 hexadecimal',
      ],
      [
        'empty FCM token',
        { platform: Platform.FCM, token: '' },
        'token: must be a non-empty printable string',
      ],
      [
        'FCM token over 4 KiB',
        { platform: Platform.FCM, token: 'f'.repeat(4097) },
        'token: must be a non-empty',
      ],
      ['FCM token with whitespace', { platform: Platform.FCM, token: 'a b' }, 'token: must be a non-empty'],
      [
        'web_push on FCM',
        { platform: Platform.FCM, token: 'ok', webPush: { endpoint: 'https://x.y' } },
        'web_push:',
      ],
      [
        'Web Push without subscription',
        { platform: Platform.WEB_PUSH },
        'web_push: is required for WEB_PUSH',
      ],
      [
        'Web Push over http',
        { platform: Platform.WEB_PUSH, webPush: { endpoint: 'http://push.example.net/x', ...good } },
        'web_push.endpoint: must be an https URL',
      ],
      [
        'Web Push key of the wrong length',
        {
          platform: Platform.WEB_PUSH,
          webPush: { endpoint: 'https://p.example/x', ...good, p256dh: 'AAAA' },
        },
        'web_push.p256dh: must be 65 bytes',
      ],
      [
        'Web Push auth of the wrong length',
        {
          platform: Platform.WEB_PUSH,
          webPush: { endpoint: 'https://p.example/x', ...good, auth: randomBytes(8).toString('base64url') },
        },
        'web_push.auth: must be 16 bytes',
      ],
      [
        'device id with spaces',
        { platform: Platform.FCM, token: 'ok', deviceId: 'my phone' },
        'device_id: must be',
      ],
    ])('rejects %s, naming the field and writing nothing', async (_name, request, message) => {
      const before = await rowCounts(server.db.database.db);
      const error = await rejected(herald.registerToken({ userId: 'bad-token-user', ...request }));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toContain(message);
      expect(await rowCounts(server.db.database.db)).toEqual(before);
    });
  });

  describe('UnregisterToken', () => {
    it('deactivates the token so PUSH is no longer planned', async () => {
      const token = 'b'.repeat(64);
      await herald.registerToken({ userId: 'unreg-user', platform: Platform.APNS, token });
      await herald.unregisterToken({ platform: Platform.APNS, token: token.toUpperCase() });
      const [row] = await server.db.database.db
        .select()
        .from(pushTokens)
        .where(eq(pushTokens.userId, 'unreg-user'));
      expect(row).toMatchObject({ active: false, invalidReason: 'unregistered' });
      const sent = await herald.send({
        userId: 'unreg-user',
        type: 't',
        title: 'x',
        channels: [Channel.PUSH],
      });
      expect(sent.deliveries[0]?.status).toBe(DeliveryStatus.SKIPPED);
    });

    it('answers NOT_FOUND for an unknown token and INVALID_ARGUMENT for an empty one', async () => {
      expect(
        (await rejected(herald.unregisterToken({ platform: Platform.FCM, token: 'never-seen' }))).code,
      ).toBe(Code.NotFound);
      expect((await rejected(herald.unregisterToken({ platform: Platform.FCM, token: '' }))).rawMessage).toBe(
        'token: is required',
      );
    });
  });

  describe('preferences', () => {
    it('starts empty', async () => {
      const { preferences } = await herald.getPreferences({ userId: 'fresh-user' });
      expect(preferences).toMatchObject({ userId: 'fresh-user', channels: [], types: [] });
      expect(preferences?.quietHours).toBeUndefined();
    });

    it('merges switches across updates and replaces or clears quiet hours', async () => {
      const user = 'merge-user';
      await herald.updatePreferences({
        userId: user,
        channels: [
          { channel: Channel.EMAIL, enabled: false },
          { channel: Channel.SMS, enabled: false },
        ],
        types: [{ type: 'marketing.weekly', channel: Channel.EMAIL, enabled: false }],
        quietHours: { start: '22:30', end: '06:45', timezone: 'America/New_York' },
      });
      const { preferences } = await herald.updatePreferences({
        userId: user,
        channels: [{ channel: Channel.SMS, enabled: true }],
        types: [{ type: 'marketing.weekly', channel: Channel.PUSH, enabled: false }],
      });
      expect(preferences?.channels).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ channel: Channel.EMAIL, enabled: false }),
          expect.objectContaining({ channel: Channel.SMS, enabled: true }),
        ]),
      );
      expect(preferences?.types).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ type: 'marketing.weekly', channel: Channel.EMAIL, enabled: false }),
          expect.objectContaining({ type: 'marketing.weekly', channel: Channel.PUSH, enabled: false }),
        ]),
      );
      expect(preferences?.quietHours).toMatchObject({
        start: '22:30',
        end: '06:45',
        timezone: 'America/New_York',
      });

      const cleared = await herald.updatePreferences({ userId: user, clearQuietHours: true });
      expect(cleared.preferences?.quietHours).toBeUndefined();
      expect(cleared.preferences?.channels).toHaveLength(2);
    });

    it('loses no switch when updates race', async () => {
      const types = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
      await Promise.all(
        types.map((type) =>
          herald.updatePreferences({
            userId: 'race-user',
            types: [{ type, channel: Channel.EMAIL, enabled: false }],
          }),
        ),
      );
      const { preferences } = await herald.getPreferences({ userId: 'race-user' });
      expect(preferences?.types.map((t) => t.type).sort()).toEqual(types);
    });

    it.each([
      [
        'unspecified channel',
        { channels: [{ channel: Channel.UNSPECIFIED, enabled: true }] },
        'channels[0].channel:',
      ],
      [
        'duplicate channel',
        {
          channels: [
            { channel: Channel.SMS, enabled: true },
            { channel: Channel.SMS, enabled: false },
          ],
        },
        'channels[1].channel: names a channel twice',
      ],
      [
        'bad type',
        { types: [{ type: 'a b', channel: Channel.EMAIL, enabled: true }] },
        'types[0].type: must be',
      ],
      ['type without channel', { types: [{ type: 'a', enabled: true }] }, 'types[0].channel: must be'],
      [
        'start 24:00',
        { quietHours: { start: '24:00', end: '07:00', timezone: 'UTC' } },
        'quiet_hours.start: must be',
      ],
      [
        'end 7:00',
        { quietHours: { start: '22:00', end: '7:00', timezone: 'UTC' } },
        'quiet_hours.end: must be',
      ],
      [
        'empty window',
        { quietHours: { start: '22:00', end: '22:00', timezone: 'UTC' } },
        'quiet_hours.end: must differ',
      ],
      [
        'unknown zone',
        { quietHours: { start: '22:00', end: '07:00', timezone: 'Europe/Atlantis' } },
        'quiet_hours.timezone: must be an IANA',
      ],
      [
        'set and clear together',
        { quietHours: { start: '22:00', end: '07:00', timezone: 'UTC' }, clearQuietHours: true },
        'clear_quiet_hours: cannot be combined with quiet_hours',
      ],
      ['no user', { userId: '' }, 'user_id: is required'],
    ])('rejects %s, naming the field and writing nothing', async (_name, request, message) => {
      const before = await rowCounts(server.db.database.db);
      const error = await rejected(herald.updatePreferences({ userId: 'bad-pref-user', ...request }));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toContain(message);
      expect(await rowCounts(server.db.database.db)).toEqual(before);
    });
  });
});
