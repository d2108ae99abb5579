// The in-app inbox over RPC: StreamNotifications (replay after a seq, then live, with heartbeats),
// ListNotifications (cursor pagination) and MarkNotifications (state changes pushed to every device).
// A user token acts for its own user only; an API key with "read" (stream, list) or "send" (mark) for any.
import { create, type JsonObject } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type HandlerContext } from '@connectrpc/connect';
import {
  type ListNotificationsRequest,
  type ListNotificationsResponse,
  ListNotificationsResponseSchema,
  MarkAction,
  type MarkNotificationsRequest,
  type MarkNotificationsResponse,
  MarkNotificationsResponseSchema,
  type StreamNotificationsRequest,
  type StreamNotificationsResponse,
  StreamNotificationsResponseSchema,
} from '../../gen/herald/v1/notification_service_pb.js';
import { invalidArgument } from '../core/errors.js';
import { isUuid } from '../core/ids.js';
import { checkId } from '../core/rules.js';
import { type InboxSession, type Realtime, refusalMessage, type SessionEvent } from '../realtime/index.js';
import type { InAppMetrics } from '../realtime/metrics.js';
import {
  type Database,
  type MarkAction as DomainMarkAction,
  listInbox,
  unreadCount,
} from '../store/index.js';
import { actingUser, INBOX_SCOPES, principalOf } from './auth.js';
import { inboxNotificationToProto } from './convert.js';
import type { CredentialEnd, CredentialWatch } from './credential-watch.js';

export interface InboxDeps {
  database: Database;
  realtime: Realtime;
  heartbeatMs: number;
  now: () => Date;
  /** Aborted when the server starts shutting down: open streams end so clients reconnect elsewhere. */
  closing: AbortSignal;
  /** Ends a stream whose credential expires or is revoked while it is open. */
  credentials: CredentialWatch;
  inAppMetrics: InAppMetrics;
}

/** Response metadata of a refused stream: when to try again, in milliseconds (the clients honour it). */
export const RETRY_AFTER_MS = 'retry-after-ms';

const CREDENTIAL_ENDED: Record<CredentialEnd, string> = {
  expired: 'the user token expired; reconnect with a fresh one',
  revoked: 'the API key was revoked',
};

const DEFAULT_PAGE = 20;
const MAX_PAGE = 100;
const MAX_MARK_IDS = 1_000;
/** Events queued for a stream whose client does not read; beyond this the stream ends (RESOURCE_EXHAUSTED). */
const MAX_QUEUED_EVENTS = 10_000;

export const markActions = new Map<MarkAction, DomainMarkAction>([
  [MarkAction.READ, 'read'],
  [MarkAction.UNREAD, 'unread'],
  [MarkAction.SEEN, 'seen'],
  [MarkAction.ARCHIVED, 'archived'],
  [MarkAction.UNARCHIVED, 'unarchived'],
]);
const markActionValues = new Map([...markActions].map(([k, v]) => [v, k]));

const ts = (iso: string | null) => (iso ? timestampFromDate(new Date(iso)) : undefined);

export function sessionEventToProto(event: SessionEvent): StreamNotificationsResponse {
  switch (event.kind) {
    case 'notification':
      return create(StreamNotificationsResponseSchema, {
        event: { case: 'notification', value: inboxNotificationToProto(event.row) },
      });
    case 'state':
      return create(StreamNotificationsResponseSchema, {
        event: {
          case: 'state',
          value: {
            notificationIds: event.ids,
            readAt: ts(event.readAt),
            seenAt: ts(event.seenAt),
            archivedAt: ts(event.archivedAt),
            action: markActionValues.get(event.action) ?? MarkAction.UNSPECIFIED,
          },
        },
      });
    case 'unread_count':
      return create(StreamNotificationsResponseSchema, {
        event: { case: 'unreadCount', value: { count: BigInt(event.count) } },
      });
    case 'system':
      return create(StreamNotificationsResponseSchema, {
        event: { case: 'system', value: { type: event.event.type, data: event.event.data as JsonObject } },
      });
  }
}

/** Cursors are opaque to clients: base64url of the last seq of the page. */
function encodeCursor(seq: number): string {
  return Buffer.from(`s${seq}`).toString('base64url');
}

/** Seqs are stored as bigint but handled as JS numbers: a seq past this cannot exist. */
const MAX_SEQ = BigInt(Number.MAX_SAFE_INTEGER);

function decodeCursor(cursor: string): number | null {
  if (cursor === '') return null;
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const seq = /^s(\d{1,18})$/.exec(text)?.[1];
  if (!seq) throw invalidArgument('cursor', 'is not a cursor this server issued');
  return Number(seq);
}

export function inboxHandlers({
  database,
  realtime,
  heartbeatMs,
  now,
  closing,
  credentials,
  inAppMetrics,
}: InboxDeps) {
  return {
    async *streamNotifications(
      req: StreamNotificationsRequest,
      ctx: HandlerContext,
    ): AsyncGenerator<StreamNotificationsResponse> {
      const userId = actingUser(ctx, req.userId, 'user_id', INBOX_SCOPES.follow);
      if (req.afterSeq < 0n || req.afterSeq > MAX_SEQ) {
        throw invalidArgument('after_seq', `must be 0..${MAX_SEQ}`);
      }
      const askedAt = performance.now();
      if (realtime.draining()) throw new ConnectError('service restart; reconnect', Code.Unavailable);
      // Its turn among the sessions starting at once, held until its session is open; a caller that leaves
      // while waiting gives its place up.
      const ticket = realtime.admission.request();
      ctx.signal.addEventListener('abort', ticket.cancel, { once: true });
      const queue: StreamNotificationsResponse[] = [];
      let wake: (() => void) | null = null;
      let overflow = false;
      const push = (message: StreamNotificationsResponse) => {
        if (queue.length >= MAX_QUEUED_EVENTS) overflow = true;
        else queue.push(message);
        wake?.();
      };
      let session: InboxSession;
      try {
        const admission = await ticket.admitted;
        if (!admission.admitted) {
          if (admission.reason === 'cancelled') throw new ConnectError('the client went away', Code.Canceled);
          inAppMetrics.sessionStartRefused('stream');
          throw new ConnectError(refusalMessage(admission.retryAfterMs), Code.Unavailable, {
            [RETRY_AFTER_MS]: String(admission.retryAfterMs),
          });
        }
        session = await realtime.openSession({
          userId,
          afterSeq: Number(req.afterSeq),
          emit: (event) => {
            if (event.kind === 'notification') inAppMetrics.written('stream');
            push(sessionEventToProto(event));
          },
        });
      } finally {
        ctx.signal.removeEventListener('abort', ticket.cancel);
        ticket.cancel();
      }
      inAppMetrics.sessionStarted('stream', (performance.now() - askedAt) / 1000);
      // A drain on shutdown ends it at its turn (the client reconnects, elsewhere).
      let drained = false;
      const untrack = realtime.track(() => {
        drained = true;
        wake?.();
      });
      const heartbeat = setInterval(() => {
        push(
          create(StreamNotificationsResponseSchema, {
            event: { case: 'heartbeat', value: { serverTime: timestampFromDate(now()) } },
          }),
        );
      }, heartbeatMs);
      const onAbort = () => wake?.();
      let credentialEnded: CredentialEnd | null = null;
      const unwatch = credentials.watch(principalOf(ctx), (why) => {
        credentialEnded = why;
        wake?.();
      });
      ctx.signal.addEventListener('abort', onAbort);
      closing.addEventListener('abort', onAbort);
      const streamClosed = inAppMetrics.streamOpened();
      try {
        for (;;) {
          if (credentialEnded)
            throw new ConnectError(CREDENTIAL_ENDED[credentialEnded], Code.Unauthenticated);
          if (overflow) {
            throw new ConnectError(
              'the client is not reading its stream; reconnect and resume',
              Code.ResourceExhausted,
            );
          }
          const next = queue.shift();
          if (next) {
            yield next;
            continue;
          }
          if (ctx.signal.aborted || closing.aborted || drained) return;
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = null;
        }
      } finally {
        untrack();
        streamClosed();
        unwatch();
        clearInterval(heartbeat);
        ctx.signal.removeEventListener('abort', onAbort);
        closing.removeEventListener('abort', onAbort);
        await session.close();
      }
    },

    async listNotifications(
      req: ListNotificationsRequest,
      ctx: HandlerContext,
    ): Promise<ListNotificationsResponse> {
      const userId = actingUser(ctx, req.userId, 'user_id', INBOX_SCOPES.follow);
      if (req.limit < 0 || req.limit > MAX_PAGE)
        throw invalidArgument('limit', `must be 1..${MAX_PAGE} (0 = ${DEFAULT_PAGE})`);
      if (req.type !== '') {
        const problem = checkId(req.type);
        if (problem) throw invalidArgument('type', problem);
      }
      const limit = req.limit || DEFAULT_PAGE;
      const rows = await listInbox(database.db, userId, {
        limit: limit + 1,
        beforeSeq: decodeCursor(req.cursor),
        unreadOnly: req.unreadOnly,
        archived: req.archived,
        type: req.type || null,
      });
      const page = rows.slice(0, limit);
      return create(ListNotificationsResponseSchema, {
        notifications: page.map(inboxNotificationToProto),
        nextCursor: rows.length > limit ? encodeCursor(page.at(-1)!.seq) : '',
        unreadCount: BigInt(await unreadCount(database.sql, userId)),
      });
    },

    async markNotifications(
      req: MarkNotificationsRequest,
      ctx: HandlerContext,
    ): Promise<MarkNotificationsResponse> {
      const userId = actingUser(ctx, req.userId, 'user_id', INBOX_SCOPES.change);
      const action = markActions.get(req.action);
      if (!action) throw invalidArgument('action', 'must be READ, UNREAD, SEEN, ARCHIVED or UNARCHIVED');
      if (req.notificationIds.length > MAX_MARK_IDS) {
        throw invalidArgument('notification_ids', `must hold at most ${MAX_MARK_IDS} ids`);
      }
      req.notificationIds.forEach((id, i) => {
        if (!isUuid(id)) throw invalidArgument(`notification_ids[${i}]`, 'must be a UUID');
      });
      if (req.upToSeq > MAX_SEQ) throw invalidArgument('up_to_seq', `must be at most ${MAX_SEQ}`);
      if (req.notificationIds.length === 0 && req.upToSeq <= 0n) {
        throw invalidArgument('up_to_seq', 'must be positive when notification_ids is empty');
      }
      if (req.notificationIds.length > 0 && req.upToSeq !== 0n) {
        throw invalidArgument('up_to_seq', 'cannot be combined with notification_ids');
      }
      const result = await realtime.mark(
        userId,
        { ids: req.notificationIds.map((id) => id.toLowerCase()), upToSeq: Number(req.upToSeq) },
        action,
        now(),
      );
      inAppMetrics.marked(action, result.ids.length);
      return create(MarkNotificationsResponseSchema, {
        updated: BigInt(result.ids.length),
        unreadCount: BigInt(result.unread.count),
      });
    },
  };
}
