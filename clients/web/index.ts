// Herald's browser client: live inbox events over Connect-Web server streaming, with the WebSocket bridge as
// fallback (or by choice); automatic reconnect with jittered backoff, resuming from the last seq seen, so a
// reconnect never loses or repeats a notification; inbox helpers (list, mark, unread count).
//
//   const herald = createHeraldWebClient({ baseUrl: 'https://herald.example.com', token: userJwt });
//   const stop = herald.subscribe((event) => { if (event.type === 'notification') show(event.notification); });
//
// Events use the WebSocket bridge's frame shapes on both transports (see the README): `notification`,
// `state`, `unread_count`, `system`, `heartbeat`, plus `connected` {transport} and `disconnected` {error}.
import { type JsonObject, toJson } from '@bufbuild/protobuf';
import { createClient, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-web';
import {
  type ListNotificationsRequest,
  ListNotificationsResponseSchema,
  MarkAction,
  NotificationService,
  StreamNotificationsResponseSchema,
} from '../../gen/herald/v1/notification_service_pb.js';
import { frameOf } from '../../src/core/frames.js';

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

export type HeraldEvent = { type: string; [key: string]: unknown };

export interface HeraldWebClient {
  /** Starts (or joins) the live connection; returns the function that stops listening. */
  subscribe(onEvent: (event: HeraldEvent) => void): () => void;
  list(request?: Partial<Omit<ListNotificationsRequest, '$typeName'>>): Promise<JsonObject>;
  mark(ids: string[], action: 'read' | 'unread' | 'seen' | 'archived' | 'unarchived'): Promise<JsonObject>;
  unreadCount(): Promise<number>;
  /** The highest seq received so far. */
  lastSeq(): number;
  /** The transport in use now (after a fallback, 'websocket'). */
  transport(): 'connect' | 'websocket';
}

const actions = {
  read: MarkAction.READ,
  unread: MarkAction.UNREAD,
  seen: MarkAction.SEEN,
  archived: MarkAction.ARCHIVED,
  unarchived: MarkAction.UNARCHIVED,
} as const;

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
  let retryTimer: ReturnType<typeof setTimeout> | null = null;

  function emit(event: HeraldEvent): void {
    if (event.type === 'notification') {
      const seq = Number((event.notification as { seq?: string }).seq ?? 0);
      if (seq <= lastSeq) return; // never twice, even across reconnects
      lastSeq = seq;
    }
    for (const listener of listeners) listener(event);
  }

  function scheduleReconnect(error: unknown): void {
    stopCurrent = null;
    if (!running) return;
    emit({ type: 'disconnected', error: error instanceof Error ? error.message : String(error ?? 'closed') });
    failures++;
    // Connect streaming that fails before it ever delivered anything: try the WebSocket bridge instead.
    if ((options.transport ?? 'auto') === 'auto' && current === 'connect' && failures >= 2)
      current = 'websocket';
    const ceiling = Math.min(
      options.maxDelayMs ?? 30_000,
      (options.baseDelayMs ?? 500) * 2 ** (failures - 1),
    );
    retryTimer = setTimeout(connect, Math.random() * ceiling);
  }

  function connected(): void {
    failures = 0;
    emit({ type: 'connected', transport: current });
  }

  function connect(): void {
    retryTimer = null;
    if (!running) return;
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
          emit(frameOf(toJson(StreamNotificationsResponseSchema, message, { alwaysEmitImplicit: true })));
        }
        if (!abort.signal.aborted) scheduleReconnect(new Error('stream ended'));
      } catch (error) {
        if (!abort.signal.aborted) scheduleReconnect(error);
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
      const frame = JSON.parse(String(message.data)) as HeraldEvent;
      if (frame.type === 'connection_ack') {
        ws.send(JSON.stringify({ type: 'resume', after_seq: lastSeq }));
        connected();
        return;
      }
      if (frame.type === 'notification') {
        const id = (frame.notification as { id?: string }).id;
        if (id) ws.send(JSON.stringify({ type: 'ack', ids: [id] }));
      }
      emit(frame);
    };
    ws.onclose = (event) => {
      if (!closedByUs) scheduleReconnect(new Error(`websocket closed (${event.code})`));
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
      return toJson(ListNotificationsResponseSchema, page) as JsonObject;
    },
    async mark(ids, action) {
      const result = await rpc.markNotifications({ userId, notificationIds: ids, action: actions[action] });
      return { updated: Number(result.updated), unreadCount: Number(result.unreadCount) };
    },
    async unreadCount() {
      return Number((await rpc.listNotifications({ userId, limit: 1 })).unreadCount);
    },
    lastSeq: () => lastSeq,
    transport: () => current,
  };
}
