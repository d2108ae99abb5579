// Send, SendBatch and GetNotification.
import { create } from '@bufbuild/protobuf';
import type { HandlerContext } from '@connectrpc/connect';
import {
  type CancelNotificationRequest,
  type CancelNotificationResponse,
  CancelNotificationResponseSchema,
  type GetNotificationRequest,
  type GetNotificationResponse,
  GetNotificationResponseSchema,
  type SendBatchRequest,
  type SendBatchResponse,
  SendBatchResponseSchema,
  type SendRequest,
  type SendResponse,
  SendResponseSchema,
} from '../../gen/herald/v1/notification_service_pb.js';
import { HeraldError, invalidArgument } from '../core/errors.js';
import { isUuid } from '../core/ids.js';
import { limits } from '../core/rules.js';
import type { ConfigCache } from '../delivery/config-cache.js';
import { CRITICAL_PRIORITY } from '../delivery/config-cache.js';
import { rpcTraceKey } from '../observability/tracing.js';
import type { Realtime, WireInboxRow } from '../realtime/index.js';
import {
  cancelNotification,
  type Database,
  getNotificationDetail,
  IdempotencyConflictError,
  type NewNotification,
  type SendWriter,
  type StoredSend,
  storeNotifications,
} from '../store/index.js';
import { assertMayAccessUser, principalOf, requireServiceScope } from './auth.js';
import {
  channelToProtoValue,
  notificationStatusToProto,
  notificationToProto,
  notificationToUserProto,
  reasonKind,
  statusToProtoValue,
} from './convert.js';
import { toNewNotification } from './send-request.js';

export interface NotificationHandlersDeps {
  database: Database;
  /** Writes unkeyed Sends; grouped under load (see store/group-commit.ts). */
  writeSends: SendWriter;
  /** Plans deliveries from the routing rules and webhook endpoints. */
  deliveryConfig: ConfigCache;
  realtime: Realtime;
  now: () => Date;
}

export function notificationHandlers({
  database,
  writeSends,
  deliveryConfig,
  realtime,
  now,
}: NotificationHandlersDeps) {
  /** Tells the recipients' live sessions, on every instance, that their inbox grew. */
  async function announce(
    items: NewNotification[],
    results: StoredSend[],
    senderKeyId: string,
  ): Promise<void> {
    const perUser = new Map<string, { seq: number; count: number; row: WireInboxRow }>();
    results.forEach((result, i) => {
      if (result.replay || !result.deliveries.some((d) => d.channel === 'in_app' && d.status === 'queued'))
        return;
      const item = items[i]!;
      const row: WireInboxRow = {
        id: result.notificationId,
        userId: item.userId,
        seq: result.seq,
        type: item.type,
        priority: item.priority,
        critical: item.priority === CRITICAL_PRIORITY,
        data: item.data,
        title: item.title,
        body: item.body,
        senderKeyId,
        idempotencyKey: item.idempotencyKey,
        sendAt: result.sendAt.toISOString(),
        expiresAt: item.expiresAt?.toISOString() ?? null,
        createdAt: result.createdAt.toISOString(),
      };
      const seen = perUser.get(item.userId);
      if (!seen || result.seq > seen.seq)
        perUser.set(item.userId, { seq: result.seq, count: (seen?.count ?? 0) + 1, row });
      else seen.count++;
    });
    await Promise.all(
      [...perUser].map(([userId, { seq, count, row }]) =>
        // Several new notifications for one user: the sessions read them from Postgres.
        realtime.bus.publish({ kind: 'notification', userId, seq, ...(count === 1 ? { row } : {}) }),
      ),
    );
  }

  async function store(
    ctx: HandlerContext,
    senderKeyId: string,
    items: NewNotification[],
    fieldOf: (index: number) => string,
  ): Promise<StoredSend[]> {
    try {
      const results = await storeNotifications(
        database,
        senderKeyId,
        items,
        (item) => deliveryConfig.plan(item),
        writeSends,
        // Tracing on: spans for the planning and the commit, and the traceparent its attempts join.
        ctx.values.get(rpcTraceKey),
      );
      // Committed: live sessions may now read it. The answer does not wait for the bus, and a bus failure
      // loses no notification (sessions re-read Postgres), so it never fails the Send.
      announce(items, results, senderKeyId).catch(() => {});
      return results;
    } catch (error) {
      if (error instanceof IdempotencyConflictError) {
        throw new HeraldError(
          'already_exists',
          'was used within the last 24 hours for a different request',
          fieldOf(error.index),
        );
      }
      throw error;
    }
  }

  async function findNotification(id: string) {
    if (!isUuid(id)) throw invalidArgument('notification_id', 'must be a UUID');
    const detail = await getNotificationDetail(database.db, id.toLowerCase());
    if (!detail) throw new HeraldError('not_found', 'no such notification', 'notification_id');
    return detail;
  }

  return {
    async send(req: SendRequest, ctx: HandlerContext): Promise<SendResponse> {
      const sender = requireServiceScope(ctx, 'send');
      const item = toNewNotification(req, '', now());
      const [result] = await store(ctx, sender.keyId, [item], () => 'idempotency_key');
      return toSendResponse(result!);
    },

    async sendBatch(req: SendBatchRequest, ctx: HandlerContext): Promise<SendBatchResponse> {
      const sender = requireServiceScope(ctx, 'send');
      if (req.requests.length === 0 || req.requests.length > limits.batchSize) {
        throw invalidArgument('requests', `must hold 1..${limits.batchSize} items`);
      }
      const at = now();
      const items = req.requests.map((r, i) => toNewNotification(r, `requests[${i}].`, at));
      const firstUse = new Map<string, number>();
      items.forEach((item, i) => {
        if (!item.idempotencyKey) return;
        const earlier = firstUse.get(item.idempotencyKey);
        if (earlier !== undefined) {
          throw invalidArgument(
            `requests[${i}].idempotency_key`,
            `repeats requests[${earlier}].idempotency_key`,
          );
        }
        firstUse.set(item.idempotencyKey, i);
      });
      const results = await store(ctx, sender.keyId, items, (i) => `requests[${i}].idempotency_key`);
      return create(SendBatchResponseSchema, { results: results.map(toSendResponse) });
    },

    async getNotification(
      req: GetNotificationRequest,
      ctx: HandlerContext,
    ): Promise<GetNotificationResponse> {
      const principal = principalOf(ctx);
      if (principal.kind === 'service') requireServiceScope(ctx, 'read');
      const detail = await findNotification(req.notificationId);
      assertMayAccessUser(ctx, detail.notification.userId, 'read');
      const notification =
        principal.kind === 'user' ? notificationToUserProto(detail) : notificationToProto(detail);
      return create(GetNotificationResponseSchema, { notification });
    },

    async cancelNotification(
      req: CancelNotificationRequest,
      ctx: HandlerContext,
    ): Promise<CancelNotificationResponse> {
      requireServiceScope(ctx, 'send');
      const { notification } = await findNotification(req.notificationId);
      const cancelled = await cancelNotification(database.sql, notification.id);
      const detail = await findNotification(notification.id);
      // A send key may cancel but not read: the answer carries ids and statuses, never content.
      return create(CancelNotificationResponseSchema, {
        cancelled,
        notification: notificationStatusToProto(detail),
      });
    },
  };
}

function toSendResponse(result: StoredSend): SendResponse {
  return create(SendResponseSchema, {
    notificationId: result.notificationId,
    seq: BigInt(result.seq),
    idempotentReplay: result.replay,
    deliveries: result.deliveries.map((d) => ({
      deliveryId: d.id,
      channel: channelToProtoValue(d.channel),
      status: statusToProtoValue(d.status),
      // A replay answers with the deliveries as they are now, and their reasons may since quote a provider
      // (redirect targets, refused addresses): a send key gets the kind only, as it cannot read them either.
      reason: result.replay ? reasonKind(d.reason ?? '') : (d.reason ?? ''),
    })),
  });
}
