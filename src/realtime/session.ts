// One live inbox session (a StreamNotifications call or a WebSocket connection): replays every inbox
// notification after the client's seq from Postgres, then follows the bus, with no gap and no duplicate at
// the seam. It subscribes before it replays, and every notification event from the bus makes it read
// Postgres again from the last seq it sent, so whatever commits during or after the replay is picked up
// exactly once, in seq order, however the bus orders or drops its hints.
import type { Database } from '../store/database.js';
import { type InboxRow, inboxAfter, unreadCount } from '../store/inbox.js';
import type { Bus, BusEvent, SystemEvent, WireInboxRow } from './bus.js';

function fromWire(row: WireInboxRow): InboxRow {
  return {
    ...row,
    inbox: true,
    cancelledAt: null,
    readAt: null,
    seenAt: null,
    archivedAt: null,
    sendAt: new Date(row.sendAt),
    expiresAt: row.expiresAt ? new Date(row.expiresAt) : null,
    createdAt: new Date(row.createdAt),
  };
}

export type SessionEvent =
  | { kind: 'notification'; row: InboxRow }
  | Extract<BusEvent, { kind: 'state' }>
  | { kind: 'unread_count'; count: number }
  | { kind: 'system'; event: SystemEvent };

export interface SessionOptions {
  database: Database;
  bus: Bus;
  userId: string;
  afterSeq: number;
  /** Writes one event to the client; never throws. */
  emit: (event: SessionEvent) => void;
  /** Notifications just written to this client (in-app delivery status: sent). */
  onWritten?: (notificationIds: string[]) => void;
  /** The user's exact unread count (sessions share statements through it); one query per call otherwise. */
  countUnread?: (userId: string) => Promise<number>;
  onError: (error: unknown) => void;
}

export interface InboxSession {
  /** The highest seq written to this client. */
  lastSeq(): number;
  close(): Promise<void>;
}

const PAGE = 500;

export async function openInboxSession(options: SessionOptions): Promise<InboxSession> {
  const { database, bus, userId, emit } = options;
  const countUnread = options.countUnread ?? ((user: string) => unreadCount(database.sql, user));
  let lastSeq = options.afterSeq;
  let closed = false;
  let started = false;
  const held: SessionEvent[] = [];
  let reading: Promise<void> | null = null;
  let readAgain = false;

  /** Reads and writes everything after lastSeq; concurrent requests fold into one more pass. */
  function catchUp(): Promise<void> {
    if (reading) {
      readAgain = true;
      return reading;
    }
    reading = (async () => {
      // Hints that arrive while reading (or while counting) set readAgain; the loop only ends once a pass
      // started after the last of them.
      do {
        let wrote = false;
        do {
          readAgain = false;
          const rows = await inboxAfter(database.db, userId, lastSeq, PAGE);
          if (closed) return;
          for (const row of rows) {
            if (row.seq <= lastSeq) continue;
            lastSeq = row.seq;
            emit({ kind: 'notification', row });
          }
          if (rows.length > 0) {
            wrote = true;
            options.onWritten?.(rows.map((r) => r.id));
          }
          if (rows.length === PAGE) readAgain = true;
        } while (readAgain && !closed);
        if (wrote && started && !closed) {
          emit({ kind: 'unread_count', count: await countUnread(userId) });
        }
      } while (readAgain && !closed);
    })().finally(() => {
      reading = null;
    });
    return reading;
  }

  function deliver(event: SessionEvent): void {
    if (closed) return;
    if (!started) held.push(event);
    else emit(event);
  }

  /** The common case: the hint carries the notification right after the last one written. */
  function writeCarried(row: WireInboxRow): void {
    lastSeq = row.seq;
    emit({ kind: 'notification', row: fromWire(row) });
    options.onWritten?.([row.id]);
    countUnread(userId).then((count) => {
      if (!closed) emit({ kind: 'unread_count', count });
    }, options.onError);
  }

  const unsubscribe = await bus.subscribe(userId, (event) => {
    if (event.kind !== 'notification') return deliver(event);
    if (event.seq <= lastSeq || closed) return;
    // Only when nothing can lie in between (seqs are per user and consecutive): otherwise read Postgres.
    if (started && !reading && event.row && event.seq === lastSeq + 1) writeCarried(event.row);
    else catchUp().catch(options.onError);
  });
  const stopBroadcast = bus.onBroadcast((event) => deliver({ kind: 'system', event }));
  try {
    await catchUp();
    if (reading) await reading;
    started = true;
    emit({ kind: 'unread_count', count: await countUnread(userId) });
    for (const event of held.splice(0)) emit(event);
  } catch (error) {
    unsubscribe();
    stopBroadcast();
    throw error;
  }

  return {
    lastSeq: () => lastSeq,
    async close() {
      closed = true;
      unsubscribe();
      stopBroadcast();
    },
  };
}
