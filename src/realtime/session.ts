// One live inbox session (a StreamNotifications call or a WebSocket connection): replays every inbox
// notification after the client's seq from Postgres, then follows the bus, with no gap and no duplicate at
// the seam. It subscribes before it replays, and every notification event from the bus makes it read
// Postgres again from the last seq it sent, so whatever commits during or after the replay is picked up
// exactly once, in seq order, however the bus orders or drops its hints.
//
// The unread count is exact without a query per notification: the session reads it once (an UnreadState:
// the count of every inbox notification up to a seq, after a number of marks), then adds each unread
// notification it writes beyond that seq. Marks publish their own state; the session takes it only from a
// later version, and reads Postgres again when it cannot place one.
import type { Database } from '../store/database.js';
import { type InboxRow, inboxAfter, type UnreadState, unreadStates } from '../store/inbox.js';
import type { Bus, BusEvent, SystemEvent, WireInboxRow } from './bus.js';

function fromWire(row: WireInboxRow): InboxRow {
  return {
    ...row,
    inbox: true,
    cancelledAt: null,
    readAt: null,
    seenAt: null,
    archivedAt: null,
    // Push presentation and the trace are not part of an inbox row.
    pushOptions: null,
    traceParent: null,
    sendAt: new Date(row.sendAt),
    expiresAt: row.expiresAt ? new Date(row.expiresAt) : null,
    createdAt: new Date(row.createdAt),
  };
}

/**
 * A notification the bus carried, written without reading Postgres: the row as it travelled (dates as ISO
 * strings), for writers that can use it as it is (the WebSocket bridge's frames), and as an InboxRow, made
 * only when asked for (parsing three dates costs more than the frame the bridge writes).
 */
class CarriedNotification {
  readonly kind = 'notification';
  #row: InboxRow | undefined;
  constructor(readonly wire: WireInboxRow) {}
  get row(): InboxRow {
    this.#row ??= fromWire(this.wire);
    return this.#row;
  }
}

export type SessionEvent =
  /** `wire`: the row as the bus carried it, when it did. */
  | { kind: 'notification'; row: InboxRow; wire?: WireInboxRow }
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
  /** A notification just written to this client (in-app delivery status: sent). */
  onWritten?: (notificationId: string) => void;
  /** The user's unread state (sessions share statements through it); one query per call otherwise. */
  unreadState?: (userId: string) => Promise<UnreadState>;
  /** The user's inbox after a seq, at most INBOX_PAGE rows (sessions share statements through it). */
  readInbox?: (userId: string, afterSeq: number) => Promise<InboxRow[]>;
  onError: (error: unknown) => void;
}

export interface InboxSession {
  readonly userId: string;
  /** The highest seq written to this client. */
  lastSeq(): number;
  /** Reads PostgreSQL for what came after lastSeq, as a bus hint would make it (the degraded-bus fallback). */
  catchUp(): void;
  close(): Promise<void>;
}

/** Rows one read of a session takes at most; a full page means there may be more. */
export const INBOX_PAGE = 500;

type UnreadCountEvent = Extract<BusEvent, { kind: 'unread_count' }>;

export async function openInboxSession(options: SessionOptions): Promise<InboxSession> {
  const { database, bus, userId, emit } = options;
  const readUnread =
    options.unreadState ?? (async (user: string) => (await unreadStates(database.sql, [user]))[0]!);
  const readInbox =
    options.readInbox ?? ((user: string, after: number) => inboxAfter(database.db, user, after, INBOX_PAGE));
  let lastSeq = options.afterSeq;
  let closed = false;
  let started = false;
  const held: SessionEvent[] = [];
  let reading: Promise<void> | null = null;
  let readAgain = false;
  /** What the client was last told (or will be, once started); null until first read. */
  let unread: UnreadState | null = null;
  let recount = true;

  /** A notification was written: it counts if it is unread and the count does not already hold it. */
  function counted(row: Pick<InboxRow, 'seq' | 'readAt' | 'archivedAt'>): void {
    if (!unread || row.seq <= unread.seq) return;
    if (!row.readAt && !row.archivedAt) unread.count += 1;
    unread.seq = row.seq;
  }

  function emitCount(): void {
    if (unread && started && !closed) emit({ kind: 'unread_count', count: unread.count });
  }

  /**
   * Reads and writes everything after lastSeq (first the unread state, when asked to); concurrent requests
   * fold into one more pass. Nothing else writes notifications while a pass runs.
   */
  function catchUp(): Promise<void> {
    if (reading) {
      readAgain = true;
      return reading;
    }
    reading = (async () => {
      let changed = false;
      do {
        readAgain = false;
        if (recount) {
          // Before the rows: a notification committed after this read has a larger seq, and is added below.
          recount = false;
          const state = await readUnread(userId);
          if (!unread || state.version >= unread.version) unread = { ...state };
          changed = true;
        }
        const rows = await readInbox(userId, lastSeq);
        if (closed) return;
        for (const row of rows) {
          if (row.seq <= lastSeq) continue;
          lastSeq = row.seq;
          counted(row);
          emit({ kind: 'notification', row });
          options.onWritten?.(row.id);
        }
        if (rows.length > 0) changed = true;
        if (rows.length === INBOX_PAGE) readAgain = true;
      } while ((readAgain || recount) && !closed);
      if (changed) emitCount();
    })().finally(() => {
      reading = null;
    });
    return reading;
  }

  /** A count from a mark: newer than what the session holds, or a reason to read it again. */
  function takeCount(event: UnreadCountEvent): void {
    if (!unread || event.version <= unread.version) return;
    if (event.seq >= lastSeq && !reading) {
      // It covers every notification written so far (and any up to its seq still to come).
      unread = { count: event.count, seq: event.seq, version: event.version };
      emitCount();
    } else {
      // Notifications were written after the mark counted: it cannot say which of them are unread now.
      recount = true;
      catchUp().catch(options.onError);
    }
  }

  function deliver(event: SessionEvent): void {
    if (closed) return;
    if (!started) held.push(event);
    else emit(event);
  }

  /** The common case: the hint carries the notification right after the last one written. */
  function writeCarried(row: WireInboxRow): void {
    lastSeq = row.seq;
    // A new notification: not read, not archived.
    counted({ seq: row.seq, readAt: null, archivedAt: null });
    emit(new CarriedNotification(row));
    options.onWritten?.(row.id);
    emitCount();
  }

  const pendingCounts: UnreadCountEvent[] = [];
  const unsubscribe = await bus.subscribe(userId, (event) => {
    if (closed) return;
    switch (event.kind) {
      case 'notification':
        if (event.seq <= lastSeq) return;
        // Only when nothing can lie in between (seqs are per user and consecutive): otherwise read Postgres.
        if (started && !reading && event.row && event.seq === lastSeq + 1) writeCarried(event.row);
        else catchUp().catch(options.onError);
        return;
      case 'resync':
        recount = true;
        catchUp().catch(options.onError);
        return;
      case 'unread_count':
        if (started) takeCount(event);
        else pendingCounts.push(event);
        return;
      default:
        deliver(event);
    }
  });
  const stopBroadcast = bus.onBroadcast((event) => deliver({ kind: 'system', event }));
  try {
    await catchUp();
    if (reading) await reading;
    started = true;
    emitCount();
    for (const event of held.splice(0)) emit(event);
    for (const event of pendingCounts.splice(0)) takeCount(event);
  } catch (error) {
    unsubscribe();
    stopBroadcast();
    throw error;
  }

  return {
    userId,
    lastSeq: () => lastSeq,
    catchUp() {
      if (!closed) catchUp().catch(options.onError);
    },
    async close() {
      closed = true;
      unsubscribe();
      stopBroadcast();
    },
  };
}
