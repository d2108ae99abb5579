// @herald-notify/web: Herald's browser client. Live inbox events over Connect-Web server streaming, with the
// WebSocket bridge as fallback (or by choice); automatic reconnect with jittered backoff, resuming from the last
// seq seen, so a reconnect never loses or repeats a notification; inbox helpers (list, mark, unread count) and
// the user's preferences. The `<herald-inbox>` element built on it is the separate entry `@herald-notify/web/inbox`.
//
//   const herald = createHeraldWebClient({ baseUrl: 'https://herald.example.com', token: userJwt });
//   const stop = herald.subscribe((event) => { if (event.type === 'notification') show(event.notification); });
//
// Events are the WebSocket bridge's frames on both transports (frames.ts: `notification`, `state`,
// `unread_count`, `heartbeat`, `system`), plus `connected`, `disconnected`, and `error` frames the bridge sends.
import { create, fromJson, type JsonValue, toJson } from '@bufbuild/protobuf';
import { ConnectError, createClient, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-web';
import { eventJson, frameOf, type StreamFrame } from './frames.js';
import {
  type ListNotificationsRequest,
  type ListNotificationsResponseJson,
  ListNotificationsResponseSchema,
  MarkAction,
  NotificationService,
  StreamNotificationsResponseSchema,
  type UpdatePreferencesRequestJson,
  UpdatePreferencesRequestSchema,
} from './gen/herald/v1/notification_service_pb.js';
import { type PreferencesJson, PreferencesSchema } from './gen/herald/v1/types_pb.js';

export type { StreamFrame } from './frames.js';
export type {
  HeartbeatJson,
  ListNotificationsResponseJson,
  StateChangeJson,
  SystemMessageJson,
  UnreadCountJson,
} from './gen/herald/v1/notification_service_pb.js';
export type {
  ChannelJson,
  ChannelPreferenceJson,
  NotificationJson,
  PreferencesJson,
  TypePreferenceJson,
} from './gen/herald/v1/types_pb.js';

export type Transport = 'auto' | 'connect' | 'websocket';

export interface HeraldWebClientOptions {
  /** e.g. https://herald.example.com */
  baseUrl: string;
  /** A user JWT, or an API key with the read scope (then set userId). */
  token: string;
  /** Only with an API key: whose inbox. */
  userId?: string;
  /** 'auto' (default): Connect streaming, falling back to the WebSocket bridge when streaming fails. */
  transport?: Transport;
  /** Resume after this seq on the first connect (default 0: replay the whole inbox). */
  afterSeq?: number;
  /** Reconnect backoff: full jitter between 0 and min(maxDelayMs, baseDelayMs * 2^n). */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

/** What `subscribe` hands to its listener; narrow on `type`. */
export type HeraldEvent =
  | StreamFrame
  /** A live connection is open (again); events follow from the last seq seen. */
  | { type: 'connected'; transport: 'connect' | 'websocket' }
  /** The connection ended; a reconnect is scheduled. */
  | { type: 'disconnected'; error: string }
  /** The WebSocket bridge refused a frame (`field: rule`); the connection stays. */
  | { type: 'error'; message: string };

export type MarkActionName = 'read' | 'unread' | 'seen' | 'archived' | 'unarchived';

/** What UpdatePreferences merges: channel switches, type×channel switches, quiet hours (all optional). */
export type PreferencesUpdate = Omit<UpdatePreferencesRequestJson, 'userId'>;

export interface MarkResult {
  /** How many notifications changed. */
  updated: number;
  /** The user's exact unread count after the change. */
  unreadCount: number;
}

export interface HeraldWebClient {
  /** Starts (or joins) the live connection; returns the function that stops listening. */
  subscribe(onEvent: (event: HeraldEvent) => void): () => void;
  /** A page of the inbox, newest first, in protobuf JSON. */
  list(
    request?: Partial<Omit<ListNotificationsRequest, '$typeName'>>,
  ): Promise<ListNotificationsResponseJson>;
  mark(ids: string[], action: MarkActionName): Promise<MarkResult>;
  /** Marks every notification up to and including `seq` ("mark all read" up to the newest one shown). */
  markUpTo(seq: number, action: MarkActionName): Promise<MarkResult>;
  unreadCount(): Promise<number>;
  /** The stored preferences, switches written out whole (`enabled: false` included); a switch not listed is on. */
  preferences(): Promise<PreferencesJson>;
  /** Merges the given switches (others keep their setting); answers with the preferences stored now. */
  updatePreferences(update: PreferencesUpdate): Promise<PreferencesJson>;
  /** The highest seq received so far. */
  lastSeq(): number;
  /** The transport in use now (after a fallback, 'websocket'). */
  transport(): 'connect' | 'websocket';
}

const actions: Record<MarkActionName, MarkAction> = {
  read: MarkAction.READ,
  unread: MarkAction.UNREAD,
  seen: MarkAction.SEEN,
  archived: MarkAction.ARCHIVED,
  unarchived: MarkAction.UNARCHIVED,
};

/** A frame the WebSocket bridge sent, checked against the schema; null for anything else. */
type SocketFrame = StreamFrame | { type: 'connection_ack' } | { type: 'error'; message: string };

function parseSocketFrame(text: string): SocketFrame | null {
  let frame: JsonValue;
  try {
    frame = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame) || typeof frame.type !== 'string') {
    return null;
  }
  const type = frame.type;
  if (type === 'connection_ack') return { type };
  if (type === 'error') return { type, message: typeof frame.message === 'string' ? frame.message : '' };
  const payload = frame[type];
  if (payload === undefined) return null;
  // The frame's payload is the matching StreamNotificationsResponse field: read it through the schema (which
  // refuses anything else), then write it back, so both transports emit exactly the same shapes.
  const key = type.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
  try {
    const message = fromJson(StreamNotificationsResponseSchema, { [key]: payload });
    return frameOf(eventJson(StreamNotificationsResponseSchema, message));
  } catch {
    return null;
  }
}

async function markResult(answer: Promise<{ updated: bigint; unreadCount: bigint }>): Promise<MarkResult> {
  const { updated, unreadCount } = await answer;
  return { updated: Number(updated), unreadCount: Number(unreadCount) };
}

/** A server's suggested delay past this is taken as this. */
const MAX_SUGGESTED_DELAY_MS = 60_000;

/** How long a server that refused the stream asked the client to wait (UNAVAILABLE with `retry-after-ms`). */
function suggestedDelayMs(error: unknown): number {
  // A trailers-only answer carries it in its headers and its trailers: the first value counts.
  const value = ConnectError.from(error).metadata.get('retry-after-ms')?.split(',')[0]?.trim();
  const ms = value ? Number(value) : 0;
  return Number.isSafeInteger(ms) && ms > 0 ? Math.min(ms, MAX_SUGGESTED_DELAY_MS) : 0;
}

export function createHeraldWebClient(options: HeraldWebClientOptions): HeraldWebClient {
  const auth: Interceptor = (next) => (req) => {
    req.header.set('authorization', `Bearer ${options.token}`);
    return next(req);
  };
  const rpc = createClient(
    NotificationService,
    createConnectTransport({ baseUrl: options.baseUrl, interceptors: [auth] }),
  );
  const userId = options.userId ?? '';
  const listeners = new Set<(event: HeraldEvent) => void>();
  let lastSeq = options.afterSeq ?? 0;
  let current: 'connect' | 'websocket' = options.transport === 'websocket' ? 'websocket' : 'connect';
  let running = false;
  let stopCurrent: (() => void) | null = null;
  let failures = 0;
  // The backoff starts over only after a connection brought a new notification: a server that takes the
  // stream and drops it at once is not reconnected to at full speed.
  let seqAtOpen = lastSeq;
  let connectStreamWorked = false;
  let retryTimer: ReturnType<typeof setTimeout> | null = null;

  function emit(event: HeraldEvent): void {
    if (event.type === 'notification') {
      const seq = Number(event.notification.seq ?? 0);
      if (seq <= lastSeq) return; // never twice, even across reconnects
      lastSeq = seq;
    }
    for (const listener of listeners) listener(event);
  }

  function scheduleReconnect(error: unknown, suggestedMs = 0): void {
    stopCurrent = null;
    if (!running) return;
    emit({ type: 'disconnected', error: error instanceof Error ? error.message : String(error ?? 'closed') });
    failures = lastSeq > seqAtOpen ? 1 : failures + 1;
    // Connect streaming that fails before it ever delivered anything: try the WebSocket bridge instead. Not
    // when the server answered with a delay to come back after: it is busy, and streaming works.
    if (
      suggestedMs === 0 &&
      (options.transport ?? 'auto') === 'auto' &&
      current === 'connect' &&
      !connectStreamWorked &&
      failures >= 2
    )
      current = 'websocket';
    const ceiling = Math.min(
      options.maxDelayMs ?? 30_000,
      (options.baseDelayMs ?? 500) * 2 ** (failures - 1),
    );
    // The delay a refusing server suggested (too many sessions starting there), the jittered backoff on top.
    retryTimer = setTimeout(connect, suggestedMs + Math.random() * ceiling);
  }

  function connected(): void {
    if (current === 'connect') connectStreamWorked = true;
    emit({ type: 'connected', transport: current });
  }

  function connect(): void {
    retryTimer = null;
    if (!running) return;
    seqAtOpen = lastSeq;
    stopCurrent = current === 'connect' ? streamOverConnect() : streamOverWebSocket();
  }

  function streamOverConnect(): () => void {
    const abort = new AbortController();
    void (async () => {
      let first = true;
      try {
        for await (const message of rpc.streamNotifications(
          { userId, afterSeq: BigInt(lastSeq) },
          { signal: abort.signal },
        )) {
          if (first) {
            first = false;
            connected();
          }
          emit(frameOf(eventJson(StreamNotificationsResponseSchema, message)));
        }
        if (!abort.signal.aborted) scheduleReconnect(new Error('stream ended'));
      } catch (error) {
        if (!abort.signal.aborted) scheduleReconnect(error, suggestedDelayMs(error));
      }
    })();
    return () => abort.abort();
  }

  function streamOverWebSocket(): () => void {
    const url = new URL('/ws', options.baseUrl.replace(/^http/, 'ws'));
    if (userId) url.searchParams.set('user_id', userId);
    const ws = new WebSocket(url, ['herald.v1', `bearer.${options.token}`]);
    let closedByUs = false;
    ws.onmessage = (message) => {
      const frame = parseSocketFrame(String(message.data));
      if (!frame) return;
      if (frame.type === 'connection_ack') {
        ws.send(JSON.stringify({ type: 'resume', after_seq: lastSeq }));
        connected();
        return;
      }
      if (frame.type === 'notification' && frame.notification.id) {
        ws.send(JSON.stringify({ type: 'ack', ids: [frame.notification.id] }));
      }
      emit(frame);
    };
    ws.onclose = (event) => {
      if (closedByUs) return;
      // 1013 (try again later) names the delay in its reason: "... retry after N ms".
      const suggested = Number(/retry after (\d+) ms/.exec(event.reason)?.[1] ?? 0);
      scheduleReconnect(
        new Error(`websocket closed (${event.code}${event.reason ? `: ${event.reason}` : ''})`),
        Math.min(suggested, MAX_SUGGESTED_DELAY_MS),
      );
    };
    return () => {
      closedByUs = true;
      ws.close();
    };
  }

  return {
    subscribe(onEvent) {
      listeners.add(onEvent);
      if (!running) {
        running = true;
        connect();
      }
      return () => {
        listeners.delete(onEvent);
        if (listeners.size > 0) return;
        running = false;
        if (retryTimer) clearTimeout(retryTimer);
        stopCurrent?.();
        stopCurrent = null;
      };
    },
    async list(request = {}) {
      const page = await rpc.listNotifications({ ...request, userId });
      return toJson(ListNotificationsResponseSchema, page);
    },
    mark: (ids, action) =>
      markResult(rpc.markNotifications({ userId, notificationIds: ids, action: actions[action] })),
    markUpTo: (seq, action) =>
      markResult(rpc.markNotifications({ userId, upToSeq: BigInt(seq), action: actions[action] })),
    async unreadCount() {
      return Number((await rpc.listNotifications({ userId, limit: 1 })).unreadCount);
    },
    async preferences() {
      const { preferences } = await rpc.getPreferences({ userId });
      return eventJson(PreferencesSchema, preferences ?? create(PreferencesSchema));
    },
    async updatePreferences(update) {
      const request = fromJson(UpdatePreferencesRequestSchema, { ...update, userId });
      const { preferences } = await rpc.updatePreferences(request);
      return eventJson(PreferencesSchema, preferences ?? create(PreferencesSchema));
    },
    lastSeq: () => lastSeq,
    transport: () => current,
  };
}
