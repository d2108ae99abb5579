// The real-time layer's public face: the bus, live inbox sessions, and the in-app delivery status they
// produce (sent when written to a live connection, delivered when a client acknowledges it).
import type { Logger } from 'pino';
import type { Database } from '../store/database.js';
import { createGroupWriter } from '../store/group-commit.js';
import {
  type MarkAction,
  type MarkResult,
  type MarkTarget,
  markInAppDelivered,
  markInAppSent,
  markInbox,
  unreadStates,
} from '../store/inbox.js';
import type { Bus } from './bus.js';
import { type InboxSession, openInboxSession, type SessionOptions } from './session.js';

export type { Bus, BusEvent, SystemEvent, WireInboxRow } from './bus.js';
export { createMemoryBus } from './bus.js';
export type { InboxSession, SessionEvent } from './session.js';

export interface Realtime {
  readonly bus: Bus;
  /** A live session; `emit` writes to the client. */
  openSession(options: Pick<SessionOptions, 'userId' | 'afterSeq' | 'emit'>): Promise<InboxSession>;
  /** A client acknowledged these notifications. */
  acknowledge(userId: string, notificationIds: readonly string[]): Promise<void>;
  /** Changes inbox state and pushes it (`state`, `unread_count`) to every live session of the user. */
  mark(userId: string, target: MarkTarget, action: MarkAction, at: Date): Promise<MarkResult>;
  close(): Promise<void>;
}

export function createRealtime(options: { database: Database; bus: Bus; logger: Logger }): Realtime {
  const { database, bus, logger } = options;
  // Status writes from many sessions share statements under load.
  const writeSent = createGroupWriter(
    async (ids: string[]) => {
      await markInAppSent(database.sql, ids);
      return ids.map(() => undefined);
    },
    { maxStatements: 1, maxItems: 5_000 },
  );
  // Many sessions start at once under load (a reconnect storm): one statement reads all their counts.
  const readUnread = createGroupWriter((userIds: string[]) => unreadStates(database.sql, userIds), {
    maxStatements: 2,
    maxItems: 1_000,
  });
  const onError = (error: unknown) => logger.warn({ err: error }, 'real-time session error');
  // Shared by every session (one set of functions, not one per connection).
  const shared = {
    database,
    bus,
    onError,
    unreadState: async (userId: string) => (await readUnread([userId]))[0]!,
    onWritten: (ids: string[]) => {
      writeSent(ids).catch(onError);
    },
  };
  return {
    bus,
    openSession: (o) => openInboxSession({ ...shared, userId: o.userId, afterSeq: o.afterSeq, emit: o.emit }),
    acknowledge: (userId, ids) => markInAppDelivered(database.sql, userId, ids),
    async mark(userId, target, action, at) {
      const result = await markInbox(database.sql, userId, target, action, at);
      if (result.ids.length > 0) {
        const iso = (d: Date | null) => d?.toISOString() ?? null;
        await bus.publish({
          kind: 'state',
          userId,
          ids: result.ids,
          action,
          readAt: iso(result.readAt),
          seenAt: iso(result.seenAt),
          archivedAt: iso(result.archivedAt),
        });
        await bus.publish({ kind: 'unread_count', userId, ...result.unread });
      }
      return result;
    },
    close: () => bus.close(),
  };
}
