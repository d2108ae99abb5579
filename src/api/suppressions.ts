// AdminService's suppression list: e-mail addresses and phone numbers never contacted again. Every RPC needs
// the "admin" scope; addresses are normalised the way recipients' addresses are stored (e-mail in lower case,
// phones in E.164), so an entry matches what a Send stored.
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { HandlerContext } from '@connectrpc/connect';
import {
  type AddSuppressionRequest,
  type AddSuppressionResponse,
  AddSuppressionResponseSchema,
  type ListSuppressionsRequest,
  type ListSuppressionsResponse,
  ListSuppressionsResponseSchema,
  type RemoveSuppressionRequest,
  type RemoveSuppressionResponse,
  RemoveSuppressionResponseSchema,
  type Suppression,
  SuppressionSchema,
} from '../../gen/herald/v1/admin_service_pb.js';
import { Channel } from '../../gen/herald/v1/types_pb.js';
import { invalidArgument } from '../core/errors.js';
import { normalisePhone } from '../core/phone.js';
import { checkEmail, checkTextLength } from '../core/rules.js';
import {
  addSuppression,
  type Database,
  listSuppressions,
  OPT_OUT_REASON,
  removeSuppression,
  type SuppressedChannel,
  type SuppressionCursor,
  type SuppressionRow,
} from '../store/index.js';
import { requireServiceScope } from './auth.js';

const DEFAULT_PAGE = 50;
const MAX_PAGE = 100;
const MAX_REASON_CHARS = 256;
const DEFAULT_REASON = 'added by an operator';
/** timestamptz as PostgreSQL prints it (ISO DateStyle): what a cursor carries. */
const TIMESTAMP_TEXT = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([+-]\d{2}(:?\d{2})?|Z)?$/;

const suppressedChannels = new Map<Channel, SuppressedChannel>([
  [Channel.EMAIL, 'email'],
  [Channel.SMS, 'sms'],
]);

function suppressedChannel(value: Channel): SuppressedChannel {
  const channel = suppressedChannels.get(value);
  if (!channel)
    throw invalidArgument(
      'channel',
      'must be EMAIL or SMS (push tokens and webhook endpoints are disabled instead)',
    );
  return channel;
}

/** The address as recipients' addresses are stored on `channel`. */
function normalisedAddress(channel: SuppressedChannel, address: string): string {
  if (channel === 'sms') {
    const phone = normalisePhone(address);
    if ('problem' in phone) throw invalidArgument('address', phone.problem);
    return phone.number;
  }
  const problem = checkEmail(address);
  if (problem) throw invalidArgument('address', problem);
  return address.toLowerCase();
}

function encodeCursor(row: SuppressionRow): string {
  const cursor: SuppressionCursor = { position: row.position, channel: row.channel, address: row.address };
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

function decodeCursor(value: string): SuppressionCursor | null {
  if (value === '') return null;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
    if (typeof parsed === 'object' && parsed !== null) {
      const { position, channel, address } = parsed as Record<string, unknown>;
      if (
        typeof position === 'string' &&
        TIMESTAMP_TEXT.test(position) &&
        (channel === 'email' || channel === 'sms') &&
        typeof address === 'string' &&
        address.length <= 256
      ) {
        return { position, channel, address };
      }
    }
  } catch {
    // Not base64url JSON: answered below.
  }
  throw invalidArgument('cursor', 'is not a cursor this server issued');
}

function toProto(row: SuppressionRow): Suppression {
  return create(SuppressionSchema, {
    channel: row.channel === 'email' ? Channel.EMAIL : Channel.SMS,
    address: row.address,
    reason: row.reason,
    deliveryId: row.deliveryId ?? '',
    createdAt: timestampFromDate(row.createdAt),
  });
}

export function suppressionHandlers({ database }: { database: Database }) {
  const db = database.db;
  return {
    async listSuppressions(
      req: ListSuppressionsRequest,
      ctx: HandlerContext,
    ): Promise<ListSuppressionsResponse> {
      requireServiceScope(ctx, 'admin');
      const channel = req.channel === Channel.UNSPECIFIED ? null : suppressedChannel(req.channel);
      if (req.address !== '' && !channel)
        throw invalidArgument('channel', 'is required to filter by address');
      const address = req.address === '' || !channel ? null : normalisedAddress(channel, req.address);
      if (req.limit < 0 || req.limit > MAX_PAGE) throw invalidArgument('limit', `must be 0..${MAX_PAGE}`);
      const limit = req.limit || DEFAULT_PAGE;
      const rows = await listSuppressions(
        db,
        { channel, address, after: decodeCursor(req.cursor) },
        limit + 1,
      );
      const page = rows.slice(0, limit);
      return create(ListSuppressionsResponseSchema, {
        suppressions: page.map(toProto),
        nextCursor: rows.length > limit ? encodeCursor(page.at(-1)!) : '',
      });
    },

    async addSuppression(req: AddSuppressionRequest, ctx: HandlerContext): Promise<AddSuppressionResponse> {
      requireServiceScope(ctx, 'admin');
      const channel = suppressedChannel(req.channel);
      const address = normalisedAddress(channel, req.address);
      const problem = req.reason === '' ? undefined : checkTextLength(req.reason, 1, MAX_REASON_CHARS);
      if (problem) throw invalidArgument('reason', problem);
      // Opt-outs are the recipient's to lift (START), so an operator's entry never looks like one.
      if (req.reason.startsWith(OPT_OUT_REASON)) {
        throw invalidArgument(
          'reason',
          `must not start with "${OPT_OUT_REASON}" (kept for recipients' opt-outs)`,
        );
      }
      const { row, created } = await addSuppression(db, {
        channel,
        address,
        reason: req.reason === '' ? DEFAULT_REASON : req.reason,
      });
      return create(AddSuppressionResponseSchema, { suppression: toProto(row), created });
    },

    async removeSuppression(
      req: RemoveSuppressionRequest,
      ctx: HandlerContext,
    ): Promise<RemoveSuppressionResponse> {
      requireServiceScope(ctx, 'admin');
      const channel = suppressedChannel(req.channel);
      const address = normalisedAddress(channel, req.address);
      return create(RemoveSuppressionResponseSchema, {
        removed: await removeSuppression(db, { channel, address }),
      });
    },
  };
}
