// The real-time layer's public face: the bus, live inbox sessions, and the in-app delivery status they
// produce (sent when written to a live connection, delivered when a client acknowledges it).
import type { Logger } from 'pino';
import type { Database } from '../store/database.js';
import { createGroupWriter } from '../store/group-commit.js';
import {
  type InboxRead,
  inboxAfterMany,
  latestInboxSeqs,
  type MarkAction,
  type MarkResult,
  type MarkTarget,
  markInAppDelivered,
  markInAppSent,
  markInbox,
  unreadStates,
} from '../store/inbox.js';
import { type AdmissionControl, createAdmissionControl } from './admission.js';
import type { Bus } from './bus.js';
import { INBOX_PAGE, type InboxSession, openInboxSession, type SessionOptions } from './session.js';

export type { Admission, AdmissionControl, AdmissionTicket } from './admission.js';
export { refusalMessage } from './admission.js';
export type { Bus, BusEvent, SystemEvent, WireInboxRow } from './bus.js';
export { createMemoryBus } from './bus.js';
export type { InboxSession, SessionEvent } from './session.js';

export interface Realtime {
  readonly bus: Bus;
  /** A live session; `emit` writes to the client. */
  openSession(options: Pick<SessionOptions, 'userId' | 'afterSeq' | 'emit'>): Promise<InboxSession>;
  /** The user's latest inbox seq (0 for an empty inbox); connections starting together share statements. */
  latestSeq(userId: string): Promise<number>;
  /** A client acknowledged these notifications. */
  acknowledge(userId: string, notificationIds: readonly string[]): Promise<void>;
  /** Changes inbox state and pushes it (`state`, `unread_count`) to every live session of the user. */
  mark(userId: string, target: MarkTarget, action: MarkAction, at: Date): Promise<MarkResult>;
  /** True while the bus is away and live sessions poll PostgreSQL instead. */
  degraded(): boolean;
  /** Sessions starting at once: a session asks for its turn with `request()` (see admission.ts). */
  readonly admission: AdmissionControl;
  /**
   * A live connection or stream the drain ends (`end` closes it, telling the client to reconnect); call the
   * answer once it has ended by itself.
   */
  track(end: () => void): () => void;
  /** True once the drain started: nothing new starts. */
  draining(): boolean;
  /**
   * Ends every tracked connection and stream, spread over `windowMs` (sooner when there are few: at most
   * DRAIN_RATE a second), so their clients do not all come back in the same second.
   */
  drain(windowMs: number): Promise<void>;
  close(): Promise<void>;
}

/** Ends per second a drain spreads connections at, when they are too few to fill its window. */
export const DRAIN_RATE = 1_000;
const DRAIN_TICK_MS = 20;

export interface RealtimeOptions {
  database: Database;
  bus: Bus;
  logger: Logger;
  /**
   * While the bus is degraded, how often live sessions look in PostgreSQL for notifications they were not
   * told about: the most a notification waits then.
   */
  fallbackPollMs: number;
  /** Sessions starting at once, and how long one waits its turn before it is refused. */
  sessionStarts: { limit: number; maxWaitMs: number };
}

/** Users whose latest inbox seq one fallback statement reads. */
const FALLBACK_USERS_PER_STATEMENT = 1_000;

export function createRealtime(options: RealtimeOptions): Realtime {
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
  // ... and their replays: each read takes up to a page, so fewer share a statement.
  const readInbox = createGroupWriter(
    (reads: InboxRead[]) => inboxAfterMany(database.sql, reads, INBOX_PAGE),
    {
      maxStatements: 2,
      maxItems: 100,
    },
  );
  // Connections acknowledged together (the seq their connection_ack carries).
  const readLatest = createGroupWriter(
    async (userIds: string[]) => {
      const latest = await latestInboxSeqs(database.sql, [...new Set(userIds)]);
      return userIds.map((id) => latest.get(id) ?? 0);
    },
    { maxStatements: 2, maxItems: 1_000 },
  );
  const onError = (error: unknown) => logger.warn({ err: error }, 'real-time session error');
  // Notifications written in one turn (a SendBatch reaching many sessions) go to the group writer together.
  let written: string[] = [];
  const flushWritten = () => {
    const ids = written;
    written = [];
    writeSent(ids).catch(onError);
  };
  // Shared by every session (one set of functions, not one per connection).
  const shared = {
    database,
    bus,
    onError,
    unreadState: async (userId: string) => (await readUnread([userId]))[0]!,
    readInbox: async (userId: string, afterSeq: number) => (await readInbox([{ userId, afterSeq }]))[0]!,
    onWritten: (id: string) => {
      if (written.length === 0) process.nextTick(flushWritten);
      written.push(id);
    },
  };
  // Live sessions on this instance, for the degraded-bus fallback.
  const live = new Set<InboxSession>();
  let polling = false;
  let wasDegraded = false;
  const fallback = setInterval(() => {
    const degraded = bus.degraded();
    if (degraded !== wasDegraded) {
      wasDegraded = degraded;
      logger.warn(
        { sessions: live.size },
        degraded
          ? 'real-time bus degraded: live sessions read PostgreSQL on a timer'
          : 'real-time bus back: live sessions follow its hints again',
      );
    }
    if (!degraded || polling || live.size === 0) return;
    polling = true;
    pollForMissedNotifications()
      .catch(onError)
      .finally(() => {
        polling = false;
      });
  }, options.fallbackPollMs);
  fallback.unref();

  /** Every live session whose user has a newer inbox seq than it wrote reads PostgreSQL. */
  async function pollForMissedNotifications(): Promise<void> {
    const byUser = new Map<string, InboxSession[]>();
    for (const session of live) {
      const list = byUser.get(session.userId);
      if (list) list.push(session);
      else byUser.set(session.userId, [session]);
    }
    const users = [...byUser.keys()];
    for (let i = 0; i < users.length; i += FALLBACK_USERS_PER_STATEMENT) {
      const latest = await latestInboxSeqs(database.sql, users.slice(i, i + FALLBACK_USERS_PER_STATEMENT));
      for (const [userId, seq] of latest) {
        for (const session of byUser.get(userId) ?? []) if (session.lastSeq() < seq) session.catchUp();
      }
    }
  }

  const admission = createAdmissionControl({
    ...options.sessionStarts,
    // Waiting costs a socket and a request's memory each; beyond this many, refusing at once is kinder.
    maxQueued: options.sessionStarts.limit * 8,
  });
  const tracked = new Set<() => void>();
  let draining = false;

  return {
    bus,
    admission,
    track(end) {
      // Started while the drain runs: ended at once (its turn has passed).
      if (draining) {
        setImmediate(end);
        return () => {};
      }
      tracked.add(end);
      return () => {
        tracked.delete(end);
      };
    },
    draining: () => draining,
    async drain(windowMs) {
      draining = true;
      // In random order: the clients of one region, tenant or load balancer do not all leave first.
      const ends = [...tracked];
      tracked.clear();
      for (let i = ends.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [ends[i], ends[j]] = [ends[j]!, ends[i]!];
      }
      const spanMs = Math.min(windowMs, (ends.length / DRAIN_RATE) * 1000);
      const started = performance.now();
      let next = 0;
      while (next < ends.length) {
        const due =
          spanMs > 0 ? Math.ceil((ends.length * (performance.now() - started)) / spanMs) : ends.length;
        for (const end of ends.slice(next, Math.max(next + 1, due))) {
          try {
            end();
          } catch (error) {
            logger.warn({ err: error }, 'ending a live session for the drain failed');
          }
        }
        next = Math.max(next + 1, due);
        if (next < ends.length) await new Promise((resolve) => setTimeout(resolve, DRAIN_TICK_MS));
      }
    },
    async openSession(o) {
      const session = await openInboxSession({
        ...shared,
        userId: o.userId,
        afterSeq: o.afterSeq,
        emit: o.emit,
      });
      live.add(session);
      const close = session.close;
      return {
        ...session,
        close: () => {
          live.delete(session);
          return close();
        },
      };
    },
    degraded: () => bus.degraded(),
    latestSeq: async (userId) => (await readLatest([userId]))[0]!,
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
    async close() {
      clearInterval(fallback);
      await bus.close();
    },
  };
}
