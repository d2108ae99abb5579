// AdminService's view of the outbox: the messages the outbox provider captured, as a real provider would have
// received them. Every RPC needs the "admin" scope (the messages carry whole addresses and content).
import { create, type JsonObject } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { HandlerContext } from '@connectrpc/connect';
import {
  type GetOutboxMessageRequest,
  type GetOutboxMessageResponse,
  GetOutboxMessageResponseSchema,
  type ListOutboxMessagesRequest,
  type ListOutboxMessagesResponse,
  ListOutboxMessagesResponseSchema,
  type OutboxMessage,
  OutboxMessageSchema,
} from '../../gen/herald/v1/admin_service_pb.js';
import { Channel } from '../../gen/herald/v1/types_pb.js';
import { HeraldError, invalidArgument } from '../core/errors.js';
import { optionalUuid } from '../core/ids.js';
import {
  type Database,
  getOutboxMessage,
  listOutboxMessages,
  type OutboxMessageRow,
} from '../store/index.js';
import { requireServiceScope } from './auth.js';
import { channelFromProto, channelToProtoValue } from './convert.js';

const DEFAULT_PAGE = 50;
const MAX_PAGE = 500;

export function outboxToProto(row: OutboxMessageRow): OutboxMessage {
  return create(OutboxMessageSchema, {
    id: row.id,
    channel: channelToProtoValue(row.channel),
    provider: row.provider,
    deliveryId: row.deliveryId,
    notificationId: row.notificationId,
    userId: row.userId,
    destination: row.destination,
    message: row.message as JsonObject,
    createdAt: timestampFromDate(row.createdAt),
  });
}

export function outboxHandlers({ database }: { database: Database }) {
  const db = database.db;
  return {
    async listOutboxMessages(
      req: ListOutboxMessagesRequest,
      ctx: HandlerContext,
    ): Promise<ListOutboxMessagesResponse> {
      requireServiceScope(ctx, 'admin');
      const channel = req.channel === Channel.UNSPECIFIED ? null : channelFromProto(req.channel);
      if (channel === undefined || channel === 'in_app') {
        throw invalidArgument(
          'channel',
          'must be PUSH, EMAIL, SMS or WEBHOOK (in-app messages are not sent to providers)',
        );
      }
      if (req.limit < 0 || req.limit > MAX_PAGE) throw invalidArgument('limit', `must be 0..${MAX_PAGE}`);
      const before = optionalUuid('cursor', req.cursor, 'a message id') ?? null;
      const after = optionalUuid('after_id', req.afterId, 'a message id') ?? null;
      if (before && after) throw invalidArgument('after_id', 'cannot be combined with cursor');
      const limit = req.limit || DEFAULT_PAGE;
      const rows = await listOutboxMessages(db, { channel, before, after, limit: limit + 1 });
      const page = rows.slice(0, limit);
      return create(ListOutboxMessagesResponseSchema, {
        messages: page.map(outboxToProto),
        nextCursor: !after && rows.length > limit ? page.at(-1)!.id : '',
      });
    },

    async getOutboxMessage(
      req: GetOutboxMessageRequest,
      ctx: HandlerContext,
    ): Promise<GetOutboxMessageResponse> {
      requireServiceScope(ctx, 'admin');
      const id = optionalUuid('id', req.id, 'a message id');
      if (!id) throw invalidArgument('id', 'is required');
      const row = await getOutboxMessage(db, id);
      if (!row) throw new HeraldError('not_found', 'no such outbox message', 'id');
      return create(GetOutboxMessageResponseSchema, { message: outboxToProto(row) });
    },
  };
}
