// RegisterToken and UnregisterToken: how mobile apps and browsers tell Herald where to push.
import { create } from '@bufbuild/protobuf';
import type { HandlerContext } from '@connectrpc/connect';
import {
  type RegisterTokenRequest,
  type RegisterTokenResponse,
  RegisterTokenResponseSchema,
  type UnregisterTokenRequest,
  type UnregisterTokenResponse,
  UnregisterTokenResponseSchema,
} from '../../gen/herald/v1/notification_service_pb.js';
import type { Platform, WebPushSubscription } from '../../gen/herald/v1/types_pb.js';
import { HeraldError, invalidArgument } from '../core/errors.js';
import { checkId, limits } from '../core/rules.js';
import {
  type Db,
  deactivatePushToken,
  findPushToken,
  registerPushToken,
  type TokenRegistration,
} from '../store/index.js';
import { actingUser, principalOf, requireServiceScope } from './auth.js';
import { platformNames, pushTokenToProto } from './convert.js';

const APNS_TOKEN = /^[0-9a-fA-F]{64}$/;
// FCM registration tokens are opaque but printable and free of whitespace.
const OPAQUE_TOKEN = /^[\x21-\x7e]+$/;
const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;

function platformName(field: string, platform: Platform): string {
  const name = platformNames.get(platform);
  if (!name) throw invalidArgument(field, 'must be APNS, FCM or WEB_PUSH');
  return name;
}

function base64urlBytes(field: string, value: string, length: number): Buffer {
  const bytes = BASE64URL.test(value) ? Buffer.from(value, 'base64url') : Buffer.alloc(0);
  if (bytes.length !== length) throw invalidArgument(field, `must be ${length} bytes, base64url-encoded`);
  return bytes;
}

function webPushEndpoint(field: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalidArgument(field, 'must be an https URL');
  }
  if (url.protocol !== 'https:' || value.length > 2_048) throw invalidArgument(field, 'must be an https URL');
  return url.toString();
}

function webPushKeys(sub: WebPushSubscription | undefined): {
  endpoint: string;
  p256dh: string;
  auth: string;
} {
  if (!sub) throw invalidArgument('web_push', 'is required for WEB_PUSH');
  const endpoint = webPushEndpoint('web_push.endpoint', sub.endpoint);
  const point = base64urlBytes('web_push.p256dh', sub.p256dh, 65);
  if (point[0] !== 0x04)
    throw invalidArgument('web_push.p256dh', 'must be an uncompressed P-256 point (0x04...)');
  base64urlBytes('web_push.auth', sub.auth, 16);
  return { endpoint, p256dh: sub.p256dh.replace(/=+$/, ''), auth: sub.auth.replace(/=+$/, '') };
}

function optionalId(field: string, value: string): string | null {
  if (value === '') return null;
  const problem = checkId(value);
  if (problem) throw invalidArgument(field, problem);
  return value;
}

/** The stored form of a token: APNs tokens are case-insensitive hex, kept lower-case. */
function destination(platform: string, token: string, field: string): string {
  if (platform === 'apns') {
    if (!APNS_TOKEN.test(token)) throw invalidArgument(field, 'must be 64 hexadecimal characters for APNS');
    return token.toLowerCase();
  }
  if (platform === 'fcm') {
    if (!OPAQUE_TOKEN.test(token) || Buffer.byteLength(token) > limits.fcmTokenBytes) {
      throw invalidArgument(field, 'must be a non-empty printable string of at most 4096 bytes for FCM');
    }
    return token;
  }
  return webPushEndpoint(field, token);
}

export function pushTokenHandlers({ db }: { db: Db }) {
  return {
    async registerToken(req: RegisterTokenRequest, ctx: HandlerContext): Promise<RegisterTokenResponse> {
      const userId = actingUser(ctx, req.userId, 'user_id', 'send');
      const platform = platformName('platform', req.platform);
      let registration: TokenRegistration;
      const common = {
        userId,
        platform,
        deviceId: optionalId('device_id', req.deviceId),
        appId: optionalId('app_id', req.appId),
      };
      if (platform === 'webpush') {
        if (req.token !== '') throw invalidArgument('token', 'must be empty for WEB_PUSH (use web_push)');
        const keys = webPushKeys(req.webPush);
        registration = {
          ...common,
          token: keys.endpoint,
          webPushP256dh: keys.p256dh,
          webPushAuth: keys.auth,
        };
      } else {
        if (req.webPush) throw invalidArgument('web_push', 'is only allowed for WEB_PUSH');
        registration = {
          ...common,
          token: destination(platform, req.token, 'token'),
          webPushP256dh: null,
          webPushAuth: null,
        };
      }
      const row = await registerPushToken(db, registration);
      return create(RegisterTokenResponseSchema, { token: pushTokenToProto(row) });
    },

    async unregisterToken(
      req: UnregisterTokenRequest,
      ctx: HandlerContext,
    ): Promise<UnregisterTokenResponse> {
      const principal = principalOf(ctx);
      if (principal.kind === 'service') requireServiceScope(ctx, 'send');
      const platform = platformName('platform', req.platform);
      if (req.token === '') throw invalidArgument('token', 'is required');
      const token = destination(platform, req.token, 'token');
      const owner = principal.kind === 'user' ? principal.userId : undefined;
      if (await deactivatePushToken(db, platform, token, 'unregistered', owner)) {
        return create(UnregisterTokenResponseSchema, {});
      }
      const existing = await findPushToken(db, platform, token);
      if (!existing) throw new HeraldError('not_found', 'no such token', 'token');
      throw new HeraldError('permission_denied', 'the token belongs to another user', 'token');
    },
  };
}
