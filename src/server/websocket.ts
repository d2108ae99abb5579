// The WebSocket bridge (`/ws` on the one port, HTTP/1.1 upgrade) for browsers and clients that cannot use
// Connect streaming. JSON frames; the schema is in the README.
//
// Authentication: a token in `Sec-WebSocket-Protocol` (offer `herald.v1` and `bearer.<token>`), or a first
// frame `{"type":"auth","token":"..."}` within the auth timeout; failure closes with 1008. A user token
// follows its own user; an API key with the `read` scope names the user (`user_id` in the auth frame or the
// `user_id` query parameter). Success sends `connection_ack` with the connection id and the user's latest
// seq; the client then sends `resume {after_seq}` to start its inbox session. A connection whose credential
// expires (a user token's exp) or is revoked (an API key) is closed with 4001 within the documented bound.
//
// Limits: frames over 64 KiB close with 1009; bad JSON or an unknown frame gets an `error` frame and the
// connection stays; a protocol ping every `pingMs`, and a connection that misses two pongs is closed; a
// connection whose unsent data passes `maxBufferedBytes` is closed with 1013 so one slow consumer cannot grow
// the server's memory; at most `maxConnectionsPerUser` connections per user, on all instances together.
//
// Origins: with HERALD_CORS_ORIGINS set, an upgrade whose Origin is neither listed nor Herald's own host (its
// own pages, e.g. /inbox) is refused with 403 before the handshake, so a page on another origin cannot ride a
// user's token into the bridge; a client that sends no Origin (not a browser) is taken. Unset: every Origin
// is taken.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { eventJson, frameOf } from '../../clients/web/src/frames.js';
import { StreamNotificationsResponseSchema } from '../../gen/herald/v1/notification_service_pb.js';
import {
  type Authenticator,
  actingUserOf,
  type CredentialWatch,
  INBOX_SCOPES,
  mayAct,
  type Principal,
  sessionEventToProto,
} from '../api/index.js';
import { HeraldError, invalidArgument } from '../core/errors.js';
import { isUuid } from '../core/ids.js';
import type { Logger } from '../observability/logger.js';
import {
  type InboxSession,
  type Realtime,
  refusalMessage,
  type SessionEvent,
  type SystemEvent,
} from '../realtime/index.js';
import type { InAppMetrics } from '../realtime/metrics.js';
import type { MarkAction } from '../store/index.js';
import { type CorsOrigins, createOriginCheck } from './cors.js';
import { notificationFrame, unreadCountFrame } from './websocket-frames.js';

export interface WebSocketOptions {
  path: string;
  authTimeoutMs: number;
  pingMs: number;
  maxBufferedBytes: number;
  maxConnectionsPerUser: number;
  heartbeatMs: number;
  /** Browser origins taken (HERALD_CORS_ORIGINS); undefined: any. */
  allowedOrigins?: CorsOrigins | undefined;
}

export interface WebSocketBridge {
  /** Connections open on this instance (not counting those closing). */
  connections(): number;
  /** Closes every connection left with 1012 (service restart). */
  close(): Promise<void>;
}

const MAX_FRAME_BYTES = 64 * 1024;
const PROTOCOL = 'herald.v1';
const BEARER_PREFIX = 'bearer.';
const MARK_ACTIONS: readonly MarkAction[] = ['read', 'unread', 'seen', 'archived', 'unarchived'];

// Close codes (RFC 6455 §7.4.1).
const POLICY_VIOLATION = 1008;
const SERVICE_RESTART = 1012;
const TRY_AGAIN_LATER = 1013;
/** The connection's credential expired or was revoked (application-defined, like HTTP 401). */
const CREDENTIAL_ENDED = 4001;
const CREDENTIAL_ENDED_REASON = { expired: 'credential expired', revoked: 'credential revoked' } as const;
const SLOW_CONSUMER_GRACE_MS = 5_000;
/** On shutdown, how long clients get to answer the close frame. */
const CLOSE_GRACE_MS = 1_000;
/** How long a refused client gets to answer the close frame before its socket is cut. */
const REFUSED_GRACE_MS = 5_000;

export function attachWebSocketBridge(
  http1: Server,
  deps: {
    authenticate: Authenticator;
    credentials: CredentialWatch;
    realtime: Realtime;
    logger: Logger;
    now: () => Date;
    inAppMetrics: InAppMetrics;
  },
  options: WebSocketOptions,
): WebSocketBridge {
  const { realtime, logger } = deps;
  const isAllowedOrigin = options.allowedOrigins ? createOriginCheck(options.allowedOrigins) : () => true;
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_FRAME_BYTES,
    perMessageDeflate: false,
    // Connections are tracked in `live`.
    clientTracking: false,
    // Answer with herald.v1 only: the bearer token is never echoed back.
    handleProtocols: (protocols) => (protocols.has(PROTOCOL) ? PROTOCOL : false),
  });
  /** Every open connection; `missed` counts unanswered pings, `userId` is set once authenticated. */
  const live = new Map<WebSocket, { socket: Duplex; missed: number; userId: string | null }>();
  // Frames written to one connection in one turn of the event loop (a notification and its unread count, a
  // page of replay) leave in one write: the socket is corked at the first and uncorked after the turn.
  const corked = new Set<Duplex>();
  const uncorkAll = () => {
    for (const socket of corked) socket.uncork();
    corked.clear();
  };
  // A broadcast goes to every connection: its frame is encoded once, every connection gets the same bytes.
  const systemFrames = new WeakMap<SystemEvent, Buffer>();

  // One timer each for every connection, not two per connection. Liveness: a protocol ping every pingMs;
  // two unanswered in a row and the connection is gone.
  const pinger = setInterval(() => {
    for (const [ws, state] of live) {
      if (ws.readyState !== ws.OPEN) continue;
      if (++state.missed > 2) ws.terminate();
      else ws.ping();
    }
  }, options.pingMs);
  // Heartbeats keep proxies from closing quiet connections; one frame, encoded once per beat.
  const heartbeat = setInterval(() => {
    const frame = Buffer.from(JSON.stringify({ type: 'heartbeat', server_time: deps.now().toISOString() }));
    for (const [ws, state] of live) if (state.userId !== null) send(ws, frame);
  }, options.heartbeatMs);
  pinger.unref();
  heartbeat.unref();

  http1.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://herald');
    if (url.pathname !== options.path) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !isAllowedOrigin(origin) && !isSameOrigin(origin, req.headers.host)) {
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    // Only these two strings outlive the handshake: a connection must not keep its request (headers, token)
    // alive for as long as it lasts.
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    const bearer = offered.find((p) => p.startsWith(BEARER_PREFIX))?.slice(BEARER_PREFIX.length) ?? null;
    const requestedUser = url.searchParams.get('user_id');
    const askedAt = performance.now();
    wss.handleUpgrade(req, socket, head, (ws) => accept(ws, socket, bearer, requestedUser, askedAt));
  });

  function accept(
    ws: WebSocket,
    socket: Duplex,
    bearer: string | null,
    requestedUser: string | null,
    askedAt: number,
  ): void {
    // Protocol errors (an oversized frame: 1009) close the connection; the event must still be handled.
    ws.on('error', onProtocolError);
    live.set(ws, { socket, missed: 0, userId: null });
    ws.on('pong', onPong);
    ws.once('close', onClosed);
    serve(ws, bearer, requestedUser, askedAt).catch((error) => {
      logger.warn({ err: error }, 'websocket connection failed');
      if (ws.readyState === ws.OPEN) ws.close(1011, 'internal error');
    });
  }

  // Listeners every connection shares (`this` is the connection).
  function onProtocolError(failure: Error): void {
    logger.debug({ err: failure.message }, 'websocket protocol error');
  }

  function onClosed(this: WebSocket): void {
    live.delete(this);
  }

  function onPong(this: WebSocket): void {
    const state = live.get(this);
    if (state) state.missed = 0;
  }

  /**
   * The JSON text of a session event's frame: the two every delivery sends written directly
   * (websocket-frames.ts), a broadcast's encoded once for every connection, the rest through protobuf JSON.
   */
  function encode(event: SessionEvent): string | Buffer {
    if (event.kind === 'notification') return notificationFrame(event.wire ?? event.row);
    if (event.kind === 'unread_count') return unreadCountFrame(event.count);
    if (event.kind === 'system') {
      let frame = systemFrames.get(event.event);
      if (!frame) {
        frame = Buffer.from(encodeProtoFrame(event));
        systemFrames.set(event.event, frame);
      }
      return frame;
    }
    return encodeProtoFrame(event);
  }

  function send(ws: WebSocket, frame: Record<string, unknown> | string | Buffer): void {
    if (ws.readyState !== ws.OPEN) return;
    const socket = live.get(ws)?.socket;
    if (socket && !corked.has(socket)) {
      if (corked.size === 0) process.nextTick(uncorkAll);
      socket.cork();
      corked.add(socket);
    }
    if (Buffer.isBuffer(frame)) ws.send(frame, { binary: false });
    else ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
    // A client that does not read: its unsent data grows until the cap, then the connection goes.
    // The close frame waits behind that data; if the client does not read it within the grace, the socket
    // is cut.
    if (ws.bufferedAmount > options.maxBufferedBytes && ws.readyState === ws.OPEN) {
      ws.close(TRY_AGAIN_LATER, 'slow consumer: too much unsent data');
      setTimeout(() => ws.terminate(), SLOW_CONSUMER_GRACE_MS).unref();
    }
  }

  function error(ws: WebSocket, message: string): void {
    send(ws, { type: 'error', message });
  }

  /** The first credential: from Sec-WebSocket-Protocol, or the auth frame within the timeout. */
  function credentialOf(
    ws: WebSocket,
    bearer: string | null,
  ): Promise<{ token: string; userId: string | null } | null> {
    if (bearer !== null) return Promise.resolve({ token: bearer, userId: null });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        ws.off('message', onFirst);
        resolve(null);
      }, options.authTimeoutMs);
      const onFirst = (data: Buffer, isBinary: boolean) => {
        clearTimeout(timer);
        const frame = isBinary ? null : parseFrame(data);
        if (frame?.type === 'auth' && typeof frame.token === 'string') {
          resolve({ token: frame.token, userId: typeof frame.user_id === 'string' ? frame.user_id : null });
        } else resolve(null);
      };
      ws.once('message', onFirst);
    });
  }

  /** Closes a connection the server will not serve; a client that ignores the close frame is cut after the grace. */
  function refuse(ws: WebSocket, code: number, reason: string): void {
    ws.close(code, reason);
    setTimeout(() => ws.terminate(), REFUSED_GRACE_MS).unref();
  }

  async function serve(
    ws: WebSocket,
    bearer: string | null,
    requestedUser: string | null,
    askedAt: number,
  ): Promise<void> {
    if (realtime.draining()) {
      refuse(ws, SERVICE_RESTART, 'service restart');
      return;
    }
    // No place among the starting sessions while the client has not yet said who it is: a connection that
    // never does cannot hold one.
    const credential = await credentialOf(ws, bearer);
    if (!credential) {
      refuse(ws, POLICY_VIOLATION, 'authentication required');
      return;
    }
    // Its turn among the sessions starting at once. Given up when the server stops serving it (below), when
    // its session is live, or when it closes, whichever comes first.
    const ticket = realtime.admission.request();
    ws.once('close', ticket.cancel);
    const admission = await ticket.admitted;
    if (ws.readyState !== ws.OPEN) return;
    if (!admission.admitted) {
      deps.inAppMetrics.sessionStartRefused('websocket');
      refuse(ws, TRY_AGAIN_LATER, refusalMessage(admission.retryAfterMs));
      return;
    }
    const start = { release: ticket.cancel, askedAt };
    try {
      await authenticated(ws, credential, requestedUser, start);
    } catch (error) {
      start.release();
      throw error;
    }
  }

  async function authenticated(
    ws: WebSocket,
    credential: { token: string; userId: string | null },
    requestedUser: string | null,
    start: { release: () => void; askedAt: number },
  ): Promise<void> {
    const close = (code: number, reason: string) => {
      start.release();
      refuse(ws, code, reason);
    };
    let userId: string;
    let principal: Principal;
    try {
      principal = await deps.authenticate(`Bearer ${credential.token}`);
      userId = actingUserOf(
        principal,
        credential.userId ?? requestedUser ?? '',
        'user_id',
        INBOX_SCOPES.follow,
      );
    } catch (failure) {
      close(
        POLICY_VIOLATION,
        failure instanceof HeraldError ? failure.message.slice(0, 120) : 'authentication failed',
      );
      return;
    }
    if (ws.readyState !== ws.OPEN) return;
    // Counted on every instance (with Redis), so a user cannot open the cap once per instance.
    if (!(await realtime.bus.claimConnection(userId, options.maxConnectionsPerUser))) {
      close(POLICY_VIOLATION, `at most ${options.maxConnectionsPerUser} connections per user`);
      return;
    }
    if (ws.readyState !== ws.OPEN) {
      realtime.bus.releaseConnection(userId);
      return;
    }
    const connectionId = randomUUID();
    let session: InboxSession | null = null;
    let opening = false;

    live.get(ws)!.userId = userId;

    const unwatch = deps.credentials.watch(principal, (why) =>
      ws.close(CREDENTIAL_ENDED, CREDENTIAL_ENDED_REASON[why]),
    );
    // A drain on shutdown ends it with 1012 at its turn.
    const untrack = realtime.track(() => ws.close(SERVICE_RESTART, 'service restart'));
    ws.on('close', () => {
      untrack();
      unwatch();
      realtime.bus.releaseConnection(userId);
      void session?.close();
    });

    ws.on('message', (data: Buffer, isBinary: boolean) => {
      // Closing (the credential ended, the server stops): a client that ignores the close frame may not act.
      if (ws.readyState !== ws.OPEN) return;
      const frame = isBinary ? null : parseFrame(data);
      if (!frame || typeof frame.type !== 'string') {
        error(ws, 'frames are JSON objects with a "type"');
        return;
      }
      void handle(frame).catch((failure: unknown) =>
        error(ws, failure instanceof HeraldError ? failure.message : 'internal error'),
      );
    });

    /** Marks and acks change the inbox: the same scope as MarkNotifications. */
    function mayChangeInbox(): void {
      if (!mayAct(principal, INBOX_SCOPES.change)) {
        throw new HeraldError('permission_denied', `API key lacks the "${INBOX_SCOPES.change}" scope`);
      }
    }

    async function handle(frame: Record<string, unknown>): Promise<void> {
      switch (frame.type) {
        case 'resume': {
          const afterSeq = frame.after_seq ?? 0;
          if (typeof afterSeq !== 'number' || !Number.isSafeInteger(afterSeq) || afterSeq < 0) {
            throw invalidArgument('after_seq', 'must be a whole number, 0 or more');
          }
          if (session || opening)
            throw new HeraldError('failed_precondition', 'the session is already open', 'resume');
          opening = true;
          session = await realtime.openSession({
            userId,
            afterSeq,
            emit: (event) => {
              if (event.kind === 'notification') deps.inAppMetrics.written('websocket');
              send(ws, encode(event));
            },
          });
          if (ws.readyState !== ws.OPEN) await session.close();
          else deps.inAppMetrics.sessionStarted('websocket', (performance.now() - start.askedAt) / 1000);
          start.release();
          return;
        }
        case 'ack': {
          mayChangeInbox();
          const ids = uuids(frame.ids, 'ids');
          await realtime.acknowledge(userId, ids);
          return;
        }
        case 'mark': {
          mayChangeInbox();
          const ids = uuids(frame.ids, 'ids');
          const action = frame.action;
          if (typeof action !== 'string' || !MARK_ACTIONS.includes(action as MarkAction)) {
            throw invalidArgument('action', `must be one of ${MARK_ACTIONS.join(', ')}`);
          }
          await markAndAnnounce(userId, ids, action as MarkAction);
          return;
        }
        case 'ping':
          send(ws, { type: 'pong' });
          return;
        default:
          throw invalidArgument('type', `unknown frame type "${String(frame.type).slice(0, 40)}"`);
      }
    }

    send(ws, {
      type: 'connection_ack',
      connection_id: connectionId,
      server_seq: await realtime.latestSeq(userId),
    });
    // A client that does not resume soon after the ack does not hold its place among the starting sessions.
    setTimeout(start.release, options.authTimeoutMs).unref();
  }

  async function markAndAnnounce(userId: string, ids: string[], action: MarkAction): Promise<void> {
    if (ids.length === 0) throw invalidArgument('ids', 'must name at least one notification');
    const result = await realtime.mark(userId, { ids, upToSeq: null }, action, deps.now());
    deps.inAppMetrics.marked(action, result.ids.length);
  }

  const connections = () => [...live.keys()].filter((ws) => ws.readyState === ws.OPEN).length;
  deps.inAppMetrics.countWebSockets(connections);
  return {
    connections,
    async close() {
      clearInterval(pinger);
      clearInterval(heartbeat);
      for (const ws of live.keys()) ws.close(SERVICE_RESTART, 'service restart');
      // Each client answers the close frame and the connection ends; one that does not is cut after the
      // grace (the listener then destroys what is left).
      const deadline = performance.now() + CLOSE_GRACE_MS;
      while (live.size > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

function encodeProtoFrame(event: SessionEvent): string {
  return JSON.stringify(frameOf(eventJson(StreamNotificationsResponseSchema, sessionEventToProto(event))));
}

function parseFrame(data: Buffer): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(data.toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

function uuids(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || value.length > 1_000) {
    throw invalidArgument(field, 'must be a list of at most 1000 ids');
  }
  return value.map((id, i) => {
    if (typeof id !== 'string' || !isUuid(id)) throw invalidArgument(`${field}[${i}]`, 'must be a UUID');
    return id.toLowerCase();
  });
}

/** The page came from the host the upgrade is addressed to (Herald's own pages; a proxy keeps Host). */
function isSameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  try {
    return new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}
