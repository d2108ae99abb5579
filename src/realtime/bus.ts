// The bus carries real-time events between instances: to the connections of one user (wherever they are
// held) and to every connection (broadcast). It is a hint, not the record: a notification event says "this
// user has new notifications up to seq N"; a session reads them from Postgres unless N directly follows the
// last seq it wrote and the event carries the notification. So an event lost or reordered in transit can
// delay a notification but never drop, duplicate or reorder one.
//
// Implementations: in memory (one instance; the default) and Redis pub/sub (several instances). Same
// interface, same test suite.

/** An inbox notification as it travels on the bus (dates as ISO strings, so every bus can carry it). */
export interface WireInboxRow {
  id: string;
  userId: string;
  seq: number;
  type: string;
  priority: number;
  critical: boolean;
  data: Record<string, unknown>;
  title: string | null;
  body: string | null;
  senderKeyId: string | null;
  idempotencyKey: string | null;
  sendAt: string;
  expiresAt: string | null;
  createdAt: string;
}

export type BusEvent =
  /**
   * New inbox notifications for the user, up to and including `seq`. `row` is that notification when it is
   * the user's only new one; a session whose last seq is `seq - 1` may write it without reading Postgres.
   */
  | { kind: 'notification'; userId: string; seq: number; row?: WireInboxRow }
  /** Notifications changed state (read, seen, archived, ...), possibly on another device. */
  | {
      kind: 'state';
      userId: string;
      ids: string[];
      action: 'read' | 'unread' | 'seen' | 'archived' | 'unarchived';
      readAt: string | null;
      seenAt: string | null;
      archivedAt: string | null;
    }
  /** Events may have been lost (the bus was down): read Postgres again, notifications and count. */
  | { kind: 'resync'; userId: string }
  /** The exact unread count after a state change (see UnreadState: `seq` and `version` place it in time). */
  | { kind: 'unread_count'; userId: string; count: number; seq: number; version: number };

/** An ephemeral message to every connected client; never stored. */
export interface SystemEvent {
  type: string;
  data: Record<string, unknown>;
}

export interface Bus {
  /** Delivers to every subscriber of event.userId, on any instance. */
  publish(event: BusEvent): Promise<void>;
  /** Events for one user; resolves, once the subscription is active, to the unsubscribe function. */
  subscribe(userId: string, listener: (event: BusEvent) => void): Promise<() => void>;
  /** Delivers to every broadcast listener on every instance. */
  broadcast(event: SystemEvent): Promise<void>;
  onBroadcast(listener: (event: SystemEvent) => void): () => void;
  /**
   * Takes one of the user's at most `cap` connections, counted on every instance; false when all are taken.
   * Every true must be matched by one releaseConnection.
   */
  claimConnection(userId: string, cap: number): Promise<boolean>;
  releaseConnection(userId: string): void;
  /**
   * True while events may not be reaching other instances or arriving from them (Redis is away). Live
   * sessions then read PostgreSQL on a timer instead of waiting for hints (see createRealtime).
   */
  degraded(): boolean;
  close(): Promise<void>;
}

/** Connections per user held by this instance (the whole count for the memory bus, a share for Redis). */
export class ConnectionCounts {
  private readonly counts = new Map<string, number>();

  get(userId: string): number {
    return this.counts.get(userId) ?? 0;
  }

  add(userId: string, delta: number): number {
    const n = this.get(userId) + delta;
    if (n > 0) this.counts.set(userId, n);
    else this.counts.delete(userId);
    return n;
  }

  entries(): IterableIterator<[string, number]> {
    return this.counts.entries();
  }
}

export function createMemoryBus(): Bus {
  const users = new Map<string, Set<(event: BusEvent) => void>>();
  const everyone = new Set<(event: SystemEvent) => void>();
  const connections = new ConnectionCounts();
  return {
    async publish(event) {
      for (const listener of users.get(event.userId) ?? []) listener(event);
    },
    async subscribe(userId, listener) {
      let set = users.get(userId);
      if (!set) {
        set = new Set();
        users.set(userId, set);
      }
      set.add(listener);
      return () => {
        set.delete(listener);
        if (set.size === 0) users.delete(userId);
      };
    },
    async broadcast(event) {
      for (const listener of everyone) listener(event);
    },
    onBroadcast(listener) {
      everyone.add(listener);
      return () => everyone.delete(listener);
    },
    async claimConnection(userId, cap) {
      if (connections.get(userId) >= cap) return false;
      connections.add(userId, 1);
      return true;
    },
    releaseConnection(userId) {
      connections.add(userId, -1);
    },
    degraded: () => false,
    async close() {
      users.clear();
      everyone.clear();
    },
  };
}
